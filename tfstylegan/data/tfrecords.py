"""TFRecord shards of the prepared dataset: one `tf.train.Example` per slice.

Features (docs/ARCHITECTURE.md, "Prepared dataset layout"):
`image` PNG bytes (8- or 16-bit gray), `mask` PNG bytes (8-bit 0/255, empty when the
source has no mask), `label` int64 canonical class index, `class_name` bytes,
`patient_id` bytes, `slice_id` bytes, `height`, `width` int64.

Shards are named `<class>-<shard:05d>-of-<n:05d>.tfrecord`, one class per shard, so a
per-class model reads its class's files and a conditional model reads them all.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

FEATURE_KEYS = ("image", "mask", "label", "class_name", "patient_id", "slice_id", "height", "width")


def encode_png(img: np.ndarray) -> bytes:
    """uint8 or uint16 [H, W] -> PNG bytes (gray, 8 or 16 bit)."""
    img = np.asarray(img)
    if img.ndim != 2 or img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_png takes uint8/uint16 [H, W]. Received: {img.dtype} {img.shape}")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 or uint16 [H, W] (numpy; the pipeline decodes with tf.io)."""
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im)
    return arr.astype(np.uint16) if arr.dtype.kind in "iu" and arr.dtype.itemsize > 1 else arr


def make_example(image_png: bytes, mask_png: bytes, label: int, class_name: str, patient_id: str,
                 slice_id: str, height: int, width: int) -> bytes:
    """One serialized `tf.train.Example`."""
    import tensorflow as tf  # here: saves start-up time: prepare checks every source before TensorFlow loads

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))

    ex = tf.train.Example(features=tf.train.Features(feature={
        "image": b(image_png),
        "mask": b(mask_png),
        "label": i(label),
        "class_name": b(class_name.encode("utf-8")),
        "patient_id": b(patient_id.encode("utf-8")),
        "slice_id": b(slice_id.encode("utf-8")),
        "height": i(height),
        "width": i(width),
    }))
    return ex.SerializeToString()


def feature_spec() -> dict:
    """The `tf.io.parse_single_example` spec of the features above."""
    import tensorflow as tf  # here: saves start-up time: prepare checks every source before TensorFlow loads

    s = tf.io.FixedLenFeature([], tf.string, default_value=b"")
    n = tf.io.FixedLenFeature([], tf.int64)
    return {"image": s, "mask": s, "label": n, "class_name": s, "patient_id": s, "slice_id": s,
            "height": n, "width": n}


def shard_name(class_name: str, shard: int, num_shards: int) -> str:
    """'glioma-00000-of-00002.tfrecord'."""
    return f"{class_name}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def write_shards(out_dir: str | os.PathLike, class_name: str, examples: list[bytes],
                 shard_size: int) -> list[Path]:
    """Writes `examples` (serialized) of one class into ceil(n / shard_size) shards in `out_dir`.

    Nothing is written for an empty list. Returns the shard paths.
    """
    import tensorflow as tf  # here: saves start-up time: prepare checks every source before TensorFlow loads

    if not examples:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = max(1, math.ceil(len(examples) / shard_size))
    paths = []
    for k in range(n):
        path = out_dir / shard_name(class_name, k, n)
        with tf.io.TFRecordWriter(str(path)) as w:
            for ex in examples[k * shard_size:(k + 1) * shard_size]:
                w.write(ex)
        paths.append(path)
    return paths


def read_examples(path: str | os.PathLike) -> list[dict]:
    """All examples of one shard as dicts of python values (for tests and inspection)."""
    import tensorflow as tf  # here: saves start-up time: prepare checks every source before TensorFlow loads

    out = []
    for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        ex = tf.train.Example.FromString(raw)
        f = ex.features.feature
        d = {}
        for k in FEATURE_KEYS:
            if f[k].HasField("int64_list"):
                d[k] = int(f[k].int64_list.value[0])
            else:
                v = f[k].bytes_list.value[0]
                d[k] = v if k in ("image", "mask") else v.decode("utf-8")
        out.append(d)
    return out
