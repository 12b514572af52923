"""Generating images from trained generators: seeds, the seed -> image convention, PNGs.

A seed means the same image everywhere: z = `np.random.RandomState(seed).randn(1, z_dim)`
(`seed_to_z`, the official tools' convention), noise 'const' by default, and the 8-bit
conversion `clip(img * 127.5 + 128, 0, 255)` (`tfstylegan.utils.images.to_uint8`).

A `ClassGenerator` is one generator bound to one class (by name or index): a per-class
checkpoint, or a conditional checkpoint with the class's one-hot label. `load_class_generators`
turns the launchers' `--checkpoint` value (`PATH` or `cls=PATH,cls=PATH`) into them; a PATH may
also be an official TF1 `.pkl`, converted in memory (`load_network`).

Images stream: `iter_images` yields one batch at a time and `write_images` writes each batch's
PNGs (atomically) before making the next, so `parse_seed_ranges('0-10000000')` runs in the
memory of one batch and an interrupted run keeps every file it finished. psi and z are checked
to be finite (NaN/inf would give black images).

Channels: 1 (gray), 2 (image + tumor mask, trained with masks), 3 (RGB, e.g. an imported official
network). The study's figures are in `tfstylegan.apps.figures`.

(Over 400 lines: seeds, checkpoint specs, official-pickle loading and streaming output are still in
one module; splitting it into seeds / loading / writing is the next step of the layout.)
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from tfstylegan.networks.synthesis import check_noise_mode
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import save_png, to_uint8, to_uint16, upscale_for_viewing
from tfstylegan.utils.progress import Progress

MAX_SEED = 2 ** 32 - 1  # np.random.RandomState accepts seeds in [0, 2**32 - 1]
FIGURE_MAX_IMAGES = 1024  # the mosaic (Fig. 4) shows at most this many of the first seeds


# --- seeds ---------------------------------------------------------------------------------------------------

class Seeds(Sequence):
    """Unique seeds in order, held as ranges: `--seeds 0-10000000` costs a few bytes, not 10M Python ints.

    A `Sequence[int]` (len, indexing, slicing, iteration); equal to a list with the same seeds.
    """

    def __init__(self, ranges: Sequence[range] = ()):
        self._ranges = [r for r in ranges if len(r)]
        if any(r.step != 1 for r in self._ranges):
            raise ValueError("Seeds holds unit-step ranges only.")
        self._starts = list(itertools.accumulate([0] + [len(r) for r in self._ranges]))

    def __len__(self) -> int:
        return self._starts[-1]

    def __iter__(self) -> Iterator[int]:
        return itertools.chain.from_iterable(self._ranges)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            out = []
            for r, offset in zip(self._ranges, self._starts):
                lo, hi = max(start - offset, 0), min(stop - offset, len(r))
                if lo < hi:
                    out.append(r[lo:hi])
            return Seeds(out)
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"seed index {index} out of range for {len(self)} seeds")
        k = bisect.bisect_right(self._starts, i) - 1
        return self._ranges[k][i - self._starts[k]]

    def __eq__(self, other) -> bool:
        if isinstance(other, Seeds):
            return self._ranges == other._ranges
        if isinstance(other, (list, tuple, range)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        parts = [f"{r.start}" if len(r) == 1 else f"{r.start}-{r.stop - 1}" for r in self._ranges]
        return f"Seeds({','.join(parts)!r})"


def parse_seed_ranges(spec: str | int | Sequence[int]) -> Seeds:
    """'0,1,7', '0-9' (inclusive) or mixtures like '0-3,10,20-22' -> unique `Seeds` in order, without a list.

    Repeated seeds keep their first position ('5,0-7' is 5, 0, 1, 2, 3, 4, 6, 7).

    Raises:
      UserError: empty, malformed, descending or out-of-range entries (seeds lie in [0, 2**32 - 1]).
    """
    if isinstance(spec, (int, np.integer)):
        parts = [str(int(spec))]
    elif isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",")]
    else:
        parts = [str(int(s)) for s in spec]
    ranges: list[range] = []
    covered: list[list[int]] = []  # sorted, disjoint [lo, hi) intervals already taken
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
        lo, hi = lo, hi + 1
        # the pieces of [lo, hi) not taken yet, in order
        k = bisect.bisect_left(covered, lo, key=lambda c: c[1])  # first interval ending at or after lo
        cursor = lo
        for c_lo, c_hi in covered[k:]:
            if c_lo >= hi:
                break
            if c_lo > cursor:
                ranges.append(range(cursor, c_lo))
            cursor = max(cursor, c_hi)
        if cursor < hi:
            ranges.append(range(cursor, hi))
        # merge [lo, hi) into the covered intervals
        j = k
        while j < len(covered) and covered[j][0] <= hi:
            lo, hi = min(lo, covered[j][0]), max(hi, covered[j][1])
            j += 1
        covered[k:j] = [[lo, hi]]
    merged: list[range] = []
    for r in ranges:  # contiguous pieces ('0,1,2') as one range
        if merged and merged[-1].stop == r.start:
            merged[-1] = range(merged[-1].start, r.stop)
        else:
            merged.append(r)
    seeds = Seeds(merged)
    if not len(seeds):
        raise UserError(f"--seeds is empty. Pass seeds like --seeds=0,1,7 or --seeds=0-99. Received: {spec!r}")
    return seeds


def parse_seeds(spec: str | int | Sequence[int]) -> list[int]:
    """`parse_seed_ranges` as a list of ints (for short seed lists; the launcher streams `Seeds`)."""
    return list(parse_seed_ranges(spec))


def parse_indices(spec: str, limit: int, name: str) -> list[int]:
    """Like `parse_seeds` for w indices (e.g. style-mixing layers), each checked to be < `limit`."""
    values = parse_seeds(spec)
    bad = [v for v in values if v >= limit]
    if bad:
        raise UserError(f"{name} must lie in [0, {limit - 1}]. Received: {bad} in {spec!r}")
    return values


def check_truncation_psi(truncation_psi: float, name: str = "--truncation_psi") -> float:
    """Returns psi as a float; a UserError unless it is a finite number (NaN or inf would give black images)."""
    try:
        psi = float(truncation_psi)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number (1 = no truncation; 0.5-0.7 is typical). "
                        f"Received: {truncation_psi!r}") from None
    if not math.isfinite(psi):
        raise UserError(f"{name} must be a finite number (1 = no truncation; 0.5-0.7 is typical); {psi} would "
                        f"make every image NaN, i.e. black. Received: {name}={truncation_psi}")
    return psi


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


def _official_pickle_generator(path: Path):
    """(G_ema, run_info) of an official NVlabs TF1 `.pkl`, converted in memory (nothing from the file is run).

    The network keeps its own resolution and channels (RGB stays RGB, as the official
    generate.py renders it); the preset only has to match its mapping depth. Use
    launchers/import_pretrained.py to keep the converted networks (and to fine-tune them).
    """
    from tfstylegan.config import PRESET_NAMES, get_preset
    from tfstylegan.export import legacy

    _, _, Gs = legacy.load_official_pickle(path)
    kwargs = Gs.static_kwargs
    mapping = int(kwargs.get("mapping_layers", 8))
    presets = [n for n in ("paper256", "auto") + tuple(PRESET_NAMES)
               if get_preset(n).generator.mapping_layers == mapping]
    if not presets:
        raise UserError(f"{path}: no preset has the pickle's {mapping} mapping layers; it cannot be converted.")
    print(f"note: converting the official pickle {path} on the fly (nothing in it is executed); "
          "launchers/import_pretrained.py keeps the converted checkpoint.", flush=True)
    _, _, G_ema, preset, info = legacy.convert_official_pickle(
        path, preset=presets[0], resolution=int(kwargs.get("resolution", 1024)),
        img_channels=int(kwargs.get("num_channels", 3)))
    run_info = {"preset": preset.to_dict(), "class_names": [], "class_name": None, "conditional": False,
                "with_mask": False, "data": None, "options": {"imported": info}}
    return G_ema, run_info


def load_network(path: str | os.PathLike):
    """(G_ema, run_info) of a run folder, checkpoint folder, or an official `.pkl` (converted on the fly)."""
    p = Path(path)
    if p.suffix.lower() == ".pkl":
        if not p.is_file():
            raise UserError(f"{p} does not exist. Pass an official StyleGAN2 / StyleGAN2-ADA TF1 pickle, or a run "
                            "folder.")
        return _official_pickle_generator(p)
    from tfstylegan.training.checkpoint import load_generator

    return load_generator(path)


def _load_generator(path: str):
    return load_network(path)


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


def resolve_class_name(class_name: str | int | None, known: Sequence[str], checkpoint: str) -> str | None:
    """A class given by name or by its index among the run's classes (`--class 1`, as the official tools)."""
    if class_name is None:
        return None
    name = str(class_name).strip()
    if name in known or not re.fullmatch(r"\d+", name):
        return name
    index = int(name)
    if not known:
        raise UserError(f"{checkpoint} records no class names, so --class {index} means nothing. Pass no --class.")
    if index >= len(known):
        listing = ", ".join(f"{i}={c}" for i, c in enumerate(known))
        raise UserError(f"--class {index} is out of range: {checkpoint} knows the classes {listing}.")
    return known[index]


def bind_class(G, run_info: dict, checkpoint: str, class_name: str | int | None) -> ClassGenerator:
    """Binds a loaded generator to `class_name`, checking it against the run's classes.

    Conditional models need a class among `run_info['class_names']` (by name or index);
    per-class models accept their own class (or None, which means it).
    """
    known = [str(c) for c in run_info.get("class_names") or []]
    class_name = resolve_class_name(class_name, known, checkpoint)
    if int(G.c_dim) > 0:
        if class_name is None:
            raise UserError(f"{checkpoint} is a conditional model; choose the class with --class_name "
                            f"(one of {', '.join(known)}, or its index).")
        if class_name not in known:
            raise UserError(f"{checkpoint} knows the classes {', '.join(known)}; there is no class "
                            f"{class_name!r}. Pass --class_name with one of them.")
        return ClassGenerator(G, class_name, known.index(class_name), run_info, str(checkpoint))
    own = run_info.get("class_name")
    if class_name is not None and own is not None and class_name != own:
        raise UserError(f"{checkpoint} was trained on class {own!r}, not {class_name!r}. Pass its own "
                        f"class (or no --class_name), or the checkpoint of {class_name!r}.")
    return ClassGenerator(G, class_name or own, None, run_info, str(checkpoint))


def load_class_generator(checkpoint: str, class_name: str | int | None = None) -> ClassGenerator:
    """Loads one checkpoint (G_ema) or official `.pkl` and binds it to `class_name` (see `bind_class`)."""
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

def z_to_ws(gen: ClassGenerator, z: np.ndarray, truncation_psi: float = 1.0, batch_size: int = 64) -> np.ndarray:
    """z float [N, z_dim] -> ws float32 [N, num_ws, w_dim] (the class's label, truncation).

    Raises:
      UserError: z is not [N, z_dim] or holds NaN/inf, or psi is not finite (either gives black images).
    """
    G = gen.G
    psi = check_truncation_psi(truncation_psi)
    z = np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != int(G.z_dim):
        raise UserError(f"z must be [N, {int(G.z_dim)}] (the generator's z_dim). Received: shape={z.shape}")
    bad = ~np.isfinite(z).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise UserError(f"z holds NaN or inf in {len(rows)} of {len(z)} rows (first: row {int(rows[0])}); the "
                        "generator would return NaN (black) images. Pass finite z, e.g. seed_to_z(seeds, z_dim).")
    out = []
    for i in range(0, len(z), batch_size):
        zb = z[i:i + batch_size]
        out.append(np.asarray(G.mapping(zb, gen.labels(len(zb)), truncation_psi=psi)))
    return np.concatenate(out).astype(np.float32) if out else np.zeros([0, G.num_ws, G.w_dim], np.float32)


def seeds_to_ws(gen: ClassGenerator, seeds: Sequence[int], truncation_psi: float = 1.0,
                batch_size: int = 64) -> np.ndarray:
    """ws float32 [N, num_ws, w_dim] of `seeds` (z from `seed_to_z`, the class's label, truncation)."""
    from tfstylegan.networks import seed_to_z

    check_truncation_psi(truncation_psi)
    seeds = list(seeds)
    if not seeds:
        return np.zeros([0, gen.G.num_ws, gen.G.w_dim], np.float32)
    return z_to_ws(gen, seed_to_z(seeds, int(gen.G.z_dim)), truncation_psi, batch_size)


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


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def iter_images(gen: ClassGenerator, seeds: Sequence[int], truncation_psi: float = 1.0, noise_mode: str = "const",
                batch_size: int = 16, show_progress: bool = False,
                desc: str | None = None) -> Iterator[tuple[list[int], np.ndarray]]:
    """Yields (seeds of the batch, images float32 [n, H, W, C]) batch after batch: constant memory for any count.

    Each image depends only on its seed (and psi, noise mode, class), not on the batching:
    z = `seed_to_z`, 'const' noise by default; 'random' noise is seeded by the image's seed.
    `seeds` may be a `Seeds` (ranges) of any length: nothing is materialised beyond one batch.
    """
    check_noise_mode(noise_mode)
    psi = check_truncation_psi(truncation_psi)
    if not isinstance(seeds, Sequence):
        seeds = list(seeds)
    if int(batch_size) < 1:
        raise UserError(f"--batch must be >= 1. Received: {batch_size}")
    progress = Progress(len(seeds), desc=desc or f"generate {gen.class_name or ''}".strip(), unit="img",
                        enabled=show_progress)
    for chunk in _chunks(seeds, int(batch_size)):
        ws = seeds_to_ws(gen, chunk, psi)
        if noise_mode == "random":  # per-image noise from the image's own seed
            images = np.concatenate([_synthesize_random(gen, ws[j:j + 1], s) for j, s in enumerate(chunk)])
        else:
            images = synthesize(gen, ws, noise_mode, batch_size=int(batch_size))
        yield chunk, images
        progress.update(len(chunk))
    progress.close()


def generate_images(gen: ClassGenerator, seeds: Sequence[int], truncation_psi: float = 1.0,
                    noise_mode: str = "const", batch_size: int = 16, show_progress: bool = False,
                    desc: str | None = None) -> np.ndarray:
    """Images float32 [len(seeds), H, W, C] in about [-1, 1], one per seed, in memory (see `iter_images`)."""
    out = [images for _, images in iter_images(gen, seeds, truncation_psi, noise_mode, batch_size, show_progress,
                                               desc)]
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


def check_bit_depth(bit_depth: int, img_channels: int) -> None:
    """16-bit PNGs are grayscale (what PIL writes); RGB models are written at 8 bits."""
    if int(bit_depth) not in (8, 16):
        raise UserError(f"--bit_depth must be 8 or 16. Received: {bit_depth}")
    if int(bit_depth) == 16 and int(img_channels) == 3:
        raise UserError("--bit_depth 16 is for grayscale models; this model makes RGB images. Use --bit_depth 8.")


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


# --- the launcher's work ------------------------------------------------------------------------------------

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
    from tfstylegan.utils.io import remove_stale_temporaries

    out_dir = check_output_folder(out_dir, overwrite)
    removed = remove_stale_temporaries(out_dir)
    if removed:
        print(f"note: removed {len(removed)} partial file(s) an interrupted run left in {out_dir}.", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def generate(checkpoint: str, seeds: Sequence[int], out_dir: str | os.PathLike, class_name: str | int | None = None,
             truncation_psi: float = 1.0, noise_mode: str = "const", bit_depth: int = 8, figures: bool = False,
             data_dir: str | os.PathLike | None = None, style_rows: Sequence[int] = (0, 1, 2, 3),
             style_cols: Sequence[int] = (4, 5, 6, 7), style_layers: Sequence[int] | None = None,
             interp_seeds: Sequence[int] | None = None, interp_steps: int = 8, batch_size: int = 16,
             show_progress: bool = True, overwrite: bool = False) -> dict:
    """Writes `seed%04d.png` per seed into `out_dir`, batch by batch (and the figures with `figures=True`).

    `seeds` may be any number (a `Seeds` from `parse_seed_ranges` is never materialised);
    memory stays that of one batch plus, with figures, the first `FIGURE_MAX_IMAGES` as uint8.
    Figures: `fig2_real_vs_generated_<cls>.png` (needs `data_dir`), `fig3_grid3x3_<cls>.png`,
    `fig4_mosaic_<cls>.png` (the first `FIGURE_MAX_IMAGES` seeds), `style_mixing.png`,
    `interpolation.png`. Returns a summary {class_name, out, num_images, figures, interpolation_step_sizes}.
    """
    from tfstylegan.apps.figures import (
        grid3x3_figure,
        interpolation_figure,
        mosaic_figure,
        real_images_of_class,
        real_vs_generated_figure,
        style_mixing_figure,
    )

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


def render_projected_w(checkpoint: str, projected_w: str | os.PathLike, out_dir: str | os.PathLike,
                       noise_mode: str = "const", bit_depth: int = 8, overwrite: bool = False) -> dict:
    """Renders the ws of `projected_w.npz` (launchers/project.py) as `proj00.png`, `proj01.png`, ... (the official
    generate.py's `--projected-w`).

    With 'const' noise the projection's optimised noise buffers (stored beside `w`) are used,
    so the image equals the projector's `proj.png`; the generator's own buffers are restored
    afterwards. The class needs no choosing: it is in w. Returns {out, num_images, files}.
    """
    from tfstylegan.apps.projection import load_projected_w, projection_noise

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
