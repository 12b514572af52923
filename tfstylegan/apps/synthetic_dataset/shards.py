"""Writing a synthetic dataset: TFRecord shards, their resumable states, and the finished folder.

Work in progress lives in `.<out>.partial/` beside the output, one finished shard at a time (its state file
says so); `resume` continues after the last finished shard. `write_images_dataset` writes images already
generated (evaluate --utility) in the same layout.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfstylegan.apps.synthetic_dataset.filters import PrivacyReference, candidates, quantize
from tfstylegan.apps.synthetic_dataset.settings import (FORMAT_VERSION, PNG_DIR, SOURCE_FORMAT, STATE_DIR,
                                                        SyntheticDatasetConfig, compact_seeds, slice_id)
from tfstylegan.data.classes import ALL_CLASS_NAMES, SPLITS
from tfstylegan.data.tfrecords import decode_png, encode_png, make_example, read_examples, shard_name
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import save_png
from tfstylegan.utils.io import atomic_dir, sha256_file, write_json
from tfstylegan.utils.progress import Progress


def _example(class_name: str, seed: int, pixels: np.ndarray, mask: np.ndarray | None) -> bytes:
    sid = slice_id(class_name, seed)
    return make_example(encode_png(pixels), b"" if mask is None else encode_png(mask),
                        ALL_CLASS_NAMES.index(class_name), class_name, sid, sid, pixels.shape[0], pixels.shape[1])


def _write_shard(path: Path, examples: Sequence[bytes]) -> None:
    """A TFRecord shard written under a temporary name and renamed when closed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tf.io.TFRecordWriter(str(tmp)) as w:
        for ex in examples:
            w.write(ex)
    os.replace(tmp, path)


def _png_paths(class_name: str, seed: int, with_mask: bool) -> tuple[str, str]:
    base = f"{PNG_DIR}/{class_name}/{slice_id(class_name, seed)}"
    return f"{base}.png", (f"{base}_mask.png" if with_mask else "")


def _num_shards(n: int, shard_size: int) -> int:
    return max(1, math.ceil(n / shard_size))


def _state_path(root: Path, class_name: str, shard: int) -> Path:
    return root / STATE_DIR / f"{class_name}-{shard:05d}.json"


def _load_state(root: Path, class_name: str, num_shards: int) -> list[dict]:
    """The finished shards of a class, in order (a shard is finished once its state file exists)."""
    done = []
    for k in range(num_shards):
        p = _state_path(root, class_name, k)
        if not p.is_file():
            break
        done.append(json.loads(p.read_text(encoding="utf-8")))
    return done


def _settings_file(root: Path) -> Path:
    return root / STATE_DIR / "settings.json"


def _comparable(settings: dict) -> dict:
    """Settings that must match for a resumed run to continue the same dataset."""
    s = json.loads(json.dumps(settings))
    s.get("config", {}).pop("max_draws_per_slice", None)
    return s


def _open_partial(out_dir: Path, settings: dict, overwrite: bool, resume: bool) -> Path:
    partial = out_dir.parent / f".{out_dir.name}.partial"
    if partial.exists() and not resume:
        if not overwrite:
            raise UserError(f"{partial} holds an unfinished synthetic dataset (an interrupted run). Pass --resume "
                            "to continue it with the same flags, or --overwrite to start again.")
        shutil.rmtree(partial)
    if partial.exists():
        saved = _settings_file(partial)
        old = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else None
        if old is None or _comparable(old) != _comparable(settings):
            diff = sorted(k for k in set(_flat(old or {})) | set(_flat(settings))
                          if _flat(old or {}).get(k) != _flat(settings).get(k))
            raise UserError(f"--resume: {partial} was started with other settings (differences: "
                            f"{', '.join(diff[:6]) or 'unknown'}). Rerun with the same flags, or pass --overwrite "
                            "without --resume to start again.")
        print(f"resuming {partial}", flush=True)
    else:
        partial.mkdir(parents=True)
        write_json(_settings_file(partial), settings)
    return partial


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _fill_class(partial: Path, gen, class_name: str, count: int, config: SyntheticDatasetConfig,
                reference: PrivacyReference, judge, with_mask: bool, progress: Progress) -> list[dict]:
    """Writes the shards of one class (continuing after its finished ones); returns their states."""
    n_shards = _num_shards(count, config.shard_size)
    states = _load_state(partial, class_name, n_shards)
    for k in range(len(states), n_shards):  # leftovers of an interrupted shard
        for stale in (partial / "train").glob(f".{shard_name(class_name, k, n_shards)}.tmp"):
            stale.unlink()
    kept_so_far = sum(len(s["kept"]) for s in states)
    drawn_so_far = sum(len(s["kept"]) + len(s["dropped"]) for s in states)
    next_seed = states[-1]["next_seed"] if states else int(config.seed)
    max_draws = int(math.ceil(config.max_draws_per_slice * count))
    stream = candidates(gen, class_name, next_seed, config, reference, judge, with_mask)
    for k in range(len(states), n_shards):
        want = min(config.shard_size, count - k * config.shard_size)
        examples: list[bytes] = []
        kept: list[dict] = []
        dropped: list[dict] = []
        while len(kept) < want:
            if drawn_so_far >= max_draws:
                raise UserError(
                    f"{class_name}: only {kept_so_far + len(kept)} of {count} slices passed the filters after "
                    f"{drawn_so_far} candidates (--max_draws_per_slice={config.max_draws_per_slice:g}). Lower "
                    f"--min_class_prob (now {config.min_class_prob:g}) or --privacy_percentile (now "
                    f"{config.privacy_percentile:g}), or raise --max_draws_per_slice; finished shards are kept "
                    "for --resume.")
            cand = next(stream)
            drawn_so_far += 1
            if not cand.kept:
                dropped.append(cand.record(reference))
                continue
            examples.append(_example(class_name, cand.seed, cand.pixels, cand.mask))
            kept.append(cand.record(reference))
            if config.png:
                image_file, mask_file = _png_paths(class_name, cand.seed, with_mask)
                save_png(partial / image_file, cand.pixels)
                if mask_file:
                    save_png(partial / mask_file, cand.mask)
            progress.update(1)
        _write_shard(partial / "train" / shard_name(class_name, k, n_shards), examples)
        state = {"shard": k, "next_seed": kept[-1]["seed"] + 1, "kept": kept, "dropped": dropped}
        write_json(_state_path(partial, class_name, k), state)
        states.append(state)
        kept_so_far += len(kept)
    return states


def _read_kept(root: Path, class_name: str, positions: Sequence[int], shard_size: int, num_shards: int,
               bit_depth: int) -> np.ndarray:
    """Stored slices of a class at `positions` (index in seed order), uint [len, H, W]."""
    out: dict[int, np.ndarray] = {}
    by_shard: dict[int, list[int]] = {}
    for p in positions:
        by_shard.setdefault(int(p) // shard_size, []).append(int(p))
    for k, ps in by_shard.items():
        examples = read_examples(root / "train" / shard_name(class_name, k, num_shards))
        for p in ps:
            out[p] = decode_png(examples[p - k * shard_size]["image"])
    dtype = np.uint16 if int(bit_depth) == 16 else np.uint8
    return np.stack([out[int(p)] for p in positions]).astype(dtype)


def _publish(partial: Path, out_dir: Path, overwrite: bool) -> None:
    """Renames the finished `partial` to `out_dir` (replacing an old one only now, with `overwrite`)."""
    if out_dir.exists():
        if not overwrite:
            raise UserError(f"Output folder {out_dir} appeared while generating; pass --overwrite to replace it.")
        old = out_dir.parent / f".{out_dir.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
        os.replace(partial, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, out_dir)


def train_only_manifest(counts: dict[str, int], resolution: int, bit_depth: int, with_mask: bool, source: dict,
                        settings: dict, synthetic: dict) -> dict[str, Any]:
    """The manifest of synthetic slices ({class: count}, canonical order): all in the train split, no patients.

    "files" is left empty for the caller to fill once the folder is complete.
    """
    class_names = [c for c in ALL_CLASS_NAMES if counts.get(c, 0) > 0]
    train_counts = {c: int(counts[c]) for c in class_names}
    return {
        "format_version": FORMAT_VERSION,
        "resolution": int(resolution),
        "bit_depth": int(bit_depth),
        "channels": 1,
        "class_names": class_names,
        "has_mask": bool(with_mask),
        "counts": train_counts,
        "split_counts": {s: (dict(train_counts) if s == "train" else {c: 0 for c in class_names}) for s in SPLITS},
        "num_patients": {s: 0 for s in SPLITS},
        "patients": {s: [] for s in SPLITS},
        "patient_ids_known": False,
        "source": source,
        "settings": settings,
        "synthetic": synthetic,
        "files": {},
        "skipped": [],
    }


def write_images_dataset(out_dir: str | os.PathLike, images: dict[str, np.ndarray], seeds: dict[str, Sequence[int]],
                         bit_depth: int, provenance: dict[str, Any], shard_size: int = 1024) -> dict:
    """Writes already generated images {class: float [N, H, W, 1 or 2]} (no filters) in the same layout.

    The examples are those `write_synthetic_dataset` writes for the same seeds with the filters off
    (`privacy_percentile=0`, `min_class_prob=0`): same ids, labels and slices, whose pixels may differ by one
    grey level where float round-off of another batch shape crosses a rounding step. No privacy report.
    """
    out_dir = Path(out_dir)
    class_names = [c for c in ALL_CLASS_NAMES if c in images and len(images[c])]
    if not class_names:
        raise UserError("No synthetic images to write.")
    shapes = {np.asarray(images[c]).shape[1:3] for c in class_names}
    if len(shapes) != 1:
        raise ValueError(f"All classes' images must have one size. Received: {shapes}")
    resolution = int(next(iter(shapes))[0])
    counts = {c: int(len(images[c])) for c in class_names}
    with atomic_dir(out_dir) as tmp:
        for c in class_names:
            pixels = quantize(np.asarray(images[c])[..., :1], bit_depth)
            n_shards = _num_shards(len(pixels), shard_size)
            for k in range(n_shards):
                part = range(k * shard_size, min((k + 1) * shard_size, len(pixels)))
                _write_shard(tmp / "train" / shard_name(c, k, n_shards),
                             [_example(c, int(seeds[c][i]), pixels[i], None) for i in part])
        manifest = train_only_manifest(
            counts, resolution, bit_depth, False,
            source={"path": str(provenance.get("checkpoint")), "format": SOURCE_FORMAT}, settings={},
            synthetic={**provenance, "seeds": {c: {"kept": compact_seeds(seeds[c])} for c in class_names},
                       "filters": None, "privacy_report": None})
        manifest["files"] = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*"))
                             if p.is_file()}
        write_json(tmp / "manifest.json", manifest)
    return manifest
