"""Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds.

Each feature set defines a manifold: the union of balls around its points, each ball's
radius being the distance to the point's k-th nearest neighbour in the same set (k = 3).

    precision = fraction of fake points inside the real manifold
    recall    = fraction of real points inside the fake manifold

as in stylegan2-ada-pytorch `metrics/precision_recall.py`. Distances are computed in
blocks of `batch_size` x `batch_size` (float64), so memory stays O(batch_size^2) and
tens of thousands of features fit; the blockwise helpers are shared with
`tfstylegan.metrics.memorization`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tfstylegan.utils.errors import UserError


def as_rows(x: np.ndarray, name: str) -> np.ndarray:
    """Views `x` [N, ...] as [N, D] (images are flattened); dtype is kept, no copy if possible."""
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"`{name}` must be an array [N, ...] with N >= 1 (features [N, D] or images "
                         f"[N, H, W, C]). Received: shape={x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"`{name}` must be a real numeric array. Received: dtype={x.dtype}")
    return x.reshape(x.shape[0], -1)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances [Na, Nb] between the rows of a [Na, D] and b [Nb, D], in float64.

    Uses `|a|^2 + |b|^2 - 2 a.b` (clamped at 0), so equal rows may come out as ~1e-7
    rather than exactly 0; `nearest_neighbours` recomputes the winners exactly.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    sq = a @ b.T  # [Na, Nb]; updated in place to save memory traffic
    sq *= -2.0
    sq += np.einsum("ij,ij->i", a, a)[:, None]
    sq += np.einsum("ij,ij->i", b, b)[None, :]
    np.maximum(sq, 0.0, out=sq)
    return np.sqrt(sq, out=sq)


def distance_blocks(query: np.ndarray, reference: np.ndarray,
                    batch_size: int) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Yields (rows, cols, distances[rows, cols]) blocks covering the [Nq, Nr] distance matrix.

    `query` [Nq, D] and `reference` [Nr, D] may be any real dtype; each block is cast to
    float64 on the fly. Blocks come row-major: all column blocks of one row block in turn.
    """
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    for r0 in range(0, query.shape[0], batch_size):
        rows = slice(r0, min(r0 + batch_size, query.shape[0]))
        q = np.asarray(query[rows], dtype=np.float64)
        for c0 in range(0, reference.shape[0], batch_size):
            cols = slice(c0, min(c0 + batch_size, reference.shape[0]))
            yield rows, cols, pairwise_distances(q, reference[cols])


def kth_neighbour_radii(features: np.ndarray, k: int = 3, batch_size: int = 2048) -> np.ndarray:
    """Distance [N] from each row of `features` [N, D] to its k-th nearest other row.

    The point itself is the 0th neighbour (the (k+1)-th smallest distance, as in the official code).
    """
    features = as_rows(features, "features")
    n = features.shape[0]
    if not 1 <= k < n:
        raise UserError(f"k-NN radii need more points than k: got {n} points for k={k}. "
                        f"Evaluate more images or lower k. Received: shape={features.shape}, k={k}")
    smallest = np.full((n, k + 1), np.inf)  # running k+1 smallest distances per row
    for rows, _, dist in distance_blocks(features, features, batch_size):
        merged = np.concatenate([smallest[rows], dist], axis=1)
        smallest[rows] = np.partition(merged, k, axis=1)[:, :k + 1]
    return np.max(smallest, axis=1)


def inside_manifold(probes: np.ndarray, manifold: np.ndarray, radii: np.ndarray,
                    batch_size: int = 2048) -> np.ndarray:
    """Bool [Np]: whether each probe [Np, D] lies within radii[j] of some manifold point j [Nm, D]."""
    probes = as_rows(probes, "probes")
    manifold = as_rows(manifold, "manifold")
    inside = np.zeros(probes.shape[0], dtype=bool)
    for rows, cols, dist in distance_blocks(probes, manifold, batch_size):
        inside[rows] |= np.any(dist <= radii[None, cols], axis=1)
    return inside


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, k: int = 3,
                     batch_size: int = 2048) -> dict[str, float]:
    """Improved precision and recall of `fake_features` [Nf, D] against `real_features` [Nr, D].

    Args:
      real_features, fake_features: feature vectors (or anything [N, ...], flattened).
      k: neighbourhood size of the k-NN manifolds (3 in the paper).
      batch_size: block size of the distance computation (memory ~ 8 * batch_size^2 bytes).

    Returns:
      {'precision': fraction of fake inside the real manifold,
       'recall': fraction of real inside the fake manifold}.
    """
    real = as_rows(real_features, "real_features")
    fake = as_rows(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"Feature sets must have the same dimension. "
                         f"Received: shapes={real.shape} and {fake.shape}")
    k = int(k)
    real_radii = kth_neighbour_radii(real, k, batch_size)
    fake_radii = kth_neighbour_radii(fake, k, batch_size)
    precision = inside_manifold(fake, real, real_radii, batch_size).mean()
    recall = inside_manifold(real, fake, fake_radii, batch_size).mean()
    return {"precision": float(precision), "recall": float(recall)}
