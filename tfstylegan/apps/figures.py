"""The study's figures from a generator: real vs generated (Fig. 2), 3x3 grids (Fig. 3), mosaics (Fig. 4),
style mixing and fixed-step interpolation in W.

Figures are uint8 grids padded in white; models trained with masks (`img_channels == 2`) show
the mask beside each image (`side_by_side`); RGB models give RGB figures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from tfstylegan.apps.generation.images import image_channel, seeds_to_ws, synthesize
from tfstylegan.apps.generation.loading import ClassGenerator
from tfstylegan.data.pipeline import load_arrays, read_manifest
from tfstylegan.metrics.memorization import nearest_neighbours
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import image_grid, to_uint8

FIGURE_PADDING = 2
FIGURE_PAD_VALUE = 255


def side_by_side(images: np.ndarray) -> np.ndarray:
    """Image + mask [N, H, W, 2] -> [N, H, 2*W, 1], the mask right of the image; gray or RGB images unchanged."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"side_by_side expects [N, H, W, C]. Received: shape={images.shape}")
    n, h, w, c = images.shape
    return np.transpose(images, (0, 1, 3, 2)).reshape(n, h, c * w, 1) if c == 2 else images


def figure_grid(images: np.ndarray, grid_w: int | None = None) -> np.ndarray:
    """Images [N, H, W, C] (float in [-1, 1], or uint8 already converted) -> a padded uint8 grid.

    C = 1 or 2 (masks beside images) give [rows*H', cols*W', 1]; C = 3 (RGB) gives [.., .., 3].
    """
    images = np.asarray(images)
    tiles = side_by_side(images if images.dtype == np.uint8 else to_uint8(images))
    return image_grid(tiles, grid_w=grid_w, padding=FIGURE_PADDING, pad_value=FIGURE_PAD_VALUE)


def grid3x3_figure(images: np.ndarray) -> np.ndarray:
    """Fig. 3: the first 9 images as a 3x3 grid (fewer if fewer given)."""
    images = np.asarray(images)[:9]
    return figure_grid(images, grid_w=min(3, len(images)))


def mosaic_figure(images: np.ndarray, grid_w: int | None = None) -> np.ndarray:
    """Fig. 4: all images as one mosaic (default width ceil(sqrt(4N/3)), landscape like 20x15 for 300)."""
    images = np.asarray(images)
    if grid_w is None:
        grid_w = max(1, math.ceil(math.sqrt(len(images) * 4 / 3)))
    return figure_grid(images, grid_w=min(grid_w, len(images)))


def real_vs_generated_figure(generated: np.ndarray, real: np.ndarray, num: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Fig. 2: top row generated, bottom row each one's nearest real (training) image in pixel space.

    Args:
      generated: [Ng, H, W, C] float in [-1, 1]; the first `num` are shown.
      real: [Nr, H, W, C] real images, same size (the mask channel, if any, is ignored for matching).
    Returns:
      (uint8 figure [2*H', num*W', 1], nearest real indices int64 [num]).
    """
    generated, real = np.asarray(generated), np.asarray(real)
    if len(real) == 0:
        raise UserError("Fig. 2 needs real images of the class; the dataset has none in the chosen split.")
    if generated.shape[1:] != real.shape[1:]:
        raise UserError(f"Real images {real.shape[1:]} and generated images {generated.shape[1:]} differ in "
                        "size or channels; pass the --data the model was trained on.")
    gen = generated[:max(1, int(num))]
    idx, _ = nearest_neighbours(image_channel(gen), image_channel(real))
    rows = np.concatenate([gen, real[idx]])
    return figure_grid(rows, grid_w=len(gen)), idx


def style_mixing_figure(gen: ClassGenerator, row_seeds: Sequence[int], col_seeds: Sequence[int],
                        col_styles: Sequence[int] | None = None, truncation_psi: float = 1.0,
                        noise_mode: str = "const") -> np.ndarray:
    """Style mixing (StyleGAN's Fig. 3): cell (r, c) takes row seed r's ws with `col_styles` from column seed c.

    The top row shows the column seeds' images, the left column the row seeds' images, the
    top-left cell is blank. `col_styles` defaults to the coarse half of the ws
    (`range(num_ws // 2)`). Returns uint8 [(R+1)*H', (C+1)*W', 1].
    """
    num_ws = int(gen.G.num_ws)
    if col_styles is None:
        col_styles = list(range(max(1, num_ws // 2)))
    col_styles = list(col_styles)
    if any(not 0 <= s < num_ws for s in col_styles):
        raise UserError(f"Style-mixing layers must lie in [0, {num_ws - 1}]. Received: {col_styles}")
    row_seeds, col_seeds = list(row_seeds), list(col_seeds)
    if not row_seeds or not col_seeds:
        raise UserError("Style mixing needs at least one row seed and one column seed.")
    row_ws = seeds_to_ws(gen, row_seeds, truncation_psi)  # [R, num_ws, w_dim]
    col_ws = seeds_to_ws(gen, col_seeds, truncation_psi)  # [C, num_ws, w_dim]
    mixed = np.repeat(row_ws[:, None], len(col_seeds), axis=1)  # [R, C, num_ws, w_dim]
    mixed[:, :, col_styles] = col_ws[None, :, col_styles]
    row_img = synthesize(gen, row_ws, noise_mode)
    col_img = synthesize(gen, col_ws, noise_mode)
    mix_img = synthesize(gen, mixed.reshape((-1,) + row_ws.shape[1:]), noise_mode)
    blank = np.full_like(row_img[:1], -1.0)
    cells = [blank, col_img]
    for r in range(len(row_seeds)):
        cells += [row_img[r:r + 1], mix_img[r * len(col_seeds):(r + 1) * len(col_seeds)]]
    return figure_grid(np.concatenate(cells), grid_w=len(col_seeds) + 1)


def interpolation_ws(ws_a: np.ndarray, ws_b: np.ndarray, steps: int) -> tuple[np.ndarray, float]:
    """A fixed-step walk in W from ws_a to ws_b: `steps` points (both ends included), equally spaced.

    ws_a, ws_b: [num_ws, w_dim]. Returns (ws [steps, num_ws, w_dim], the W distance of one step).
    Equal steps in W give equal-sized image changes for a path-length-regularised generator,
    the property the study relies on.
    """
    steps = int(steps)
    if steps < 2:
        raise UserError(f"--interp_steps must be >= 2 (both end points). Received: {steps}")
    t = np.linspace(0.0, 1.0, steps, dtype=np.float64)[:, None, None]
    ws = (ws_a[None].astype(np.float64) * (1 - t) + ws_b[None].astype(np.float64) * t).astype(np.float32)
    step = float(np.linalg.norm((ws_b[0] - ws_a[0]).astype(np.float64)) / (steps - 1))
    return ws, step


def interpolation_figure(gen: ClassGenerator, seeds: Sequence[int], steps: int = 8,
                         truncation_psi: float = 1.0, noise_mode: str = "const") -> tuple[np.ndarray, list[float]]:
    """Rows of fixed-step W walks between consecutive seeds (seed0 -> seed1, seed1 -> seed2, ...).

    Returns (uint8 figure [(len(seeds)-1)*H', steps*W', 1], the W step size of each row).
    """
    seeds = list(seeds)
    if len(seeds) < 2:
        raise UserError(f"Interpolation needs at least 2 seeds. Received: {seeds}")
    ws = seeds_to_ws(gen, seeds, truncation_psi)
    rows, step_sizes = [], []
    for a, b in zip(ws[:-1], ws[1:]):
        path, step = interpolation_ws(a, b, steps)
        rows.append(synthesize(gen, path, noise_mode))
        step_sizes.append(step)
    return figure_grid(np.concatenate(rows), grid_w=int(steps)), step_sizes


def real_images_of_class(data_dir: str | os.PathLike, class_name: str, with_mask: bool = False,
                         split: str = "train") -> np.ndarray:
    """Real images float32 [N, H, W, 1 or 2] of one class from a prepared dataset's split."""
    manifest = read_manifest(data_dir)
    if class_name not in manifest["class_names"]:
        raise UserError(f"{data_dir} has no class {class_name!r} (it has {', '.join(manifest['class_names'])}).")
    return load_arrays(data_dir, split=split, class_name=class_name, with_mask=with_mask and manifest["has_mask"])[0]
