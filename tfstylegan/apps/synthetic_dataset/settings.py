"""A synthetic dataset's settings: what to generate and how to filter it (no TensorFlow).

`SyntheticDatasetConfig` checks every value when made, so the launcher refuses bad flags before TensorFlow
starts; `class_counts` turns it into slices per class; `slice_id` names a synthetic slice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfstylegan.apps.generation.seeds import MAX_SEED
from tfstylegan.utils.errors import UserError

FORMAT_VERSION = 1  # the prepared-dataset format (tfstylegan.data.prepare.FORMAT_VERSION)
SOURCE_FORMAT = "synthetic"
PREVIEW_IMAGES = 16
CLOSEST_PAIRS = 8
PRIVACY_DIR = "privacy"
PNG_DIR = "png"
STATE_DIR = "_state"
REASONS = ("privacy_pixels", "privacy_features", "quality")
"""Why a candidate was dropped: too close to a training slice in pixels / in judge features, or too unlike
its class for the judge. One candidate may have several."""


@dataclasses.dataclass(frozen=True)
class SyntheticDatasetConfig:
    """What to generate and how to filter it.

    Attributes:
      num_per_class: slices per class (0 when `match_ratios`).
      num: total slices, shared among the classes in the real training split's ratios (`match_ratios`).
      match_ratios: use `num` and the real class ratios instead of `num_per_class`.
      truncation_psi: truncation (1 = none).
      noise_mode: 'const' (default, as `generate`), 'random' (noise seeded by each image's seed) or 'none'.
      with_mask: store the tumor masks of a 2-channel (`--with_mask`) model; None = when the model makes them.
      privacy_percentile: drop candidates closer to a training slice than this percentile of the held-out
        baseline (0 = keep all, distances still reported).
      min_class_prob: the judge's minimum probability of the candidate's class (0 = no quality filter).
      seed: first candidate seed of every class.
      batch_size: candidates per generator / judge call.
      shard_size: slices per TFRecord shard (and per resumable step).
      max_draws_per_slice: give up when a class needs more than this many candidates per kept slice.
      png: also write a PNG per slice (and per mask) under png/, listed in slices.csv.
    """

    num_per_class: int = 0
    num: int = 0
    match_ratios: bool = False
    truncation_psi: float = 1.0
    noise_mode: str = "const"
    with_mask: bool | None = None
    privacy_percentile: float = 1.0
    min_class_prob: float = 0.0
    seed: int = 0
    batch_size: int = 64
    shard_size: int = 1024
    max_draws_per_slice: float = 10.0
    png: bool = False

    def __post_init__(self):
        def check(cond, msg):
            if not cond:
                raise UserError(msg)

        if self.match_ratios:
            check(self.num > 0, f"--num must be > 0 with --match_ratios (the total number of slices). "
                  f"Received: --num={self.num}")
            check(self.num_per_class == 0, "Pass either --num_per_class, or --match_ratios with --num; not both.")
        else:
            check(self.num == 0, "--num goes with --match_ratios (slices in the real class ratios); for the same "
                  "number in every class pass --num_per_class.")
            check(self.num_per_class > 0, f"--num_per_class must be > 0 (or use --match_ratios --num N). "
                  f"Received: --num_per_class={self.num_per_class}")
        check(isinstance(self.truncation_psi, (int, float)) and math.isfinite(self.truncation_psi),
              f"--truncation_psi must be a finite number (1 = no truncation, 0.7 a common choice). "
              f"Received: {self.truncation_psi}")
        check(math.isfinite(self.privacy_percentile) and 0 <= self.privacy_percentile < 100,
              f"--privacy_percentile must lie in [0, 100) (0 = no privacy filter; 1 drops candidates closer to a "
              f"training slice than 99 % of held-out real slices are). Received: {self.privacy_percentile}")
        check(math.isfinite(self.min_class_prob) and 0 <= self.min_class_prob < 1,
              f"--min_class_prob must lie in [0, 1) (0 = no quality filter). Received: {self.min_class_prob}")
        check(0 <= self.seed <= MAX_SEED, f"--seed must lie in [0, {MAX_SEED}]. "
              f"Received: {self.seed}")
        check(self.batch_size >= 1, f"--batch must be >= 1. Received: {self.batch_size}")
        check(self.shard_size >= 1, f"--shard_size must be >= 1. Received: {self.shard_size}")
        check(math.isfinite(self.max_draws_per_slice) and self.max_draws_per_slice >= 1,
              f"--max_draws_per_slice must be >= 1. Received: {self.max_draws_per_slice}")
        # here: last, and not at the top: networks.synthesis imports TensorFlow, and the launcher checks its
        # flags before TensorFlow starts (tests/test_layout.py)
        from tfstylegan.networks.synthesis import check_noise_mode

        check_noise_mode(self.noise_mode)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def class_counts(config: SyntheticDatasetConfig, class_names: Sequence[str],
                 real_train_counts: dict[str, int]) -> dict[str, int]:
    """Slices to make per class: `num_per_class` each, or `num` split in the real training ratios.

    The ratio split rounds by largest remainder, so the counts sum to `num` exactly.
    """
    class_names = list(class_names)
    if not config.match_ratios:
        return {c: int(config.num_per_class) for c in class_names}
    real = np.array([int(real_train_counts.get(c, 0)) for c in class_names], np.float64)
    if real.sum() <= 0:
        raise UserError(f"--match_ratios needs real training slices of {', '.join(class_names)}; the real "
                        "dataset's train split has none. Pass --num_per_class instead.")
    exact = real / real.sum() * int(config.num)
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[:int(config.num) - int(counts.sum())]:
        counts[i] += 1
    return {c: int(n) for c, n in zip(class_names, counts)}


def compact_seeds(seeds: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8' (the `--seeds` syntax of `generate`, so the slices can be remade)."""
    seeds = sorted(int(s) for s in seeds)
    parts: list[str] = []
    i = 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)


def slice_id(class_name: str, seed: int) -> str:
    """The slice (and patient) id of a synthetic slice: 'glioma-seed000042'."""
    return f"{class_name}-seed{int(seed):06d}"
