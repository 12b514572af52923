"""Image conversions and grids shared by training snapshots, generate and evaluate.

Generator outputs live in [-1, 1]. The 8-bit conversion is the official tools'
`clip(img * 127.5 + 128, 0, 255)` so a seed means the same PNG everywhere.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from tfstylegan.utils.io import atomic_path


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[-1, 1] float -> uint8 with the official rounding (`img * 127.5 + 128`, clipped)."""
    img = np.asarray(img, dtype=np.float32)
    return np.clip(img * 127.5 + 128, 0, 255).astype(np.uint8)


def to_uint16(img: np.ndarray) -> np.ndarray:
    """[-1, 1] float -> uint16 (`img * 32767.5 + 32768`, clipped): more levels for 16-bit PNGs."""
    img = np.asarray(img, dtype=np.float64)
    return np.clip(img * 32767.5 + 32768, 0, 65535).astype(np.uint16)


def image_grid(images: np.ndarray, grid_w: int | None = None, padding: int = 0,
               pad_value: int = 0) -> np.ndarray:
    """Tiles `images` [N, H, W, C] (any dtype) into one [gh*H, gw*W, C] array, row-major.

    `grid_w` defaults to ceil(sqrt(N)); missing cells are filled with `pad_value`.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"image_grid expects [N, H, W, C]. Received: shape={images.shape}")
    n, h, w, c = images.shape
    gw = int(grid_w) if grid_w else int(np.ceil(np.sqrt(n)))
    gh = int(np.ceil(n / gw))
    out = np.full((gh * (h + padding) - padding, gw * (w + padding) - padding, c), pad_value,
                  dtype=images.dtype)
    for i in range(n):
        y, x = divmod(i, gw)
        out[y * (h + padding):y * (h + padding) + h, x * (w + padding):x * (w + padding) + w] = images[i]
    return out


def save_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Saves a uint8 or uint16 image [H, W], [H, W, 1] or [H, W, 3] as PNG, atomically."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.dtype == np.uint16:
        if img.ndim != 2:
            raise ValueError(f"16-bit PNGs must be grayscale. Received: shape={img.shape}")
        pil = Image.fromarray(img)  # mode I;16
    elif img.dtype == np.uint8:
        pil = Image.fromarray(img)
    else:
        raise ValueError(f"save_png takes uint8 or uint16. Received: dtype={img.dtype}")
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")


def upscale_for_viewing(img: np.ndarray, tile_resolution: int, min_tile: int = 128) -> np.ndarray:
    """Nearest-neighbour upscaling of a figure [H, W] or [H, W, C] so each tile is >= `min_tile` pixels.

    Figures of 16-64 px slices are unreadable at their native size; an integer nearest-neighbour
    factor keeps every pixel exact (no interpolation invents detail).
    """
    factor = max(1, int(min_tile) // max(int(tile_resolution), 1))
    if factor == 1:
        return img
    img = np.asarray(img)
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)
