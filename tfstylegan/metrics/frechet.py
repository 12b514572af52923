"""Fréchet Inception Distance and Kernel Inception Distance from feature vectors.

FID (Heusel et al. 2017) fits a Gaussian to each feature set and returns

    FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)),

with the matrix square root from `scipy.linalg.sqrtm` and the usual fix for a singular
product (bioinf-jku/TTUR, mseitzer/pytorch-fid): if the root is not finite, add
`eps * I` to both covariances and retry; the real part is kept, and a large imaginary
part is an error.

KID (Bińkowski et al. 2018) is the unbiased estimate of the squared MMD with the cubic
polynomial kernel `k(x, y) = (x . y / d + 1)^3`, averaged over random subsets as in
stylegan2-ada-pytorch `metrics/kernel_inception_distance.py`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from tfstylegan.utils.errors import UserError


def _as_features(features: np.ndarray, name: str, min_rows: int = 2) -> np.ndarray:
    """Returns `features` [N, D] as float64 after checking shape and finiteness."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array [N, D] of feature vectors. "
                         f"Received: shape={features.shape}")
    if features.shape[0] < min_rows:
        raise UserError(f"`{name}` needs at least {min_rows} feature vectors; evaluate more images. "
                        f"Received: shape={features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"`{name}` contains NaN or inf values. Received: shape={features.shape}")
    return features


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] (float64) of `features` [N, D], N >= 2."""
    features = _as_features(features, "features")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
      mu1, mu2: [D] means. sigma1, sigma2: [D, D] covariances.
      eps: diagonal offset used only when `sqrtm(sigma1 @ sigma2)` is not finite.

    Returns:
      `|mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr(sqrtm(sigma1 @ sigma2))`.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError("frechet_distance needs means [D] and covariances [D, D] of one size D. Received: "
                         f"mu1={mu1.shape}, sigma1={sigma1.shape}, mu2={mu2.shape}, sigma2={sigma2.shape}")
    for name, value in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"`{name}` contains NaN or inf values. Received: shape={value.shape}")

    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        # Singular product: regularise both covariances (TTUR / pytorch-fid fix).
        offset = np.eye(d) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        max_imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if max_imag > 1e-3:
            raise ValueError("The matrix square root in the FID has a large imaginary component; the "
                             "covariances are probably estimated from too few samples. "
                             f"Received: max |imag(diag)|={max_imag:.4g}, D={d}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_features(features1: np.ndarray, features2: np.ndarray, eps: float = 1e-6) -> float:
    """FID between two feature sets [N1, D] and [N2, D] (each N >= 2)."""
    features1 = _as_features(features1, "features1")
    features2 = _as_features(features2, "features2")
    if features1.shape[1] != features2.shape[1]:
        raise ValueError(f"Feature sets must have the same dimension. "
                         f"Received: shapes={features1.shape} and {features2.shape}")
    if min(len(features1), len(features2)) <= features1.shape[1]:
        return _low_rank_fid(features1, features2)
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    return frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps)


def _low_rank_fid(features1: np.ndarray, features2: np.ndarray) -> float:
    """Exact FID when a set has no more samples than dimensions (the usual case at D = 2048).

    Both covariances are then low-rank: S1 = A^T A, S2 = B^T B with A, B the centred features
    / sqrt(N - 1). The non-zero eigenvalues of S1 S2 are the squared singular values of
    B A^T [N2, N1], so Tr sqrtm(S1 S2) is the sum of its singular values: an N x N problem
    instead of a D x D matrix square root (minutes at D = 2048 on a CPU).
    """
    f1 = np.asarray(features1, np.float64)
    f2 = np.asarray(features2, np.float64)
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a = (f1 - mu1) / np.sqrt(len(f1) - 1)
    b = (f2 - mu2) / np.sqrt(len(f2) - 1)
    tr_covmean = float(np.sum(np.linalg.svd(b @ a.T, compute_uv=False)))
    diff = mu1 - mu2
    return float(diff @ diff + np.sum(a * a) + np.sum(b * b) - 2.0 * tr_covmean)


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD between equal-sized sets x, y [m, D] with k(a, b) = (a.b/D + 1)^3.

        MMD^2 = sum_{i!=j} [k(x_i, x_j) + k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i,j} k(x_i, y_j) / m^2
    """
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(real_features: np.ndarray, fake_features: np.ndarray,
                              num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID: mean and std of `polynomial_mmd2` over random subsets.

    Args:
      real_features: [N1, D]; fake_features: [N2, D].
      num_subsets: number of random subsets (drawn without replacement within a subset).
      subset_size: subset size m, capped at min(N1, N2) as in the official code; m >= 2.
      seed: seed of the subset sampler (numpy Generator); same seed, same result.

    Returns:
      (mean, std) of the per-subset unbiased MMD^2 estimates.
    """
    real = _as_features(real_features, "real_features")
    fake = _as_features(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"Feature sets must have the same dimension. "
                         f"Received: shapes={real.shape} and {fake.shape}")
    if int(num_subsets) < 1 or int(subset_size) < 2:
        raise ValueError(f"KID needs num_subsets >= 1 and subset_size >= 2. "
                         f"Received: num_subsets={num_subsets}, subset_size={subset_size}")
    m = min(real.shape[0], fake.shape[0], int(subset_size))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(int(num_subsets)):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        values.append(polynomial_mmd2(x, y))
    return float(np.mean(values)), float(np.std(values))
