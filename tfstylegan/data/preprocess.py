"""Slice preprocessing as in the study: central crop, intensity normalisation, antialiased resize.

Order, for an image [H, W] of raw values (int16 scanner intensities, or 8-bit pixels):
1. `center_crop`: drop `crop_fraction` of the height from the top and from the bottom and
   `crop_fraction` of the width from the left and the right (0.25 of 512 = the study's
   128 px per side, leaving the central 256 x 256). Always proportional, never a fixed pixel
   count, because some slices are not 512 x 512. A non-square result is then made square
   without stretching anatomy: `square='crop'` (the default) crops the longer side centrally
   to the shorter one; `square='pad'` keeps the whole field of view and pads the shorter side
   equally on both ends with the background (black, after step 2).
2. `normalize_intensity`: per-image percentiles (0.5 and 99.5 by default) of the cropped
   slice map to 0 and 1, values outside are clipped. Raw MRI intensities have no fixed scale
   (they vary by scanner, coil and patient), so a fixed window would not work; percentiles
   rather than min/max make one hot pixel or a dark corner irrelevant. `(0, 100)` is min/max.
   With `square='pad'` the percentiles are taken before padding (over real pixels only), and
   the padding is 0, the value the low percentile maps to: the background of an MRI slice.
3. `resize`: to `resolution` x `resolution` with PIL's LANCZOS filter on 32-bit float data
   (mode 'F'). PIL widens the kernel by the scale factor when downsampling, so it is a proper
   antialiasing filter (512 -> 32 is a 16x reduction; plain bilinear would alias). PIL is used
   rather than `tf.image.resize(antialias=True)` because preparation is offline numpy work:
   no graph, deterministic on every machine, and the same filter stylegan2-ada-pytorch's
   dataset_tool uses. Lanczos ringing is clipped back into [0, 1].
4. Quantisation to 8 bits ([0, 255]) or, with `bit_depth=16`, 16 bits ([0, 65535]).

Masks take the same crop (or padding, with 0); they are resized with the area (BOX) filter and thresholded at
half coverage (half the peak coverage for a tumor smaller than one output pixel, so no
tumor vanishes from its mask at low resolution), giving a uint8 mask of 0/255.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from tfstylegan.utils.errors import UserError

SQUARE_MODES = ("crop", "pad")


def check_settings(resolution: int, crop_fraction: float, bit_depth: int,
                   percentiles: tuple[float, float], square: str = "crop") -> None:
    """Validates preprocessing settings; `UserError` naming the flag."""
    if square not in SQUARE_MODES:
        raise UserError(f"--square must be one of {', '.join(SQUARE_MODES)} (how a non-square slice "
                        f"becomes square). Received: square={square!r}")
    if not isinstance(resolution, (int, np.integer)) or resolution < 4 or resolution > 4096 or (
            resolution & (resolution - 1)):
        raise UserError(f"--resolution must be a power of two between 4 and 4096 (StyleGAN2 needs "
                        f"one). Received: resolution={resolution}")
    if not 0.0 <= float(crop_fraction) < 0.5:
        raise UserError(f"--crop_fraction is the fraction cut from EACH side, in [0, 0.5) "
                        f"(0.25 = the study's 128 px of 512). Received: crop_fraction={crop_fraction}")
    if bit_depth not in (8, 16):
        raise UserError(f"--bit_depth must be 8 or 16. Received: bit_depth={bit_depth}")
    lo, hi = percentiles
    if not 0.0 <= lo < hi <= 100.0:
        raise UserError(f"--percentiles must be two numbers 0 <= low < high <= 100, e.g. 0.5,99.5. "
                        f"Received: percentiles={lo},{hi}")


def crop_box(height: int, width: int, crop_fraction: float,
             square: str = "crop") -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the central crop; bottom/right exclusive.

    `crop_fraction` of each dimension is removed from each of its two sides (rounded to
    whole pixels); with `square='crop'` the longer side is then cropped centrally to the
    shorter one, with `square='pad'` the box stays as it is (padded later by `pad_to_square`).
    """
    dy = int(round(height * crop_fraction))
    dx = int(round(width * crop_fraction))
    top, bottom, left, right = dy, height - dy, dx, width - dx
    if square == "pad":
        return top, bottom, left, right
    h, w = bottom - top, right - left
    side = min(h, w)
    top += (h - side) // 2
    left += (w - side) // 2
    return top, top + side, left, left + side


def center_crop(img: np.ndarray, crop_fraction: float, square: str = "crop") -> np.ndarray:
    """img [H, W] -> the central part after dropping `crop_fraction` per side: [S, S] with
    `square='crop'`, [H', W'] (not yet square) with `square='pad'`."""
    top, bottom, left, right = crop_box(img.shape[0], img.shape[1], crop_fraction, square)
    return img[top:bottom, left:right]


def pad_to_square(img: np.ndarray, value: float = 0.0) -> np.ndarray:
    """img [H, W] -> [S, S], S = max(H, W): the shorter side padded with `value`, the odd pixel
    (if any) at the bottom/right, so the original sits in the centre."""
    h, w = img.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return np.pad(img, ((top, side - h - top), (left, side - w - left)), constant_values=value)


def normalize_intensity(img: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """img [H, W] any numeric -> float32 [H, W] in [0, 1] by per-image percentiles.

    A constant image maps to 0 everywhere.
    """
    x = np.asarray(img, dtype=np.float64)
    lo, hi = np.percentile(x, [percentiles[0], percentiles[1]])
    if hi <= lo:
        return np.zeros(x.shape, np.float32)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resize(img: np.ndarray, resolution: int, resample: str = "lanczos") -> np.ndarray:
    """float [H, W] -> float32 [resolution, resolution] with PIL ('lanczos' or 'box') in mode 'F'."""
    x = np.ascontiguousarray(img, dtype=np.float32)
    if x.shape == (resolution, resolution):
        return x.copy()
    filt = {"lanczos": Image.LANCZOS, "box": Image.BOX}[resample]
    out = Image.fromarray(x, mode="F").resize((resolution, resolution), resample=filt)
    return np.asarray(out, dtype=np.float32)


def quantize(img01: np.ndarray, bit_depth: int) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [0, 255] or uint16 [0, 65535] (rounded, clipped)."""
    top = 255 if bit_depth == 8 else 65535
    q = np.rint(np.clip(img01, 0.0, 1.0) * top)
    return q.astype(np.uint8 if bit_depth == 8 else np.uint16)


def preprocess_image(img: np.ndarray, resolution: int = 256, crop_fraction: float = 0.25,
                     percentiles: tuple[float, float] = (0.5, 99.5), bit_depth: int = 8,
                     square: str = "crop") -> np.ndarray:
    """Raw slice [H, W] -> uint8/uint16 [resolution, resolution]: crop, normalise, square, resize,
    quantise."""
    x = normalize_intensity(center_crop(np.asarray(img), crop_fraction, square), percentiles)
    if square == "pad":
        x = pad_to_square(x, 0.0)
    return quantize(resize(x, resolution, "lanczos"), bit_depth)


def preprocess_mask(mask: np.ndarray, resolution: int = 256, crop_fraction: float = 0.25,
                    square: str = "crop") -> np.ndarray:
    """Mask [H, W] (nonzero = tumor) -> uint8 [resolution, resolution] of 0/255."""
    m = center_crop((np.asarray(mask) != 0).astype(np.float32), crop_fraction, square)
    if square == "pad":
        m = pad_to_square(m, 0.0)
    m = resize(m, resolution, "box")
    # Half coverage; a tumor smaller than half an output pixel keeps its best-covered pixels
    # (threshold at half its peak coverage) rather than vanishing at low resolution.
    threshold = min(0.5, 0.5 * float(m.max())) if m.max() > 1e-6 else 0.5
    return np.where(m >= threshold, 255, 0).astype(np.uint8)
