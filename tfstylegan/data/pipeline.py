"""Loading a prepared dataset for training and evaluation (tf.data).

`load_dataset` reads `<data>/<split>/<class>-*.tfrecord` (one class, or all classes with
their labels for a conditional model), decodes the PNGs, caches the decoded uint8/uint16
images (4x smaller than float), shuffles, repeats, optionally mirrors (x-flip, mask too),
converts to float [-1, 1], batches and prefetches. The dataset's auto-shard policy is DATA
so it distributes under any tf.distribute strategy, even with fewer files than workers
(`strategy.experimental_distribute_dataset(ds)` with the global batch size).

Pixel values: 8-bit `x / 127.5 - 1`, 16-bit `x / 32767.5 - 1` (the inverses of
`tfstylegan.utils.images.to_uint8` / `to_uint16` up to their rounding offset).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfstylegan.data.classes import SPLITS
from tfstylegan.data.tfrecords import feature_spec
from tfstylegan.utils.errors import UserError

_REQUIRED_KEYS = ("format_version", "resolution", "bit_depth", "class_names", "has_mask", "counts",
                  "split_counts", "patients")


def read_manifest(data_dir: str | os.PathLike) -> dict:
    """The prepared dataset's `manifest.json`; `UserError` if it is missing or corrupt."""
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise UserError(f"{path} not found: {data_dir} is not a prepared dataset. Run "
                        "`python -m launchers.prepare_data --source ... --out DIR` first.")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is corrupt ({e}). Prepare the dataset again.") from None
    missing = [k for k in _REQUIRED_KEYS if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise UserError(f"{path} lacks {missing}; it was not written by prepare_data. "
                        "Prepare the dataset again.")
    return manifest


def _check_split_class(manifest: dict, data_dir, split: str, class_name: str | None) -> None:
    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}. Received: split={split!r}")
    if class_name is not None and class_name not in manifest["class_names"]:
        raise UserError(f"{data_dir} has no class {class_name!r}; it has "
                        f"{', '.join(manifest['class_names'])}.")


def count_images(data_dir: str | os.PathLike, split: str = "train", class_name: str | None = None) -> int:
    """Number of images in a split (of one class, or all classes), from the manifest."""
    manifest = read_manifest(data_dir)
    _check_split_class(manifest, data_dir, split, class_name)
    counts = manifest["split_counts"].get(split, {})
    return int(counts.get(class_name, 0) if class_name else sum(counts.values()))


def _shard_files(data_dir, split: str, class_name: str | None, manifest: dict) -> list[str]:
    _check_split_class(manifest, data_dir, split, class_name)
    classes = [class_name] if class_name else manifest["class_names"]
    files = []
    for c in classes:
        files += sorted(str(p) for p in (Path(data_dir) / split).glob(f"{c}-*-of-*.tfrecord"))
    if not files:
        what = f"class {class_name!r}" if class_name else "any class"
        raise UserError(f"{data_dir}: no images of {what} in the {split!r} split (no "
                        f"{split}/{class_name or '<class>'}-*.tfrecord). Choose another split or "
                        "prepare the dataset with a larger split fraction.")
    return files


def _records(data_dir, split: str, class_name: str | None, manifest: dict) -> tf.data.Dataset:
    """Parsed examples: dict of decoded image uint8/uint16 [H, W, 1], mask uint8 [H, W, 1], ..."""
    files = _shard_files(data_dir, split, class_name, manifest)
    dtype = tf.uint16 if int(manifest["bit_depth"]) == 16 else tf.uint8
    res = int(manifest["resolution"])
    spec = feature_spec()

    def parse(raw):
        ex = tf.io.parse_single_example(raw, spec)
        img = tf.io.decode_png(ex["image"], channels=1, dtype=dtype)
        img = tf.ensure_shape(img, [res, res, 1])
        mask = tf.cond(tf.strings.length(ex["mask"]) > 0,
                       lambda: tf.io.decode_png(ex["mask"], channels=1, dtype=tf.uint8),
                       lambda: tf.zeros([res, res, 1], tf.uint8))
        mask = tf.ensure_shape(mask, [res, res, 1])
        return {"image": img, "mask": mask, "label": tf.cast(ex["label"], tf.int32),
                "patient_id": ex["patient_id"], "slice_id": ex["slice_id"]}

    return tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                                              deterministic=True)


def load_dataset(data_dir: str | os.PathLike, split: str = "train", class_name: str | None = None,
                 batch_size: int | None = None, shuffle: bool = True, mirror: bool = False,
                 with_mask: bool = False, repeat: bool = False, seed: int = 0, cache: bool = True,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """A `tf.data.Dataset` of `(image, label)` from a prepared dataset.

    Args:
      data_dir: the prepared dataset folder (with manifest.json).
      split: 'train' | 'val' | 'test'.
      class_name: one class (per-class model), or None for all classes with labels.
      batch_size: batch size (the global batch under a strategy); None = unbatched elements.
      shuffle: shuffle over the whole split (buffer = its size), reshuffled every epoch.
      mirror: random x-flips (the mask flips with the image).
      with_mask: add the tumor mask as channel 1 (UserError if the dataset has no masks).
      repeat: repeat forever.
      seed: seed of the shuffle and of the flips.
      cache: keep the decoded images in memory after the first epoch.
      drop_remainder: drop the last incomplete batch (needed for a fixed batch shape).
    Returns:
      Elements `(image float32 [N, H, W, C] in [-1, 1], label int32 [N])`, C = 1 or 2 with the
      mask; without `batch_size` the leading N is absent.
    """
    manifest = read_manifest(data_dir)
    if with_mask and not manifest["has_mask"]:
        raise UserError(f"{data_dir} has no tumor masks (source {manifest.get('source', {}).get('format')}); "
                        "train without the mask channel.")
    if batch_size is not None and int(batch_size) < 1:
        raise UserError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    ds = _records(data_dir, split, class_name, manifest)
    ds = ds.map(lambda r: (r["image"], r["mask"], r["label"]), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if shuffle:
        n = max(count_images(data_dir, split, class_name), 1)
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    scale = 32767.5 if int(manifest["bit_depth"]) == 16 else 127.5

    def to_float(img, mask, label, flip):
        x = tf.cast(img, tf.float32) / scale - 1.0
        if with_mask:
            x = tf.concat([x, tf.cast(mask, tf.float32) / 127.5 - 1.0], axis=-1)
        if flip is not None:
            x = tf.cond(flip, lambda: tf.reverse(x, axis=[1]), lambda: x)
        return x, label

    if mirror:
        coins = tf.data.Dataset.random(seed=seed).map(lambda r: tf.equal(r % 2, 1))
        ds = tf.data.Dataset.zip((ds, coins)).map(
            lambda e, f: to_float(e[0], e[1], e[2], f), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda i, m, label: to_float(i, m, label, None), num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size is not None:
        ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)


def load_arrays(data_dir: str | os.PathLike, split: str = "train", class_name: str | None = None,
                max_images: int | None = None, with_mask: bool = False):
    """The split in memory, in file order (no shuffle), for metrics and the classifier.

    Returns:
      (images float32 [N, H, W, C] in [-1, 1] (C = 2 with `with_mask`), labels int32 [N],
      patient_ids list of N str).
    """
    manifest = read_manifest(data_dir)
    if with_mask and not manifest["has_mask"]:
        raise UserError(f"{data_dir} has no tumor masks.")
    ds = _records(data_dir, split, class_name, manifest)
    if max_images is not None:
        ds = ds.take(int(max_images))
    scale = 32767.5 if int(manifest["bit_depth"]) == 16 else 127.5
    images, labels, pids = [], [], []
    for r in ds.batch(256).as_numpy_iterator():
        x = r["image"].astype(np.float32) / scale - 1.0
        if with_mask:
            x = np.concatenate([x, r["mask"].astype(np.float32) / 127.5 - 1.0], axis=-1)
        images.append(x)
        labels.append(r["label"].astype(np.int32))
        pids += [p.decode("utf-8") for p in r["patient_id"]]
    res = int(manifest["resolution"])
    c = 2 if with_mask else 1
    if not images:
        return np.zeros([0, res, res, c], np.float32), np.zeros([0], np.int32), []
    return np.concatenate(images), np.concatenate(labels), pids

