"""The generate launcher's work: PNGs per seed and the study's figures, or the images of projected ws.

Above `tfstylegan.apps.figures` and `tfstylegan.apps.projection`, which use the lower generation modules.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfstylegan.apps.figures import (
    grid3x3_figure,
    interpolation_figure,
    mosaic_figure,
    real_images_of_class,
    real_vs_generated_figure,
    style_mixing_figure,
)
from tfstylegan.apps.generation.images import check_bit_depth, synthesize
from tfstylegan.apps.generation.loading import ClassGenerator, load_class_generator, load_class_generators, load_network
from tfstylegan.apps.generation.output import check_output_folder, prepare_output_folder, save_images, write_images
from tfstylegan.apps.generation.seeds import check_truncation_psi
from tfstylegan.apps.projection import load_projected_w, projection_noise
from tfstylegan.networks.synthesis import check_noise_mode
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import save_png, to_uint8, upscale_for_viewing

FIGURE_MAX_IMAGES = 1024  # the mosaic (Fig. 4) shows at most this many of the first seeds


def generate(checkpoint: str, seeds: Sequence[int], out_dir: str | os.PathLike, class_name: str | int | None = None,
             truncation_psi: float = 1.0, noise_mode: str = "const", bit_depth: int = 8, figures: bool = False,
             data_dir: str | os.PathLike | None = None, style_rows: Sequence[int] = (0, 1, 2, 3),
             style_cols: Sequence[int] = (4, 5, 6, 7), style_layers: Sequence[int] | None = None,
             interp_seeds: Sequence[int] | None = None, interp_steps: int = 8, batch_size: int = 16,
             show_progress: bool = True, overwrite: bool = False, gen: ClassGenerator | None = None) -> dict:
    """Writes `seed%04d.png` per seed into `out_dir`, batch by batch (and the figures with `figures=True`).

    `gen`: an already loaded generator (`load_class_generators`) instead of loading `checkpoint` for
    `class_name` again (`generate_all_classes` passes the one shared network of a conditional model).

    `seeds` may be any number (a `Seeds` from `parse_seed_ranges` is never materialised);
    memory stays that of one batch plus, with figures, the first `FIGURE_MAX_IMAGES` as uint8.
    Figures: `fig2_real_vs_generated_<cls>.png` (needs `data_dir`), `fig3_grid3x3_<cls>.png`,
    `fig4_mosaic_<cls>.png` (the first `FIGURE_MAX_IMAGES` seeds), `style_mixing.png`,
    `interpolation.png`. Returns a summary {class_name, out, num_images, figures, interpolation_step_sizes}.
    """
    check_noise_mode(noise_mode)
    psi = check_truncation_psi(truncation_psi)
    check_bit_depth(bit_depth, 1)
    if int(batch_size) < 1:
        raise UserError(f"--batch must be >= 1. Received: {batch_size}")
    if not isinstance(seeds, Sequence):
        seeds = list(seeds)
    if not len(seeds):
        raise UserError("--seeds is empty. Pass seeds like --seeds=0,1,7 or --seeds=0-99.")
    out_dir = check_output_folder(out_dir, overwrite)  # before the model is loaded
    if gen is None:
        gen = load_class_generator(checkpoint, class_name)
    check_bit_depth(bit_depth, int(gen.G.img_channels))
    num_ws = int(gen.G.num_ws)
    if figures and style_layers is not None and any(not 0 <= int(i) < num_ws for i in style_layers):
        raise UserError(f"--style_layers must lie in [0, {num_ws - 1}]. Received: {list(style_layers)}")
    cls = gen.class_name or "all"
    prepare_output_folder(out_dir, overwrite)

    kept_float: list[np.ndarray] = []  # the first few images, for Fig. 2
    kept_uint8: list[np.ndarray] = []  # the first FIGURE_MAX_IMAGES, for Fig. 3 and 4

    def keep(chunk, images):
        n_float = sum(len(k) for k in kept_float)
        if n_float < 9:
            kept_float.append(images[:9 - n_float])
        n_uint8 = sum(len(k) for k in kept_uint8)
        if n_uint8 < FIGURE_MAX_IMAGES:
            kept_uint8.append(to_uint8(images[:FIGURE_MAX_IMAGES - n_uint8]))

    count = write_images(out_dir, gen, seeds, psi, noise_mode, bit_depth, batch_size, show_progress,
                         on_batch=keep if figures else None)
    summary: dict = {"class_name": gen.class_name, "out": str(out_dir), "num_images": count, "figures": [],
                     "interpolation_step_sizes": None}
    if figures:
        first, first_u8 = np.concatenate(kept_float), np.concatenate(kept_uint8)
        if count > FIGURE_MAX_IMAGES:
            print(f"note: the mosaic (Fig. 4) shows the first {FIGURE_MAX_IMAGES} of {count} images.", flush=True)
        fig = {f"fig3_grid3x3_{cls}.png": grid3x3_figure(first_u8), f"fig4_mosaic_{cls}.png": mosaic_figure(first_u8)}
        if data_dir is None:
            print("note: fig2 (real vs generated) skipped: pass --data to compare with real images.", flush=True)
        elif int(gen.G.img_channels) == 3:
            print("note: fig2 skipped: the model makes RGB images and the prepared data is grayscale.", flush=True)
        elif not gen.class_name:
            print("note: fig2 skipped: the model has no class to take real images of.", flush=True)
        else:
            real = real_images_of_class(data_dir, gen.class_name, gen.with_mask)
            fig[f"fig2_real_vs_generated_{cls}.png"] = real_vs_generated_figure(first, real)[0]
        fig_noise = noise_mode if noise_mode != "random" else "const"
        fig["style_mixing.png"] = style_mixing_figure(gen, style_rows, style_cols, style_layers, psi, fig_noise)
        walk_seeds = list(interp_seeds) if interp_seeds else list(seeds[:4])
        if len(walk_seeds) >= 2:
            fig["interpolation.png"], steps = interpolation_figure(gen, walk_seeds, interp_steps, psi, fig_noise)
            summary["interpolation_step_sizes"] = steps
        else:
            print("note: interpolation skipped: it needs 2 or more seeds (--interp_seeds).", flush=True)
        for name, image in fig.items():
            save_png(out_dir / name, upscale_for_viewing(image, gen.resolution))
            summary["figures"].append(str(out_dir / name))
    return summary


def generate_all_classes(checkpoint: str, seeds: Sequence[int], out_dir: str | os.PathLike,
                         overwrite: bool = False, **kwargs) -> list[dict]:
    """`generate` for every class of `checkpoint` into `<out_dir>/<class>/`, the network loaded once.

    `checkpoint`: a conditional model (its classes) or `cls=PATH,...` (`load_class_generators`).
    Every output folder is checked before anything is written.
    """
    out = Path(out_dir)
    gens = load_class_generators(checkpoint)
    for cls in gens:
        check_output_folder(out / cls, overwrite)
    return [generate(gen.checkpoint, seeds, out / cls, class_name=cls, overwrite=overwrite, gen=gen, **kwargs)
            for cls, gen in gens.items()]


def render_projected_w(checkpoint: str, projected_w: str | os.PathLike, out_dir: str | os.PathLike,
                       noise_mode: str = "const", bit_depth: int = 8, overwrite: bool = False) -> dict:
    """Renders the ws of `projected_w.npz` (launchers/project.py) as `proj00.png`, `proj01.png`, ... (the official
    generate.py's `--projected-w`).

    With 'const' noise the projection's optimised noise buffers (stored beside `w`) are used,
    so the image equals the projector's `proj.png`; the generator's own buffers are restored
    afterwards. The class needs no choosing: it is in w. Returns {out, num_images, files}.
    """
    check_noise_mode(noise_mode)
    check_bit_depth(bit_depth, 1)
    out_dir = check_output_folder(out_dir, overwrite)
    G, run_info = load_network(checkpoint)
    check_bit_depth(bit_depth, int(G.img_channels))
    gen = ClassGenerator(G, run_info.get("class_name"), None, run_info, str(checkpoint))
    ws, noise = load_projected_w(projected_w, G)
    prepare_output_folder(out_dir, overwrite)
    with projection_noise(G, noise if noise_mode == "const" else None):
        images = synthesize(gen, ws, noise_mode)
    files = save_images(out_dir, range(len(ws)), images, bit_depth, prefix="proj", digits=2)
    return {"out": str(out_dir), "num_images": len(files), "files": [str(f) for f in files]}
