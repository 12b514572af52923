"""Memorization / privacy check: are generated samples copies of training images?

For every generated sample we find its nearest training sample (L2 distance, in pixel
space on flattened images or in a feature space). The same search for held-out real
images gives the real-vs-real baseline: how close an unseen real image of the same
distribution naturally comes to the training set. A generator that copies training
images puts many samples closer to the training set than almost any held-out image:

    threshold   = percentile(heldout->train distances, `percentile`)   (1st by default)
    suspicious  = fraction of generated samples with distance < threshold
    median_ratio = median(gen->train) / median(heldout->train)          (< 1: closer than real data)

plus a one-sided Mann-Whitney U test (H1: generated distances are stochastically smaller)
and a two-sided Kolmogorov-Smirnov test of the two distance distributions (scipy.stats).
An independent sample from the training distribution gives suspicious ~ percentile/100,
median_ratio ~ 1 and large p-values.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import scipy.stats

from tfstylegan.metrics.precision_recall import as_rows, distance_blocks
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import image_grid, to_uint8
from tfstylegan.utils.progress import Progress

# Percentiles reported for each distance distribution.
REPORTED_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def nearest_neighbours(query: np.ndarray, reference: np.ndarray, batch_size: int = 1024,
                       show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Nearest row of `reference` for every row of `query`, by L2 distance.

    Args:
      query: [Nq, ...] features [Nq, D] or images [Nq, H, W, C] (flattened).
      reference: [Nr, ...] with the same per-row size as `query`.
      batch_size: block size of the float64 distance computation (memory ~ 8 * batch_size^2 bytes
        plus two blocks of rows).
      show_progress: print progress with `tfstylegan.utils.progress.Progress`.

    Returns:
      indices int64 [Nq] into `reference`, and distances float64 [Nq]; the distances of the
      winners are recomputed directly as `|q - r|`, so an exact copy gives exactly 0.
    """
    query = as_rows(query, "query")
    reference = as_rows(reference, "reference")
    if query.shape[1] != reference.shape[1]:
        raise ValueError(f"`query` and `reference` rows must have the same size. "
                         f"Received: shapes={query.shape} and {reference.shape}")
    nq, nr = query.shape[0], reference.shape[0]
    best = np.full(nq, np.inf)
    indices = np.zeros(nq, dtype=np.int64)
    num_blocks = math.ceil(nq / max(int(batch_size), 1)) * math.ceil(nr / max(int(batch_size), 1))
    progress = Progress(num_blocks, desc="nearest neighbours", unit="blocks", enabled=show_progress)
    for rows, cols, dist in distance_blocks(query, reference, batch_size):
        block_arg = np.argmin(dist, axis=1)
        block_min = dist[np.arange(dist.shape[0]), block_arg]
        better = block_min < best[rows]
        best[rows] = np.where(better, block_min, best[rows])
        indices[rows] = np.where(better, block_arg + cols.start, indices[rows])
        progress.update()
    progress.close()
    distances = np.empty(nq, dtype=np.float64)
    step = max(int(batch_size), 1)
    for r0 in range(0, nq, step):
        q = np.asarray(query[r0:r0 + step], dtype=np.float64)
        r = np.asarray(reference[indices[r0:r0 + step]], dtype=np.float64)
        distances[r0:r0 + step] = np.sqrt(np.sum((q - r) ** 2, axis=1))
    return indices, distances


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _summary(distances: np.ndarray) -> dict[str, float]:
    out = {"min": float(distances.min()), "mean": float(distances.mean())}
    for p, value in zip(REPORTED_PERCENTILES, np.percentile(distances, REPORTED_PERCENTILES)):
        out[f"p{p:02d}"] = float(value)
    out["median"] = out["p50"]
    return out


@dataclasses.dataclass(frozen=True)
class MemorizationReport:
    """Result of `memorization_report`; `to_dict()` is the JSON-able summary.

    Arrays: gen_indices/gen_distances [Ng] (nearest training sample of each generated one),
    heldout_indices/heldout_distances [Nh] (same for the held-out real samples).
    """

    gen_indices: np.ndarray
    gen_distances: np.ndarray
    heldout_indices: np.ndarray
    heldout_distances: np.ndarray
    percentile: float
    threshold: float
    suspicious_fraction: float
    median_ratio: float
    mannwhitney_p: float
    ks_p: float
    num_train: int

    def to_dict(self) -> dict[str, Any]:
        """Counts, distance summaries and tests; non-finite numbers become None (valid JSON)."""
        return {
            "num_generated": int(self.gen_distances.shape[0]),
            "num_train": int(self.num_train),
            "num_heldout": int(self.heldout_distances.shape[0]),
            "gen_to_train": _summary(self.gen_distances),
            "heldout_to_train": _summary(self.heldout_distances),
            "threshold_percentile": float(self.percentile),
            "threshold": float(self.threshold),
            "suspicious_fraction": float(self.suspicious_fraction),
            "num_suspicious": int(np.sum(self.gen_distances < self.threshold)),
            "median_ratio": _finite_or_none(self.median_ratio),
            "mannwhitney_p_gen_closer": _finite_or_none(self.mannwhitney_p),
            "ks_p": _finite_or_none(self.ks_p),
        }


def memorization_report(generated: np.ndarray, train: np.ndarray, heldout: np.ndarray,
                        percentile: float = 1.0, batch_size: int = 1024,
                        show_progress: bool = False) -> MemorizationReport:
    """Compares generated->train nearest distances with held-out->train ones.

    Args:
      generated: [Ng, ...] generated images or their features.
      train: [Nt, ...] training images/features, same per-row size and scale.
      heldout: [Nh, ...] real images/features not used for training (val/test split).
      percentile: in (0, 100); generated samples closer to train than this percentile of the
        held-out distances count as suspicious copies.
      batch_size: block size of the distance computation.

    Returns:
      A `MemorizationReport` (see the module docstring for the formulas).
    """
    if not 0 < float(percentile) < 100:
        raise ValueError(f"`percentile` must lie in (0, 100). Received: percentile={percentile}")
    heldout_rows = as_rows(heldout, "heldout")
    if heldout_rows.shape[0] < 2:
        raise UserError(f"The memorization baseline needs at least 2 held-out real samples; use a larger "
                        f"validation/test split. Received: shape={np.shape(heldout)}")
    gen_idx, gen_dist = nearest_neighbours(generated, train, batch_size, show_progress)
    held_idx, held_dist = nearest_neighbours(heldout_rows, train, batch_size, show_progress)
    threshold = float(np.percentile(held_dist, percentile))
    held_median = float(np.median(held_dist))
    gen_median = float(np.median(gen_dist))
    if held_median > 0:
        median_ratio = gen_median / held_median
    else:
        median_ratio = math.inf if gen_median > 0 else math.nan
    if np.ptp(np.concatenate([gen_dist, held_dist])) == 0:
        mannwhitney_p = ks_p = 1.0  # identical constant samples: no evidence either way
    else:
        mannwhitney_p = float(scipy.stats.mannwhitneyu(gen_dist, held_dist, alternative="less").pvalue)
        ks_p = float(scipy.stats.ks_2samp(gen_dist, held_dist).pvalue)
    return MemorizationReport(
        gen_indices=gen_idx, gen_distances=gen_dist, heldout_indices=held_idx, heldout_distances=held_dist,
        percentile=float(percentile), threshold=threshold,
        suspicious_fraction=float(np.mean(gen_dist < threshold)), median_ratio=float(median_ratio),
        mannwhitney_p=mannwhitney_p, ks_p=ks_p, num_train=int(np.shape(train)[0]))


def _image_to_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 as is; uint16 by its high byte; floats are taken to be in [-1, 1] (`to_uint8`)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.uint16:
        return (images >> 8).astype(np.uint8)
    return to_uint8(images)


def closest_pairs_figure(gen_images: np.ndarray, train_images: np.ndarray, indices: np.ndarray,
                         distances: np.ndarray, n: int = 8, padding: int = 2) -> np.ndarray:
    """The `n` generated images closest to the training set, each beside its nearest training image.

    Args:
      gen_images: [Ng, H, W, C] generated images (uint8, uint16 or float in [-1, 1]).
      train_images: [Nt, H, W, C] training images, same size.
      indices, distances: [Ng] from `nearest_neighbours(gen, train)` (or a `MemorizationReport`).
      n: number of pairs (rows); capped at Ng.

    Returns:
      uint8 [rows*H + pad, 2*W + pad, C]: row i = (generated, nearest training), closest first.
    """
    gen_images = np.asarray(gen_images)
    train_images = np.asarray(train_images)
    indices = np.asarray(indices)
    distances = np.asarray(distances)
    if gen_images.ndim != 4 or train_images.ndim != 4 or gen_images.shape[1:] != train_images.shape[1:]:
        raise ValueError(f"closest_pairs_figure needs images [N, H, W, C] of one size. "
                         f"Received: gen={gen_images.shape}, train={train_images.shape}")
    if indices.shape != (gen_images.shape[0],) or distances.shape != (gen_images.shape[0],):
        raise ValueError(f"`indices` and `distances` need one entry per generated image. "
                         f"Received: indices={indices.shape}, distances={distances.shape}, "
                         f"gen={gen_images.shape}")
    order = np.argsort(distances, kind="stable")[:max(int(n), 1)]
    pairs = np.stack([_image_to_uint8(gen_images[order]), _image_to_uint8(train_images[indices[order]])],
                     axis=1)  # [n, 2, H, W, C]
    pairs = pairs.reshape((-1,) + gen_images.shape[1:])  # [2n, H, W, C]: gen0, train0, gen1, ...
    return image_grid(pairs, grid_w=2, padding=padding, pad_value=255)
