"""A finished synthetic dataset's papers: the privacy report and pictures, previews, slices.csv, manifest.json.
"""

from __future__ import annotations

import csv
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfstylegan.apps.synthetic_dataset.filters import PrivacyReference
from tfstylegan.apps.synthetic_dataset.settings import (CLOSEST_PAIRS, PNG_DIR, PREVIEW_IMAGES,
                                                        PRIVACY_DIR, REASONS, SOURCE_FORMAT, STATE_DIR,
                                                        SyntheticDatasetConfig, compact_seeds, slice_id)
from tfstylegan.apps.synthetic_dataset.shards import _num_shards, _png_paths, _read_kept, train_only_manifest
from tfstylegan.data.tfrecords import shard_name
from tfstylegan.utils.charts import histogram_figure, save_figure
from tfstylegan.utils.images import image_grid, save_png, upscale_for_viewing
from tfstylegan.utils.io import atomic_open, sha256_file, write_json


def _summary(values: Sequence[float]) -> dict[str, float] | None:
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return None
    pcts = np.percentile(v, [1, 5, 50])
    return {"min": float(v.min()), "p01": float(pcts[0]), "p05": float(pcts[1]), "median": float(pcts[2]),
            "mean": float(v.mean())}


def _class_report(class_name: str, count: int, states: list[dict], reference: PrivacyReference,
                  config: SyntheticDatasetConfig) -> dict[str, Any]:
    kept = [r for s in states for r in s["kept"]]
    dropped = [r for s in states for r in s["dropped"]]
    drawn = len(kept) + len(dropped)
    base = reference.baselines[class_name]
    by_reason = {r: sum(r in d["reasons"] for d in dropped) for r in REASONS}
    privacy = sum(any(x.startswith("privacy") for x in d["reasons"]) for d in dropped)
    closest = sorted(range(len(kept)), key=lambda i: kept[i]["pixel_distance"])[:CLOSEST_PAIRS]
    report = {
        "wanted": int(count), "kept": len(kept), "drawn": drawn, "dropped": len(dropped),
        "dropped_privacy": int(privacy), "dropped_privacy_pixels": by_reason["privacy_pixels"],
        "dropped_privacy_features": by_reason["privacy_features"],
        "rejected_quality": by_reason["quality"],
        "quality_rejection_rate": (by_reason["quality"] / drawn) if drawn else 0.0,
        "privacy_drop_rate": (privacy / drawn) if drawn else 0.0,
        "seeds_kept": compact_seeds([r["seed"] for r in kept]),
        "seeds_dropped": compact_seeds([r["seed"] for r in dropped]),
        "heldout_slices": base.num_heldout,
        "threshold_pixels": base.pixel_threshold, "threshold_features": base.feature_threshold,
        "heldout_to_train_pixels": _summary(base.pixel_distances),
        "kept_to_train_pixels": _summary([r["pixel_distance"] for r in kept]),
        "heldout_to_train_features": None if base.feature_distances is None else _summary(base.feature_distances),
        "kept_to_train_features": (_summary([r["feature_distance"] for r in kept])
                                   if reference.judge is not None else None),
        "min_class_prob_kept": (min(r["class_prob"] for r in kept) if kept and "class_prob" in kept[0] else None),
        "closest_kept": [{"position": i, **kept[i]} for i in closest],
    }
    return report


def _finish(partial: Path, counts: dict[str, int], states: dict[str, list[dict]], reference: PrivacyReference,
            config: SyntheticDatasetConfig, settings: dict, with_mask: bool, resolution: int) -> dict:
    """Report, figures, previews, slices.csv and the manifest, all inside `partial`."""
    bit_depth = reference.bit_depth
    per_class = {c: _class_report(c, counts[c], states[c], reference, config) for c in counts if counts[c] > 0}
    figures = {}
    for c, rep in per_class.items():
        n_shards = _num_shards(counts[c], config.shard_size)
        closest = rep["closest_kept"]
        if closest:
            gen_px = _read_kept(partial, c, [r["position"] for r in closest], config.shard_size, n_shards, bit_depth)
            train_idx = [r["nearest_train_index"] for r in closest]
            pairs = np.stack([gen_px, reference.train[train_idx]], axis=1).reshape((-1,) + gen_px.shape[1:])
            if bit_depth == 16:
                pairs = (pairs >> 8).astype(np.uint8)
            grid = image_grid(pairs[..., None], grid_w=2, padding=2, pad_value=255)
            save_png(partial / PRIVACY_DIR / f"closest_pairs_{c}.png", upscale_for_viewing(grid, resolution))
            figures[c] = {"closest_pairs": f"{PRIVACY_DIR}/closest_pairs_{c}.png"}
            kept_d = [r["pixel_distance"] for s in states[c] for r in s["kept"]]
            base = reference.baselines[c]
            if len(base.pixel_distances):
                chart = histogram_figure(kept_d, base.pixel_distances, ("synthetic (kept) -> train",
                                                                       "held-out real -> train"),
                                         threshold=base.pixel_threshold,
                                         title=f"{c}: pixel distance to the nearest real training slice")
                save_figure(chart, partial / PRIVACY_DIR / f"distances_{c}", formats=("png",))
                figures[c]["distances"] = f"{PRIVACY_DIR}/distances_{c}.png"
        preview = _read_kept(partial, c, list(range(min(PREVIEW_IMAGES, counts[c]))), config.shard_size, n_shards,
                             bit_depth)
        if bit_depth == 16:
            preview = (preview >> 8).astype(np.uint8)
        save_png(partial / f"preview_{c}.png", image_grid(preview[..., None], grid_w=min(4, len(preview)), padding=2))

    totals = {k: int(sum(r[k] for r in per_class.values()))
              for k in ("wanted", "kept", "drawn", "dropped", "dropped_privacy", "rejected_quality")}
    report = {
        "what": "Each synthetic slice's nearest real training slice, against the held-out baseline "
                "(tfstylegan.apps.synthetic_dataset). Release the dataset only with this report. The "
                "closest_pairs pictures show real training slices: review them, do not publish them.",
        "reference": {"data": settings["data"]["path"], **reference.summary()},
        "filters": settings["filters"],
        "totals": totals,
        "per_class": per_class,
        "figures": figures,
    }
    write_json(partial / PRIVACY_DIR / "report.json", report)

    # slices.csv (and the PNG checksums), from the shard states
    rows = []
    for c in states:
        n_shards = _num_shards(counts[c], config.shard_size)
        for s in states[c]:
            for r in s["kept"]:
                image_file, mask_file = _png_paths(c, r["seed"], with_mask) if config.png else ("", "")
                rows.append({"slice_id": slice_id(c, r["seed"]), "class": c, "seed": r["seed"],
                             "shard": f"train/{shard_name(c, s['shard'], n_shards)}", "file": image_file,
                             "mask_file": mask_file, "pixel_distance": f"{r['pixel_distance']:.6g}",
                             "feature_distance": f"{r['feature_distance']:.6g}" if "feature_distance" in r else "",
                             "class_prob": f"{r['class_prob']:.6g}" if "class_prob" in r else ""})
    with atomic_open(partial / "slices.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["slice_id"])
        writer.writeheader()
        writer.writerows(rows)
    if config.png:
        listed = {r["file"] for r in rows} | {r["mask_file"] for r in rows if r["mask_file"]}
        for p in sorted((partial / PNG_DIR).rglob("*")):  # files of an interrupted shard that was redone differently
            if p.is_file() and p.relative_to(partial).as_posix() not in listed:
                p.unlink()
        with atomic_open(partial / PNG_DIR / "SHA256SUMS", "w", encoding="utf-8") as f:
            for name in sorted(listed):
                f.write(f"{sha256_file(partial / name)}  {Path(name).relative_to(PNG_DIR).as_posix()}\n")

    manifest = train_only_manifest(
        counts, resolution, bit_depth, with_mask,
        source={"path": settings["checkpoint"], "format": SOURCE_FORMAT,
                "note": "generated slices: no patients; slice_id = patient_id = '<class>-seed<seed>', "
                        "all in the train split (validate and test on real data)"},
        settings=config.to_dict(),
        synthetic={
            **{k: settings[k] for k in ("checkpoint", "generators", "data", "classifier", "truncation_psi",
                                        "noise_mode", "filters")},
            "seeds": {c: {"first": int(config.seed), "kept": per_class[c]["seeds_kept"], "drawn": per_class[c]["drawn"]}
                      for c in per_class},
            "with_mask": bool(with_mask),
            "privacy_report": f"{PRIVACY_DIR}/report.json",
            "privacy": {c: {k: per_class[c][k] for k in ("kept", "drawn", "dropped_privacy", "rejected_quality",
                                                       "quality_rejection_rate")} for c in per_class},
            "png": f"{PNG_DIR}/" if config.png else None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
    shutil.rmtree(partial / STATE_DIR)  # the states live on in the report and slices.csv
    for p in sorted(partial.rglob("*")):
        rel = p.relative_to(partial).as_posix()
        if p.is_file() and not (rel.startswith(f"{PNG_DIR}/") and rel != f"{PNG_DIR}/SHA256SUMS"):
            manifest["files"][rel] = sha256_file(p)
    write_json(partial / "manifest.json", manifest)
    return manifest
