"""Generated images as PNG files: one per seed, each written atomically, batch after batch.

`write_images` writes each batch's PNGs before making the next, so an interrupted run keeps every file it
finished; `prepare_output_folder` refuses a folder holding files (unless overwriting) and removes the
temporaries a killed run left.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tfstylegan.apps.generation.images import check_bit_depth, iter_images, to_pixels
from tfstylegan.apps.generation.loading import ClassGenerator
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import save_png, to_uint8
from tfstylegan.utils.io import remove_stale_temporaries


def save_images(out_dir: str | os.PathLike, seeds: Sequence[int], images: np.ndarray, bit_depth: int = 8,
                prefix: str = "seed", digits: int = 4) -> list[Path]:
    """Writes `seed%04d.png` per image, each atomically (a kill leaves whole files or none).

    images: float [N, H, W, C] in [-1, 1]: C = 1 (gray), 2 (gray image + tumor mask, written as
    `seed%04d_mask.png`, always 8-bit: 0/255 in the data) or 3 (RGB, e.g. an official network
    imported with `--img_channels 3`; 8-bit only). Returns the written image paths (masks not included).
    """
    out_dir = Path(out_dir)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 2, 3) or len(images) != len(seeds):
        raise ValueError(f"save_images needs one image [N, H, W, 1 (gray), 2 (gray + mask) or 3 (RGB)] per seed. "
                         f"Received: shape={images.shape}, {len(seeds)} seeds")
    check_bit_depth(bit_depth, images.shape[-1])
    paths = []
    for seed, img in zip(seeds, images):
        path = out_dir / f"{prefix}{int(seed):0{int(digits)}d}.png"
        if img.shape[-1] == 3:
            save_png(path, to_uint8(img))
        else:
            save_png(path, to_pixels(img[..., :1], bit_depth))
        if img.shape[-1] == 2:
            save_png(out_dir / f"{prefix}{int(seed):0{int(digits)}d}_mask.png", to_uint8(img[..., 1:2]))
        paths.append(path)
    return paths


def write_images(out_dir: str | os.PathLike, gen: ClassGenerator, seeds: Sequence[int], truncation_psi: float = 1.0,
                 noise_mode: str = "const", bit_depth: int = 8, batch_size: int = 16, show_progress: bool = False,
                 on_batch: Callable[[list[int], np.ndarray], None] | None = None) -> int:
    """Generates and writes `seed%04d.png` batch by batch (see `save_images`); returns the number of images.

    Memory stays that of one batch whatever the number of seeds; each PNG is on disk (whole)
    before the next batch is generated, so an interrupted run keeps everything written so far.
    `on_batch(seeds, images)` is called after each batch is written (e.g. to keep a few for figures).
    """
    check_bit_depth(bit_depth, int(gen.G.img_channels))
    count = 0
    for chunk, images in iter_images(gen, seeds, truncation_psi, noise_mode, batch_size, show_progress):
        save_images(out_dir, chunk, images, bit_depth)
        count += len(chunk)
        if on_batch is not None:
            on_batch(chunk, images)
    return count


_PARTIAL_PNG = re.compile(r"^\..+\.png\..+\.tmp$")  # save_png's temporary names (tfstylegan.utils.io)


def check_output_folder(out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuses an `--out` that is a file, or a folder holding files unless `overwrite` (nothing is replaced silently).

    PNG temporaries left by a killed run do not count (`prepare_output_folder` removes them).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file; pass a folder.")
    if not overwrite and out_dir.is_dir() and any(not _PARTIAL_PNG.match(p.name) for p in out_dir.iterdir()):
        raise UserError(f"Output folder {out_dir} already exists and is not empty. Choose another --out, or pass "
                        "--overwrite to replace the files of the same names (other files are kept).")
    return out_dir


def prepare_output_folder(out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """`check_output_folder`, then removes the temporaries killed runs left there and creates the folder.

    With `overwrite`, files of the same names are replaced later (each atomically); other files stay.
    """
    out_dir = check_output_folder(out_dir, overwrite)
    removed = remove_stale_temporaries(out_dir)
    if removed:
        print(f"note: removed {len(removed)} partial file(s) an interrupted run left in {out_dir}.", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir
