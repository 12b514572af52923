"""Inception Score (Salimans et al. 2016) from classifier probabilities.

For predictions p(y|x) over C classes the score is

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x),

computed, as in the reference code (openai/improved-gan `inception_score.py`), on
`num_splits` contiguous parts of the N rows, each with its own marginal p(y); the
result is the mean and standard deviation over the parts. It lies in [1, C]: 1 when
every prediction is the same, C when predictions are confident and the classes are
balanced (C = 3 for the tumor-class judge).
"""

from __future__ import annotations

import numpy as np

from tfstylegan.utils.errors import UserError

# How far a row of probabilities may sum away from 1 (float32 softmax outputs).
ROW_SUM_TOLERANCE = 1e-3


def validate_probabilities(probs: np.ndarray, name: str = "probs") -> np.ndarray:
    """Checks `probs` [N, C] is a matrix of probability rows; returns it as float64.

    Raises ValueError naming the problem: not 2-D, NaN/inf, negative entries, or rows
    that do not sum to 1 within `ROW_SUM_TOLERANCE` (e.g. logits passed instead of softmax).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] < 1 or probs.shape[1] < 1:
        raise ValueError(f"`{name}` must be a 2-D array [N, num_classes] of class probabilities. "
                         f"Received: shape={probs.shape}")
    if not np.all(np.isfinite(probs)):
        raise ValueError(f"`{name}` contains NaN or inf values. Received: shape={probs.shape}, "
                         f"non-finite entries={int(np.sum(~np.isfinite(probs)))}")
    if np.any(probs < 0) or np.any(probs > 1 + ROW_SUM_TOLERANCE):
        raise ValueError(f"`{name}` must lie in [0, 1] (pass softmax outputs, not logits). "
                         f"Received: shape={probs.shape}, min={probs.min():.4g}, max={probs.max():.4g}")
    row_sums = probs.sum(axis=1)
    worst = int(np.argmax(np.abs(row_sums - 1)))
    if abs(row_sums[worst] - 1) > ROW_SUM_TOLERANCE:
        raise ValueError(f"Every row of `{name}` must sum to 1 (pass softmax outputs, not logits). "
                         f"Received: shape={probs.shape}, row {worst} sums to {row_sums[worst]:.6g}")
    return probs


def _split_score(part: np.ndarray) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) for one part [n, C]; 0 * log 0 counts as 0."""
    marginal = part.mean(axis=0, keepdims=True)  # p(y): [1, C]
    positive = part > 0
    safe = np.where(positive, part, 1.0)  # avoid log(0); those terms are masked to 0
    kl_terms = np.where(positive, part * (np.log(safe) - np.log(np.where(positive, marginal, 1.0))), 0.0)
    return float(np.exp(kl_terms.sum(axis=1).mean()))


def inception_score(probs: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """Inception Score of class predictions.

    Args:
      probs: [N, C] softmax outputs p(y|x) of the judge, one row per image.
      num_splits: number of contiguous parts (rows `i*N//s : (i+1)*N//s`), as in the
        reference implementation; 10 by convention. Needs N >= num_splits.

    Returns:
      (mean, std) over the parts of `exp(mean_x KL(p(y|x) || p(y)))`; each part in [1, C].
    """
    probs = validate_probabilities(probs)
    num_splits = int(num_splits)
    n = probs.shape[0]
    if num_splits < 1:
        raise ValueError(f"`num_splits` must be >= 1. Received: num_splits={num_splits}")
    if n < num_splits:
        raise UserError(f"The Inception Score needs at least one image per split: got {n} images for "
                        f"{num_splits} splits. Evaluate more images or lower num_splits. "
                        f"Received: shape={probs.shape}, num_splits={num_splits}")
    scores = [_split_score(probs[i * n // num_splits:(i + 1) * n // num_splits]) for i in range(num_splits)]
    return float(np.mean(scores)), float(np.std(scores))
