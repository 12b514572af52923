"""The filters: the real reference a synthetic slice must not copy, and each candidate's decision.

Privacy: a candidate's nearest real training slice, in pixels and (with a judge) in the judge's features,
against the held-out baseline of its class (`PrivacyReference`). Quality: the judge's probability of the
candidate's own class. `candidates` yields the candidates of one class in seed order, each with its reasons.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfstylegan.apps.generation.images import generate_images
from tfstylegan.apps.generation.loading import ClassGenerator
from tfstylegan.apps.generation.seeds import MAX_SEED
from tfstylegan.apps.synthetic_dataset.settings import SyntheticDatasetConfig
from tfstylegan.data.tfrecords import decode_png, feature_spec
from tfstylegan.metrics.memorization import nearest_neighbours
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import to_uint8, to_uint16


def _pixel_scale(bit_depth: int) -> float:
    return 32767.5 if int(bit_depth) == 16 else 127.5


def quantize(images: np.ndarray, bit_depth: int) -> np.ndarray:
    """float [N, H, W, 1] in [-1, 1] -> what a PNG of `bit_depth` stores: uint8 / uint16 [N, H, W]."""
    images = np.asarray(images)[..., 0]
    return to_uint16(images) if int(bit_depth) == 16 else to_uint8(images)


def to_float(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """uint [N, H, W] -> float32 [N, H, W, 1] in [-1, 1], as `tfstylegan.data.pipeline` reads them."""
    return (np.asarray(pixels, np.float32) / _pixel_scale(bit_depth) - 1.0)[..., None]


def read_split(data_dir: str | os.PathLike, split: str, class_names: Sequence[str] | None = None,
               bit_depth: int = 8) -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """The stored pixels of a prepared split, exactly: (uint8/uint16 [N, H, W], class names, slice ids, patient ids).

    Shards are read in name order (class by class), PNGs decoded with PIL, nothing converted to float.
    """
    files = sorted((Path(data_dir) / split).glob("*-*-of-*.tfrecord"))
    if class_names is not None:
        files = [f for f in files if f.name.rsplit("-", 3)[0] in set(class_names)]
    images, classes, slices, patients = [], [], [], []
    if files:
        spec = feature_spec()
        ds = tf.data.TFRecordDataset([str(f) for f in files]).batch(256).map(lambda r: tf.io.parse_example(r, spec))
        for ex in ds.as_numpy_iterator():
            images += [decode_png(b) for b in ex["image"]]
            classes += [b.decode("utf-8") for b in ex["class_name"]]
            slices += [b.decode("utf-8") for b in ex["slice_id"]]
            patients += [b.decode("utf-8") for b in ex["patient_id"]]
    dtype = np.uint16 if int(bit_depth) == 16 else np.uint8
    if not images:
        return np.zeros([0, 0, 0], dtype), [], [], []
    return np.stack(images).astype(dtype), classes, slices, patients


@dataclasses.dataclass
class _ClassBaseline:
    """Held-out (val + test) real slices of one class: their distances to the training set and the thresholds."""

    num_heldout: int
    pixel_distances: np.ndarray
    feature_distances: np.ndarray | None
    pixel_threshold: float | None
    feature_threshold: float | None


class PrivacyReference:
    """The real training slices no synthetic slice may copy, and the held-out baseline of each class.

    Args:
      data_dir: the real prepared dataset; its train split is the reference (every class).
      manifest: its manifest.
      classes: the classes that will be generated (each needs a baseline).
      judge: a `tfstylegan.apps.evaluation.features.Judge` for the feature space, or None (pixels only).
      percentile: the baseline percentile below which a candidate is dropped (0 = none dropped).
    """

    def __init__(self, data_dir, manifest: dict, classes: Sequence[str], judge=None, percentile: float = 1.0,
                 show_progress: bool = True):
        self.bit_depth = int(manifest["bit_depth"])
        self.scale = _pixel_scale(self.bit_depth)
        self.percentile = float(percentile)
        self.judge = judge
        self.train, _, self.train_slices, _ = read_split(
            data_dir, "train", bit_depth=self.bit_depth)
        if len(self.train) == 0:
            raise UserError(f"{data_dir} has no train split (manifest split_counts: {manifest.get('split_counts')}); "
                            "the privacy filter compares every synthetic slice with the real training slices. "
                            "Pass the prepared dataset the generator was trained on.")
        self.train_rows = self.train.reshape(len(self.train), -1)
        self.train_features = None
        if judge is not None:
            self.train_features = self._features(self.train, f"judge {len(self.train)} train slices", show_progress)
        self.baselines: dict[str, _ClassBaseline] = {}
        heldout, heldout_classes = [], []
        for split in ("val", "test"):
            pixels, names = read_split(data_dir, split, classes, self.bit_depth)[:2]
            if len(pixels):
                heldout.append(pixels)
                heldout_classes += names
        heldout = np.concatenate(heldout) if heldout else self.train[:0]
        heldout_classes = np.asarray(heldout_classes)
        for c in classes:
            held = heldout[heldout_classes == c] if len(heldout) else heldout
            if len(held) < 2:
                if self.percentile > 0:
                    raise UserError(f"The privacy filter needs at least 2 held-out (val/test) real slices of class "
                                    f"{c!r} as its baseline; {data_dir} has {len(held)}. Prepare the data with "
                                    "held-out patients (--split 0.8,0.1,0.1), or pass --privacy_percentile 0 to "
                                    "skip the filter (the distances are still reported).")
                self.baselines[c] = _ClassBaseline(len(held), np.zeros([0]), None, None, None)
                continue
            px = self.pixel_nearest(self._rows(held))[1]
            ft = None
            if judge is not None:
                ft = self.feature_nearest(self._features(held, f"judge held-out {c}", False))[1]
            on = self.percentile > 0
            self.baselines[c] = _ClassBaseline(
                len(held), px, ft,
                float(np.percentile(px, self.percentile)) if on else None,
                float(np.percentile(ft, self.percentile)) if on and ft is not None else None)

    @staticmethod
    def _rows(pixels: np.ndarray) -> np.ndarray:
        return pixels.reshape(len(pixels), -1)

    def _features(self, pixels: np.ndarray, desc: str, show_progress: bool) -> np.ndarray:
        return judge_pixels(self.judge, pixels, self.bit_depth, desc, show_progress)[0]

    def pixel_nearest(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stored pixels [N, D] -> (nearest training index int64 [N], distance in [-1, 1] units float64 [N])."""
        idx, dist = nearest_neighbours(rows, self.train_rows, batch_size=256)
        return idx, dist / self.scale

    def feature_nearest(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return nearest_neighbours(features, self.train_features, batch_size=1024)

    def summary(self) -> dict[str, Any]:
        return {"train_slices": int(len(self.train)), "space": ["pixels"] + (["judge features"] if self.judge else []),
                "percentile": self.percentile,
                "heldout_slices": {c: b.num_heldout for c, b in self.baselines.items()}}


def judge_pixels(judge, pixels: np.ndarray, bit_depth: int, desc: str | None = None,
                 show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The judge's (features [N, 2048], probs [N, K]) of stored pixels [N, H, W].

    The input is padded to whole batches so that the judge's traced function sees one shape and is
    traced once (each InceptionV3 trace costs seconds); the progress line counts the padded images.
    """
    n, b = len(pixels), judge.batch_size
    padded = np.zeros((max(1, math.ceil(n / b)) * b,) + pixels.shape[1:], pixels.dtype)
    padded[:n] = pixels
    feats, probs = judge.features_and_probs(to_float(padded, bit_depth), desc, show_progress)
    return feats[:n], probs[:n]


@dataclasses.dataclass
class Candidate:
    """One generated slice and the filters' view of it."""

    seed: int
    pixels: np.ndarray                 # uint8/uint16 [H, W], as stored
    mask: np.ndarray | None            # uint8 [H, W] 0/255, or None
    pixel_distance: float
    nearest_train: int
    feature_distance: float | None
    nearest_train_features: int | None
    class_prob: float | None
    reasons: tuple[str, ...]

    @property
    def kept(self) -> bool:
        return not self.reasons

    def record(self, reference: PrivacyReference) -> dict[str, Any]:
        r = {"seed": self.seed, "pixel_distance": self.pixel_distance,
             "nearest_train": reference.train_slices[self.nearest_train], "nearest_train_index": self.nearest_train}
        if self.feature_distance is not None:
            r["feature_distance"] = self.feature_distance
            r["nearest_train_features"] = reference.train_slices[self.nearest_train_features]
        if self.class_prob is not None:
            r["class_prob"] = self.class_prob
        if self.reasons:
            r["reasons"] = list(self.reasons)
        return r


def generate_candidates(gen: ClassGenerator, seeds: Sequence[int], truncation_psi: float,
                        noise_mode: str) -> np.ndarray:
    """The images of `seeds`, float32 [N, H, W, C] in about [-1, 1] (`generation.generate_images`)."""
    return generate_images(gen, list(seeds), truncation_psi=truncation_psi, noise_mode=noise_mode,
                           batch_size=max(1, len(seeds)), show_progress=False)


def candidates(gen: ClassGenerator, class_name: str, first_seed: int, config: SyntheticDatasetConfig,
               reference: PrivacyReference, judge=None, with_mask: bool = False) -> Iterator[Candidate]:
    """Candidates of one class from `first_seed` on, in seed order, each with its filter decision.

    Seeds are generated in batches aligned to `config.seed` (seed + k * batch_size, ...), so each seed is
    always computed in the same batch, bit for bit, also when a resumed run starts in the middle of one.
    """
    baseline = reference.baselines[class_name]
    class_index = judge.class_names.index(class_name) if judge is not None else None
    seed = int(config.seed) + (int(first_seed) - int(config.seed)) // config.batch_size * config.batch_size
    while True:
        if seed > MAX_SEED:
            raise UserError(f"Ran out of seeds for {class_name!r} (the last is {MAX_SEED}).")
        seeds = list(range(seed, min(seed + config.batch_size, MAX_SEED + 1)))
        images = generate_candidates(gen, seeds, config.truncation_psi, config.noise_mode)
        pixels = quantize(images[..., :1], reference.bit_depth)
        masks = (np.where(images[..., 1] > 0, 255, 0).astype(np.uint8) if with_mask else None)
        px_idx, px_dist = reference.pixel_nearest(pixels.reshape(len(pixels), -1))
        ft_idx = ft_dist = probs = None
        if judge is not None:
            feats, probs = judge_pixels(judge, pixels, reference.bit_depth)
            ft_idx, ft_dist = reference.feature_nearest(feats)
        for i, s in enumerate(seeds):
            if s < first_seed:  # before the resume point: its batch mates need it, the dataset has it
                continue
            reasons = []
            if baseline.pixel_threshold is not None and px_dist[i] < baseline.pixel_threshold:
                reasons.append("privacy_pixels")
            if (ft_dist is not None and baseline.feature_threshold is not None
                    and ft_dist[i] < baseline.feature_threshold):
                reasons.append("privacy_features")
            prob = float(probs[i, class_index]) if probs is not None else None
            if config.min_class_prob > 0 and prob < config.min_class_prob:
                reasons.append("quality")
            yield Candidate(seed=s, pixels=pixels[i], mask=None if masks is None else masks[i],
                            pixel_distance=float(px_dist[i]), nearest_train=int(px_idx[i]),
                            feature_distance=None if ft_dist is None else float(ft_dist[i]),
                            nearest_train_features=None if ft_idx is None else int(ft_idx[i]),
                            class_prob=prob, reasons=tuple(reasons))
        seed = seeds[-1] + 1
