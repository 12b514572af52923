"""Metrics during training (stylegan2-ada-pytorch `--metrics`): FID, KID, precision/recall, IS per snapshot.

At every checkpoint the loop generates `num_images` images with G_ema (seeds 0..n-1, random
synthesis noise as the reference's metrics, seeded so that every snapshot sees the same draws; no
truncation; conditional models draw the classes of the real sample) and compares them
with `num_images` real images of the training (or val) split in one or more feature spaces:

    fid   Frechet distance                   -> fid_<space>                  (lower is better)
    kid   kernel inception distance (mean)   -> kid_<space>                  (lower is better)
    pr    improved precision and recall, k=3 -> precision_<space>, recall_<space> (higher is better)
    is    Inception Score of the judge       -> is_judge                     (higher is better)

A feature space is a callable `images float32 [N, H, W, 1] in [-1, 1] -> features [N, D]` or
`-> (features [N, D], probs [N, K])` (probabilities are needed for `is`). The launcher builds
them from `tfstylegan.apps.evaluation.features` (the fine-tuned judge, and ImageNet InceptionV3
from a local weights file): the training layer imports no application code. The real features
are computed once, when the run starts. The numbers are those of `launchers/evaluate.py` on the
same images (the same numpy metrics, `tfstylegan.metrics`); with the small CPU default of 256
images FID is biased upwards (compare snapshots with each other, not with published 50k values).

`BestSnapshot` picks the best checkpoint by one of the values (`best_metric`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfstylegan.data.pipeline import count_images, load_dataset
from tfstylegan.metrics import fid_from_features, inception_score, kernel_inception_distance, precision_recall
from tfstylegan.networks import seed_to_z
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.progress import Progress

METRIC_NAMES = ("fid", "kid", "pr", "is")
SPLITS = ("train", "val")
LOWER_IS_BETTER = ("fid", "kid")

FeatureFn = Callable[[np.ndarray], Any]  # images -> features, or (features, probs)


def parse_metrics(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """'fid,kid,pr' (or a list) -> ('fid', 'kid', 'pr'); empty -> (); unknown names are a UserError."""
    if spec is None:
        return ()
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    names = []
    for part in parts:
        name = str(part).strip().lower()
        if not name or name == "none":
            continue
        if name not in METRIC_NAMES:
            raise UserError(f"--metrics: unknown metric {name!r}. Choose among {', '.join(METRIC_NAMES)} "
                            f"(e.g. --metrics fid,kid,pr).")
        if name not in names:
            names.append(name)
    return tuple(names)


def metric_keys(metrics: Sequence[str], spaces: Sequence[str]) -> list[str]:
    """The result names, in order: e.g. ['fid_judge', 'kid_judge', 'precision_judge', 'recall_judge']."""
    keys = []
    for space in spaces:
        for m in metrics:
            if m == "pr":
                keys += [f"precision_{space}", f"recall_{space}"]
            elif m == "is":
                if space == "judge":
                    keys.append("is_judge")
            else:
                keys.append(f"{m}_{space}")
    return keys


def lower_is_better(key: str) -> bool:
    """True for FID and KID values, False for precision, recall and IS."""
    return key.split("_", 1)[0] in LOWER_IS_BETTER


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """What to compute at each checkpoint.

    Attributes:
      metrics: names among METRIC_NAMES ('fid', 'kid', 'pr', 'is').
      num_images: real and generated images per evaluation (capped at the split's size).
      split: 'train' (as ADA's metrics) or 'val'.
      best_metric: the value that picks the best snapshot (e.g. 'fid_judge', 'recall_inception');
        None = the first value computed.
      kid_subsets, kid_subset_size: KID subsets (the size capped at the number of images).
      pr_k: k of the precision/recall k-NN manifolds.
      is_splits: Inception Score splits.
      batch_size: images per generator call.
      seed: seed of the real sample's shuffle and of the KID subsets.
    """

    metrics: tuple[str, ...]
    num_images: int = 256
    split: str = "train"
    best_metric: str | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3
    is_splits: int = 10
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "metrics", parse_metrics(self.metrics))
        if not self.metrics:
            raise UserError("MetricsConfig needs at least one metric (--metrics fid,kid,pr,is).")
        if self.split not in SPLITS:
            raise UserError(f"--metrics_split must be one of {', '.join(SPLITS)} (the test split stays for the "
                            f"final evaluation). Received: {self.split!r}")
        if int(self.num_images) < self.min_images:
            raise UserError(f"--metrics_images must be at least {self.min_images} for --metrics "
                            f"{','.join(self.metrics)}. Received: {self.num_images}")
        if self.batch_size < 1 or self.kid_subsets < 1 or self.kid_subset_size < 2 or self.pr_k < 1:
            raise UserError(f"MetricsConfig: batch_size, kid_subsets, pr_k >= 1 and kid_subset_size >= 2. "
                            f"Received: {self.batch_size}, {self.kid_subsets}, {self.pr_k}, {self.kid_subset_size}")

    @property
    def min_images(self) -> int:
        """Fewest images the chosen metrics accept (PR needs more than k, IS one per split)."""
        need = 2
        if "pr" in self.metrics:
            need = max(need, self.pr_k + 1)
        if "is" in self.metrics:
            need = max(need, self.is_splits)
        return need


class SnapshotMetrics:
    """Computes the configured metrics of a generator against a fixed real sample.

    Args:
      config: `MetricsConfig`.
      feature_spaces: {'judge': fn, 'inception': fn, ...} (see the module docstring); 'is' needs a
        space named 'judge' that returns probabilities.
      verbose: show progress while extracting features.
    """

    def __init__(self, config: MetricsConfig, feature_spaces: Mapping[str, FeatureFn], verbose: bool = True):
        if not feature_spaces:
            raise UserError("--metrics needs a feature space: --metrics_classifier (the fine-tuned judge) and/or "
                            "--inception_weights (a local notop ImageNet InceptionV3 .h5).")
        if "is" in config.metrics and "judge" not in feature_spaces:
            raise UserError("--metrics is (Inception Score) needs the judge's class probabilities: pass "
                            "--metrics_classifier.")
        self.config = config
        self.spaces = dict(feature_spaces)
        self.verbose = verbose
        self.keys = metric_keys(config.metrics, list(self.spaces))
        best = config.best_metric or self.keys[0]
        if best not in self.keys:
            raise UserError(f"--best_metric {best!r} is not computed; choose one of {', '.join(self.keys)}.")
        self.best_metric = best
        self._real: dict[str, tuple[np.ndarray, np.ndarray | None]] | None = None
        self._labels: np.ndarray | None = None
        self.num_real = 0  # the real sample's size, set by prepare()

    def describe(self) -> dict:
        """The settings as recorded in run.json."""
        c = self.config
        return {"metrics": list(c.metrics), "feature_spaces": list(self.spaces), "keys": self.keys,
                "num_images": int(c.num_images), "split": c.split, "best_metric": self.best_metric,
                "kid_subsets": c.kid_subsets, "kid_subset_size": c.kid_subset_size, "pr_k": c.pr_k,
                "is_splits": c.is_splits, "seed": c.seed}

    # -- features ---------------------------------------------------------------------------------
    def _extract(self, name: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = self.spaces[name](np.asarray(images[..., :1], np.float32))
        feats, probs = (out if isinstance(out, tuple) else (out, None))
        feats = np.asarray(feats, np.float64).reshape(len(images), -1)
        return feats, (None if probs is None else np.asarray(probs, np.float64))

    def prepare(self, data_dir: str | os.PathLike, class_name: str | None, with_mask: bool = False) -> int:
        """Draws the real sample (shuffled with `seed`) and computes its features; returns its size."""
        c = self.config
        available = count_images(data_dir, c.split, class_name)
        n = min(int(c.num_images), int(available))
        if n < c.min_images:
            raise UserError(f"--metrics_split {c.split} of {data_dir} has {available} images"
                            f"{' of ' + class_name if class_name else ''}; --metrics "
                            f"{','.join(c.metrics)} needs at least {c.min_images}. Use --metrics_split train.")
        ds = load_dataset(data_dir, split=c.split, class_name=class_name, batch_size=None, shuffle=True,
                          seed=c.seed, with_mask=with_mask, cache=False)
        images, labels = [], []
        for x, y in ds.take(n).batch(c.batch_size).as_numpy_iterator():
            images.append(x)
            labels.append(y)
        images, self._labels = np.concatenate(images), np.concatenate(labels).astype(np.int64)
        self._real = {name: self._extract(name, images) for name in self.spaces}
        self.num_real = n
        return n

    # -- one evaluation ---------------------------------------------------------------------------
    def generate(self, G, n: int, batch_size: int) -> np.ndarray:
        """G's images for seeds 0..n-1 (random noise seeded by the batch; conditional: the real sample's classes)."""
        z = seed_to_z(range(n), int(G.z_dim))
        c_dim = int(G.c_dim)
        out = []
        progress = Progress(n, desc="metrics: generate", unit="img", enabled=self.verbose)
        for i in range(0, n, batch_size):
            zb = z[i:i + batch_size]
            cb = np.eye(c_dim, dtype=np.float32)[self._labels[i:i + batch_size]] if c_dim else None
            noise_seed = np.array([i, 17], np.int32)  # the same noise at every snapshot
            out.append(np.asarray(G(zb, cb, noise_mode="random", noise_seed=noise_seed), np.float32))
            progress.update(len(zb))
        progress.close()
        return np.concatenate(out)

    def __call__(self, G) -> dict[str, float]:
        """{key: value} of every configured metric for generator `G` (G_ema)."""
        if self._real is None:
            raise RuntimeError("SnapshotMetrics.prepare(...) must run before the first evaluation.")
        c = self.config
        n = len(self._labels)
        fakes = self.generate(G, n, c.batch_size)
        results: dict[str, float] = {}
        for space in self.spaces:
            real_f, _ = self._real[space]
            fake_f, fake_p = self._extract(space, fakes)
            for m in c.metrics:
                if m == "fid":
                    results[f"fid_{space}"] = fid_from_features(real_f, fake_f)
                elif m == "kid":
                    results[f"kid_{space}"] = kernel_inception_distance(
                        real_f, fake_f, num_subsets=c.kid_subsets, subset_size=c.kid_subset_size, seed=c.seed)[0]
                elif m == "pr":
                    pr = precision_recall(real_f, fake_f, k=c.pr_k)
                    results[f"precision_{space}"] = pr["precision"]
                    results[f"recall_{space}"] = pr["recall"]
                elif m == "is" and space == "judge":
                    if fake_p is None:
                        raise UserError("--metrics is needs the judge's probabilities; its feature function "
                                        "returned features only.")
                    results["is_judge"] = inception_score(fake_p, num_splits=c.is_splits)[0]
        return {k: float(results[k]) for k in self.keys}


class BestSnapshot:
    """The best value of one metric seen so far (lower for FID/KID, higher for precision, recall, IS)."""

    def __init__(self, key: str, value: float | None = None):
        self.key, self.value = key, value
        self.lower_is_better = lower_is_better(key)

    def improves(self, value: float) -> bool:
        """True if `value` (finite) beats the best so far (or is the first)."""
        if value is None or not math.isfinite(value):
            return False
        if self.value is None:
            return True
        return value < self.value if self.lower_is_better else value > self.value

    @classmethod
    def from_record(cls, key: str, record: Mapping | None) -> BestSnapshot:
        """Continues a run's best.json if it is about the same metric, else starts afresh."""
        if record and record.get("metric") == key and isinstance(record.get("value"), (int, float)):
            return cls(key, float(record["value"]))
        return cls(key)


def metrics_row(results: Mapping[str, float], *, kimg: float, step: int, tick: int, checkpoint: str,
                config: MetricsConfig, num_images: int, seconds: float) -> dict:
    """One line of `<run>/metrics.jsonl`."""
    return {"results": dict(results), "kimg": kimg, "step": step, "tick": tick, "checkpoint": checkpoint,
            "num_images": num_images, "split": config.split, "total_time": seconds, "timestamp": time.time()}
