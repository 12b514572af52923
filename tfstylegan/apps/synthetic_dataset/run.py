"""`write_synthetic_dataset`: checks the inputs, loads the generators and the judge, and runs the rest.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import tensorflow as tf

from classifier.model import load_classifier
from tfstylegan.apps.evaluation.features import Judge
from tfstylegan.apps.generation.loading import load_class_generators
from tfstylegan.apps.synthetic_dataset.filters import PrivacyReference
from tfstylegan.apps.synthetic_dataset.report import _finish
from tfstylegan.apps.synthetic_dataset.settings import PRIVACY_DIR, STATE_DIR, SyntheticDatasetConfig, class_counts
from tfstylegan.apps.synthetic_dataset.shards import _fill_class, _load_state, _num_shards, _open_partial, _publish
from tfstylegan.data.pipeline import read_manifest
from tfstylegan.training.checkpoint import latest_checkpoint
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import sha256_file
from tfstylegan.utils.progress import Progress


def _checkpoint_kimg(path: str) -> float | None:
    """Training progress of a checkpoint (kimg), or None for networks-only (imported) checkpoints."""
    try:
        prefix = latest_checkpoint(path)
        for name, _ in tf.train.list_variables(prefix):
            if name.split("/")[0] == "state" and "cur_nimg" in name:
                return round(float(tf.train.load_variable(prefix, name)) / 1000.0, 3)
    except (UserError, tf.errors.OpError, ValueError):
        return None
    return None


def _file_info(path) -> dict[str, Any]:
    return {"path": str(path), "sha256": sha256_file(path)}


def write_synthetic_dataset(checkpoint: str, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                            config: SyntheticDatasetConfig, classifier: str | os.PathLike | None = None,
                            overwrite: bool = False, resume: bool = False, show_progress: bool = True) -> dict:
    """Generates, filters and writes a synthetic dataset (see the module docstring); returns its manifest.

    Args:
      checkpoint: `PATH` (a conditional or per-class run) or `cls=PATH,cls=PATH,...`.
      data_dir: the real prepared dataset the models were trained on (privacy reference and baseline,
        class ratios, resolution and bit depth).
      out_dir: the output folder (must not exist unless `overwrite`).
      config: `SyntheticDatasetConfig`.
      classifier: the judge (`classifier.keras`, a loaded `TumorClassifier` or a `Judge`): adds the
        feature-space privacy check and allows the quality filter. Without it, privacy is checked in pixel
        space only.
      overwrite: replace an existing `out_dir` (once the new one is complete) or an unfinished one.
      resume: continue the unfinished run of the same settings in `.<out>.partial/`.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise UserError(f"Output folder {out_dir} already exists. Choose another --out, delete it, or pass "
                        "--overwrite.")
    if out_dir.resolve() == data_dir.resolve():
        raise UserError(f"--out {out_dir} is the real --data folder; choose another --out.")
    manifest = read_manifest(data_dir)
    real_train = {c: int(n) for c, n in manifest["split_counts"].get("train", {}).items()}
    if sum(real_train.values()) == 0:
        raise UserError(f"{data_dir} has no train split (manifest split_counts: {manifest['split_counts']}). The "
                        "real training slices are the privacy reference: pass the prepared dataset the "
                        "generator was trained on.")
    if config.min_class_prob > 0 and classifier is None:
        raise UserError(f"--min_class_prob {config.min_class_prob:g} needs the judge: pass --classifier "
                        "(classifier.keras from launchers/train_classifier.py), or --min_class_prob 0.")
    gens = load_class_generators(checkpoint)
    resolution = int(manifest["resolution"])
    for name, gen in gens.items():
        if name not in manifest["class_names"]:
            raise UserError(f"{data_dir} has no class {name!r} (it has {', '.join(manifest['class_names'])}). Pass "
                            "the real dataset the generators were trained on.")
        if gen.resolution != resolution:
            raise UserError(f"The {name!r} generator makes {gen.resolution}x{gen.resolution} slices but {data_dir} is "
                            f"{resolution}x{resolution}. Pass the real dataset at the model's resolution.")
    model_masks = {n: g.with_mask for n, g in gens.items()}
    with_mask = all(model_masks.values()) if config.with_mask is None else bool(config.with_mask)
    if with_mask and not all(model_masks.values()):
        no = [n for n, m in model_masks.items() if not m]
        raise UserError(f"--with_mask: the generator(s) of {', '.join(no)} make no tumor masks (1 channel); they "
                        "were trained without --with_mask. Drop --with_mask.")
    judge = None
    if classifier is not None:
        if isinstance(classifier, Judge):
            judge = classifier
        else:
            model = load_classifier(classifier) if isinstance(classifier, (str, os.PathLike)) else classifier
            judge = Judge(model, batch_size=config.batch_size)
        unknown = [n for n in gens if n not in judge.class_names]
        if unknown:
            raise UserError(f"The classifier {classifier} knows {', '.join(judge.class_names)}, not "
                            f"{', '.join(unknown)}. Pass a judge trained on the same classes.")
    counts = class_counts(config, list(gens), real_train)

    filters = {
        "privacy": {"percentile": config.privacy_percentile, "enabled": config.privacy_percentile > 0,
                    "space": ["pixels"] + (["judge features"] if judge is not None else []),
                    "reference": "real train split, every class", "baseline": "real val+test of the same class",
                    "rule": "drop if the distance to the nearest training slice < the percentile of the "
                            "held-out distances, in any space"},
        "quality": {"min_class_prob": config.min_class_prob, "enabled": config.min_class_prob > 0},
    }
    settings = {
        "checkpoint": str(checkpoint),
        "generators": {n: {"checkpoint": str(Path(g.checkpoint).resolve()), "kimg": _checkpoint_kimg(g.checkpoint),
                           "class_id": g.class_id, "conditional": g.class_id is not None}
                       for n, g in gens.items()},
        "data": {"path": str(data_dir.resolve()), "manifest_sha256": sha256_file(data_dir / "manifest.json")},
        "classifier": (None if classifier is None else _file_info(Path(classifier).resolve())
                       if isinstance(classifier, (str, os.PathLike)) else {"path": None, "sha256": None,
                                                                          "model": "in memory"}),
        "truncation_psi": float(config.truncation_psi), "noise_mode": config.noise_mode,
        "filters": filters, "counts": counts, "with_mask": with_mask, "config": config.to_dict(),
    }
    reference = PrivacyReference(data_dir, manifest, [c for c in counts if counts[c] > 0], judge,
                                 config.privacy_percentile, show_progress)
    partial = _open_partial(out_dir, settings, overwrite, resume)
    for c, b in reference.baselines.items():
        if b.pixel_threshold is not None:
            extra = f", features {b.feature_threshold:.4g}" if b.feature_threshold is not None else ""
            print(f"privacy baseline {c}: {b.num_heldout} held-out slices; drop below pixels "
                  f"{b.pixel_threshold:.4g}{extra} (percentile {config.privacy_percentile:g})", flush=True)
    states: dict[str, list[dict]] = {}
    done = sum(len(st["kept"]) for c, n in counts.items() if n > 0
               for st in _load_state(partial, c, _num_shards(n, config.shard_size)))
    if done:
        print(f"{done} of {sum(counts.values())} slices were written before; continuing", flush=True)
    progress = Progress(sum(counts.values()) - done, desc="synthesize", unit="slice", enabled=show_progress)
    try:
        for c, n in counts.items():
            if n > 0:
                states[c] = _fill_class(partial, gens[c], c, n, config, reference, judge, with_mask, progress)
        progress.close()
        out_manifest = _finish(partial, counts, states, reference, config, settings, with_mask, resolution)
        _publish(partial, out_dir, overwrite)
    except BaseException:
        finished = any((partial / STATE_DIR).glob("*-*.json")) or (partial / "manifest.json").exists()
        if not finished:  # nothing finished: nothing worth resuming
            shutil.rmtree(partial, ignore_errors=True)
        else:
            print(f"note: finished shards are kept in {partial}; rerun with --resume to continue.", flush=True)
        raise
    for c, r in out_manifest["synthetic"]["privacy"].items():
        print(f"{c}: kept {r['kept']} of {r['drawn']} candidates (privacy dropped {r['dropped_privacy']}, quality "
              f"rejected {r['rejected_quality']} = {100 * r['quality_rejection_rate']:.1f} %)", flush=True)
    print(f"wrote {out_dir} (privacy report: {out_dir / PRIVACY_DIR / 'report.json'})", flush=True)
    return out_manifest
