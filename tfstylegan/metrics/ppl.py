"""Perceptual path length in W (Karras et al. 2019), full-path sampling.

For z0, z1 ~ N(0, I), t ~ U[0, 1) and w0, w1 = mapping(z0), mapping(z1):

    PPL = E[ d( g(lerp(w0, w1, t)), g(lerp(w0, w1, t + eps)) ) / eps^2 ]

where g is the synthesis network and d a squared perceptual distance. As in
stylegan2-ada-pytorch `metrics/perceptual_path_length.py` (space='w', sampling='full',
crop off) the mean is taken after dropping values below the 1st percentile (numpy
'lower') and above the 99th (numpy 'higher'). LPIPS weights cannot be downloaded here,
so the caller supplies `distance_fn` (e.g. squared distance of the judge's normalised
features); numbers are comparable between runs with the same `distance_fn` only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tfstylegan.utils.errors import UserError
from tfstylegan.utils.progress import Progress

ArrayFn = Callable[..., np.ndarray]


def filtered_mean(dist: np.ndarray) -> float:
    """Mean of `dist` [N] over the values within [1st percentile 'lower', 99th 'higher']."""
    dist = np.asarray(dist, dtype=np.float64)
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(dist[(dist >= lo) & (dist <= hi)].mean())


def _labels_for_batch(c: np.ndarray | None, n: int, rng: np.random.Generator) -> np.ndarray | None:
    """`n` label rows drawn (with replacement) from `c` [M, c_dim] or [c_dim]; None stays None."""
    if c is None:
        return None
    c = np.atleast_2d(np.asarray(c, dtype=np.float32))
    return c[rng.integers(0, c.shape[0], size=n)]


def perceptual_path_length(mapping_fn: ArrayFn, synthesis_fn: ArrayFn, distance_fn: ArrayFn,
                           num_samples: int, epsilon: float = 1e-4, batch_size: int = 16,
                           seed: int = 0, z_dim: int = 512, c: np.ndarray | None = None,
                           show_progress: bool = False) -> float:
    """Perceptual path length in W with full-path sampling.

    Args:
      mapping_fn: `(z [B, z_dim] float32, c [B, c_dim] float32 or None) -> w [B, w_dim]`
        or ws [B, num_ws, w_dim] (numpy or tensor). The interpolation is done in its dtype.
      synthesis_fn: `ws -> img [B, ...]`, called once per batch on the 2B stacked endpoints
        (first B at t, last B at t + eps).
      distance_fn: `(img_a [B, ...], img_b [B, ...]) -> [B]` squared perceptual distances.
      num_samples: number of (t, z0, z1) draws (100k in the paper).
      epsilon: step along the path (1e-4).
      batch_size: pairs per synthesis call.
      seed: seed of the numpy Generator that draws t, z0, z1 and labels: same seed, same result.
      z_dim: latent size.
      c: None for unconditional models, else label rows [M, c_dim] (e.g. one-hot of the
        training labels); each sample uses a row drawn at random.
      show_progress: print progress with `tfstylegan.utils.progress.Progress`.

    Returns:
      The filtered mean of `distance_fn(...) / epsilon^2`.
    """
    num_samples, batch_size, z_dim = int(num_samples), int(batch_size), int(z_dim)
    if num_samples < 2:
        raise UserError(f"PPL needs at least 2 samples (100000 in the paper). Received: num_samples={num_samples}")
    if batch_size < 1 or z_dim < 1 or not epsilon > 0:
        raise ValueError(f"PPL needs batch_size >= 1, z_dim >= 1 and epsilon > 0. Received: "
                         f"batch_size={batch_size}, z_dim={z_dim}, epsilon={epsilon}")
    rng = np.random.default_rng(seed)
    dists = []
    progress = Progress(num_samples, desc="ppl", unit="samples", enabled=show_progress)
    for start in range(0, num_samples, batch_size):
        b = min(batch_size, num_samples - start)
        t = rng.random(b)
        z = rng.standard_normal((2 * b, z_dim)).astype(np.float32)  # [z0; z1]
        labels = _labels_for_batch(c, b, rng)
        w = np.asarray(mapping_fn(z, None if labels is None else np.concatenate([labels, labels])))
        if w.ndim not in (2, 3) or w.shape[0] != 2 * b:
            raise ValueError(f"mapping_fn must return w [2B, w_dim] or ws [2B, num_ws, w_dim] for z [2B, z_dim]. "
                             f"Received: shape={w.shape} for B={b}")
        w0, w1 = w[:b], w[b:]
        t = t.astype(w.dtype).reshape((b,) + (1,) * (w.ndim - 1))  # broadcast over [num_ws,] w_dim
        wt0 = w0 + (w1 - w0) * t
        wt1 = w0 + (w1 - w0) * (t + w.dtype.type(epsilon))
        img = np.asarray(synthesis_fn(np.concatenate([wt0, wt1])))
        d = np.asarray(distance_fn(img[:b], img[b:]), dtype=np.float64).reshape(-1)
        if d.shape != (b,):
            raise ValueError(f"distance_fn must return one distance per pair. Received: shape={d.shape} for B={b}")
        dists.append(d / epsilon ** 2)
        progress.update(b)
    progress.close()
    dist = np.concatenate(dists)
    if not np.all(np.isfinite(dist)):
        raise ValueError(f"PPL distances contain NaN or inf ({int(np.sum(~np.isfinite(dist)))} of "
                         f"{dist.size}); check the generator output and distance_fn.")
    return filtered_mean(dist)
