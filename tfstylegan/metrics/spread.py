"""Pixel spread: how much a set of images varies, in the images' own units.

    pixel_spread(x) = mean over pixels (and channels) of the standard deviation over the images

For one class of slices this is a direct, feature-free check of within-class variety: a generator
that draws nearly the same slice for every latent has a spread near 0 however good each slice looks,
while real slices of different patients (head size and shape, tumor size and position) spread
widely. Compare generated with real slices of the same class, in the same value range. Unlike
precision/recall it needs no judge, so it does not move with the judge's training.
"""

from __future__ import annotations

import numpy as np

from tfstylegan.utils.errors import UserError


def pixel_spread(images) -> float:
    """Mean over pixels of the per-pixel standard deviation over `images` [N, ...] (N >= 2), float64."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim < 2 or len(x) < 2:
        raise UserError(f"pixel_spread needs at least 2 images [N, ...]. Received shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise UserError("pixel_spread: the images contain NaN or inf values.")
    return float(np.mean(np.std(x, axis=0)))


def pixel_spread_reference(images) -> float:
    """The same as `pixel_spread`, one pixel at a time (the slow reference of the tests)."""
    x = np.asarray(images, dtype=np.float64)
    flat = x.reshape(len(x), -1)
    total = 0.0
    for j in range(flat.shape[1]):
        column = flat[:, j]
        mean = sum(column) / len(column)
        total += (sum((v - mean) ** 2 for v in column) / len(column)) ** 0.5
    return total / flat.shape[1]
