"""Generating images from trained generators: seeds, the seed -> image convention, PNGs.

A seed means the same image everywhere: z = `np.random.RandomState(seed).randn(1, z_dim)`
(`seed_to_z`, the official tools' convention), noise 'const' by default, and the 8-bit
conversion `clip(img * 127.5 + 128, 0, 255)` (`tfstylegan.utils.images.to_uint8`).

A `ClassGenerator` is one generator bound to one class: a per-class checkpoint, or a
conditional checkpoint with the class's one-hot label. `load_class_generators` turns the
launchers' `--checkpoint` value (`PATH` or `cls=PATH,cls=PATH`) into them.

Models trained with masks (`img_channels == 2`) output the image in channel 0 and the tumor
mask in channel 1. The study's figures are in `tfstylegan.apps.figures`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from tfstylegan.networks.synthesis import NOISE_MODES, check_noise_mode
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import save_png, to_uint8, to_uint16, upscale_for_viewing
from tfstylegan.utils.progress import Progress

MAX_SEED = 2 ** 32 - 1  # np.random.RandomState accepts seeds in [0, 2**32 - 1]


# --- seeds ---------------------------------------------------------------------------------------------------

def parse_seeds(spec: str | int | Sequence[int]) -> list[int]:
    """'0,1,7', '0-9' (inclusive) or mixtures like '0-3,10,20-22' -> a list of unique seeds in order.

    Raises:
      UserError: empty, malformed, descending or out-of-range entries (seeds lie in [0, 2**32 - 1]).
    """
    if isinstance(spec, (int, np.integer)):
        parts = [str(int(spec))]
    elif isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",")]
    else:
        parts = [str(int(s)) for s in spec]
    seeds: list[int] = []
    for part in parts:
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise UserError(f"Bad seed {part!r} in --seeds={spec!r}: use non-negative integers and inclusive "
                            "ranges, e.g. --seeds=0,1,7 or --seeds=0-99.")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"Seed range {part!r} is descending; write it as {hi}-{lo}.")
        if hi > MAX_SEED:
            raise UserError(f"Seeds must lie in [0, {MAX_SEED}]. Received: {part!r} in --seeds={spec!r}")
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise UserError(f"--seeds is empty. Pass seeds like --seeds=0,1,7 or --seeds=0-99. Received: {spec!r}")
    return list(dict.fromkeys(seeds))  # unique, first occurrence order


def parse_indices(spec: str, limit: int, name: str) -> list[int]:
    """Like `parse_seeds` for w indices (e.g. style-mixing layers), each checked to be < `limit`."""
    values = parse_seeds(spec)
    bad = [v for v in values if v >= limit]
    if bad:
        raise UserError(f"{name} must lie in [0, {limit - 1}]. Received: {bad} in {spec!r}")
    return values


# --- generators bound to a class ----------------------------------------------------------------------------

@dataclasses.dataclass
class ClassGenerator:
    """A generator producing one class.

    Attributes:
      G: the `tfstylegan.networks.Generator`.
      class_name: the class it produces (None: an unconditional model of unknown class).
      class_id: the label index fed to a conditional G (None for unconditional models).
      run_info: the checkpoint's run.json dict.
      checkpoint: the checkpoint path it came from.
    """

    G: object
    class_name: str | None
    class_id: int | None
    run_info: dict
    checkpoint: str

    @property
    def with_mask(self) -> bool:
        """True when the model outputs (image, mask) as 2 channels."""
        return int(self.G.img_channels) == 2

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)

    def labels(self, n: int) -> np.ndarray | None:
        """One-hot c float32 [n, c_dim] for a conditional G, else None."""
        if self.class_id is None or int(self.G.c_dim) == 0:
            return None
        c = np.zeros([n, int(self.G.c_dim)], np.float32)
        c[:, self.class_id] = 1
        return c


def _load_generator(path: str):
    from tfstylegan.training.checkpoint import load_generator

    return load_generator(path)


def parse_checkpoint_spec(spec: str) -> dict[str | None, str]:
    """'PATH' -> {None: PATH}; 'glioma=PATH,pituitary=PATH' -> {'glioma': PATH, 'pituitary': PATH}."""
    spec = (spec or "").strip()
    if not spec:
        raise UserError("--checkpoint is required: a run folder, its checkpoints/ folder, or per-class "
                        "checkpoints as --checkpoint=meningioma=PATH,glioma=PATH,pituitary=PATH.")
    if "=" not in spec:
        return {None: spec}
    out: dict[str | None, str] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise UserError(f"Mixed --checkpoint entries: {part!r} has no class. Write every entry as "
                            f"class=PATH (e.g. glioma=runs/00001-glioma). Received: {spec!r}")
        name, path = (s.strip() for s in part.split("=", 1))
        if not name or not path:
            raise UserError(f"Bad --checkpoint entry {part!r}: write class=PATH.")
        if name in out:
            raise UserError(f"Class {name!r} appears twice in --checkpoint={spec!r}.")
        out[name] = path
    return out


def bind_class(G, run_info: dict, checkpoint: str, class_name: str | None) -> ClassGenerator:
    """Binds a loaded generator to `class_name`, checking it against the run's classes.

    Conditional models need a class among `run_info['class_names']`; per-class models accept
    their own class (or None, which means it).
    """
    known = [str(c) for c in run_info.get("class_names") or []]
    if int(G.c_dim) > 0:
        if class_name is None:
            raise UserError(f"{checkpoint} is a conditional model; choose the class with --class_name "
                            f"(one of {', '.join(known)}).")
        if class_name not in known:
            raise UserError(f"{checkpoint} knows the classes {', '.join(known)}; there is no class "
                            f"{class_name!r}. Pass --class_name with one of them.")
        return ClassGenerator(G, class_name, known.index(class_name), run_info, str(checkpoint))
    own = run_info.get("class_name")
    if class_name is not None and own is not None and class_name != own:
        raise UserError(f"{checkpoint} was trained on class {own!r}, not {class_name!r}. Pass its own "
                        f"class (or no --class_name), or the checkpoint of {class_name!r}.")
    return ClassGenerator(G, class_name or own, None, run_info, str(checkpoint))


def load_class_generator(checkpoint: str, class_name: str | None = None) -> ClassGenerator:
    """Loads one checkpoint (G_ema) and binds it to `class_name` (see `bind_class`)."""
    G, run_info = _load_generator(checkpoint)
    return bind_class(G, run_info, checkpoint, class_name)


def load_class_generators(spec: str) -> dict[str, ClassGenerator]:
    """`--checkpoint` value -> {class name: ClassGenerator}, in the order given (conditional: run order).

    - `PATH` of a conditional model: one entry per class it knows (one shared G).
    - `PATH` of a per-class model: its class.
    - `cls=PATH,...`: each class from its per-class checkpoint (or from a conditional one).
    """
    entries = parse_checkpoint_spec(spec)
    if None in entries:
        path = entries[None]
        G, run_info = _load_generator(path)
        if int(G.c_dim) > 0:
            return {c: bind_class(G, run_info, path, c) for c in run_info["class_names"]}
        own = run_info.get("class_name")
        if own is None:
            raise UserError(f"{path} is an unconditional model of all classes, so it cannot be evaluated per "
                            "class. Pass per-class checkpoints as --checkpoint=meningioma=PATH,glioma=PATH,"
                            "pituitary=PATH, or a conditional checkpoint.")
        return {own: bind_class(G, run_info, path, own)}
    loaded: dict[str, tuple] = {}
    out = {}
    for name, path in entries.items():
        if path not in loaded:
            loaded[path] = _load_generator(path)
        G, run_info = loaded[path]
        out[name] = bind_class(G, run_info, path, name)
    return out


# --- generation ---------------------------------------------------------------------------------------------

def seeds_to_ws(gen: ClassGenerator, seeds: Sequence[int], truncation_psi: float = 1.0,
                batch_size: int = 64) -> np.ndarray:
    """ws float32 [N, num_ws, w_dim] of `seeds` (z from `seed_to_z`, the class's label, truncation)."""
    from tfstylegan.networks import seed_to_z

    G = gen.G
    z = seed_to_z(list(seeds), int(G.z_dim))
    out = []
    for i in range(0, len(z), batch_size):
        zb = z[i:i + batch_size]
        out.append(np.asarray(G.mapping(zb, gen.labels(len(zb)), truncation_psi=float(truncation_psi))))
    return np.concatenate(out).astype(np.float32) if out else np.zeros([0, G.num_ws, G.w_dim], np.float32)


def _synthesize_random(gen: ClassGenerator, ws: np.ndarray, seed: int, stream: int = 1) -> np.ndarray:
    """One batch with stateless random noise from (seed, stream): reproducible whatever else runs."""
    import tensorflow as tf

    noise_seed = tf.constant([int(seed) % 2 ** 31, int(stream) % 2 ** 31], tf.int32)
    return np.asarray(gen.G.synthesis(ws, noise_mode="random", noise_seed=noise_seed))


def synthesize(gen: ClassGenerator, ws: np.ndarray, noise_mode: str = "const", noise_seed: int = 0,
               batch_size: int = 16) -> np.ndarray:
    """ws [N, num_ws, w_dim] -> images float32 [N, H, W, C] in about [-1, 1].

    With `noise_mode='random'` each image gets the stateless noise of (`noise_seed`, its index).
    """
    check_noise_mode(noise_mode)
    ws = np.asarray(ws, np.float32)
    out = []
    if noise_mode == "random":
        for i in range(len(ws)):
            out.append(_synthesize_random(gen, ws[i:i + 1], int(noise_seed), i))
    else:
        for i in range(0, len(ws), batch_size):
            out.append(np.asarray(gen.G.synthesis(ws[i:i + batch_size], noise_mode=noise_mode)))
    if not out:
        return np.zeros([0, gen.resolution, gen.resolution, int(gen.G.img_channels)], np.float32)
    return np.concatenate(out).astype(np.float32)


def generate_images(gen: ClassGenerator, seeds: Sequence[int], truncation_psi: float = 1.0,
                    noise_mode: str = "const", batch_size: int = 16, show_progress: bool = False,
                    desc: str | None = None) -> np.ndarray:
    """Images float32 [len(seeds), H, W, C] in about [-1, 1], one per seed.

    Each image depends only on its seed (and psi, noise mode, class), not on the batching:
    z = `seed_to_z`, 'const' noise by default; 'random' noise is seeded by the image's seed.
    """
    check_noise_mode(noise_mode)
    seeds = list(seeds)
    progress = Progress(len(seeds), desc=desc or f"generate {gen.class_name or ''}".strip(), unit="img",
                        enabled=show_progress)
    out = []
    for i in range(0, len(seeds), batch_size):
        chunk = seeds[i:i + batch_size]
        ws = seeds_to_ws(gen, chunk, truncation_psi)
        if noise_mode == "random":  # per-image noise from the image's own seed
            out.append(np.concatenate([_synthesize_random(gen, ws[j:j + 1], s) for j, s in enumerate(chunk)]))
        else:
            out.append(synthesize(gen, ws, noise_mode, batch_size=batch_size))
        progress.update(len(chunk))
    progress.close()
    if not out:
        return np.zeros([0, gen.resolution, gen.resolution, int(gen.G.img_channels)], np.float32)
    return np.concatenate(out)


def image_channel(images: np.ndarray) -> np.ndarray:
    """[N, H, W, C] -> the image channel [N, H, W, 1] (drops a mask channel)."""
    images = np.asarray(images)
    return images[..., :1]


def to_pixels(images: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """float [-1, 1] -> uint8 (official rounding) or uint16."""
    if int(bit_depth) == 8:
        return to_uint8(images)
    if int(bit_depth) == 16:
        return to_uint16(images)
    raise UserError(f"--bit_depth must be 8 or 16. Received: {bit_depth}")


def save_images(out_dir: str | os.PathLike, seeds: Sequence[int], images: np.ndarray, bit_depth: int = 8,
                prefix: str = "seed") -> list[Path]:
    """Writes `seed%04d.png` per image (and `seed%04d_mask.png` for 2-channel models), each atomically.

    images: float [N, H, W, 1 or 2] in [-1, 1]. The mask is always 8-bit (0/255 in the data).
    Returns the written image paths (masks not included).
    """
    out_dir = Path(out_dir)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 2) or len(images) != len(seeds):
        raise ValueError(f"save_images needs one grayscale image [N, H, W, 1 or 2] per seed. "
                         f"Received: shape={images.shape}, {len(seeds)} seeds")
    paths = []
    for seed, img in zip(seeds, images):
        path = out_dir / f"{prefix}{int(seed):04d}.png"
        save_png(path, to_pixels(img[..., :1], bit_depth))
        if img.shape[-1] == 2:
            save_png(out_dir / f"{prefix}{int(seed):04d}_mask.png", to_uint8(img[..., 1:2]))
        paths.append(path)
    return paths


# --- the launcher's work ------------------------------------------------------------------------------------

def generate(checkpoint: str, seeds: Sequence[int], out_dir: str | os.PathLike, class_name: str | None = None,
             truncation_psi: float = 1.0, noise_mode: str = "const", bit_depth: int = 8, figures: bool = False,
             data_dir: str | os.PathLike | None = None, style_rows: Sequence[int] = (0, 1, 2, 3),
             style_cols: Sequence[int] = (4, 5, 6, 7), style_layers: Sequence[int] | None = None,
             interp_seeds: Sequence[int] | None = None, interp_steps: int = 8, batch_size: int = 16,
             show_progress: bool = True) -> dict:
    """Writes `seed%04d.png` per seed into `out_dir` (and the figures with `figures=True`).

    Figures: `fig2_real_vs_generated_<cls>.png` (needs `data_dir`), `fig3_grid3x3_<cls>.png`,
    `fig4_mosaic_<cls>.png` (all seeds), `style_mixing.png`, `interpolation.png`. Returns a
    summary {class_name, files, interpolation_step_sizes}.
    """
    from tfstylegan.apps.figures import (grid3x3_figure, interpolation_figure, mosaic_figure,
                                         real_images_of_class, real_vs_generated_figure, style_mixing_figure)

    check_noise_mode(noise_mode)
    if int(bit_depth) not in (8, 16):
        raise UserError(f"--bit_depth must be 8 or 16. Received: {bit_depth}")
    seeds = list(seeds)
    gen = load_class_generator(checkpoint, class_name)
    cls = gen.class_name or "all"
    out_dir = Path(out_dir)
    images = generate_images(gen, seeds, truncation_psi, noise_mode, batch_size=batch_size,
                             show_progress=show_progress)
    files = [str(p) for p in save_images(out_dir, seeds, images, bit_depth)]
    summary: dict = {"class_name": gen.class_name, "files": files, "interpolation_step_sizes": None}
    if figures:
        fig = {f"fig3_grid3x3_{cls}.png": grid3x3_figure(images), f"fig4_mosaic_{cls}.png": mosaic_figure(images)}
        if data_dir is not None:
            real = real_images_of_class(data_dir, gen.class_name, gen.with_mask) if gen.class_name else None
            if real is None:
                print("note: fig2 skipped: the model has no class to take real images of.", flush=True)
            else:
                fig[f"fig2_real_vs_generated_{cls}.png"] = real_vs_generated_figure(images, real)[0]
        else:
            print("note: fig2 (real vs generated) skipped: pass --data to compare with real images.", flush=True)
        fig["style_mixing.png"] = style_mixing_figure(gen, style_rows, style_cols, style_layers, truncation_psi,
                                                      noise_mode if noise_mode != "random" else "const")
        walk_seeds = list(interp_seeds) if interp_seeds else seeds[:4]
        if len(walk_seeds) >= 2:
            fig["interpolation.png"], steps = interpolation_figure(
                gen, walk_seeds, interp_steps, truncation_psi, noise_mode if noise_mode != "random" else "const")
            summary["interpolation_step_sizes"] = steps
        else:
            print("note: interpolation skipped: it needs 2 or more seeds (--interp_seeds).", flush=True)
        for name, image in fig.items():
            save_png(out_dir / name, upscale_for_viewing(image, gen.resolution))
            files.append(str(out_dir / name))
    return summary
