"""Seeds -> ws -> images: the seed -> image convention, in batches of constant memory.

z = `np.random.RandomState(seed).randn(1, z_dim)` (`seed_to_z`, the official tools' convention), the class's
label, truncation psi, noise 'const' by default; psi and z are checked to be finite (NaN/inf would give black
images). `iter_images` yields one batch at a time, so any number of seeds runs in the memory of one batch.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from tfstylegan.apps.generation.loading import ClassGenerator
from tfstylegan.apps.generation.seeds import check_truncation_psi
from tfstylegan.networks import seed_to_z
from tfstylegan.networks.synthesis import check_noise_mode
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import to_uint8, to_uint16
from tfstylegan.utils.progress import Progress


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
    check_truncation_psi(truncation_psi)
    seeds = list(seeds)
    if not seeds:
        return np.zeros([0, gen.G.num_ws, gen.G.w_dim], np.float32)
    return z_to_ws(gen, seed_to_z(seeds, int(gen.G.z_dim)), truncation_psi, batch_size)


_TRACED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _synthesis(G):
    """G.synthesis as one traced function per network (autograph off: no tensor-dependent Python branches).

    Eagerly, a 32x32 generator ran about 10 images/s one image at a time (thousands of small ops
    dispatched from Python); traced, each call is one graph run. The mode is a Python value (one trace each).
    """
    fn = _TRACED.get(G)
    if fn is None:
        network = weakref.ref(G)  # not G: a value holding its key would keep every network loaded alive

        def run(ws, noise_mode, noise_seed):
            return network().synthesis(ws, noise_mode=noise_mode, noise_seed=noise_seed)

        fn = _TRACED[G] = tf.function(run, autograph=False, reduce_retracing=True)
    return fn


def _synthesize_random(gen: ClassGenerator, ws: np.ndarray, seed: int, stream: int = 1) -> np.ndarray:
    """One batch with stateless random noise from (seed, stream): reproducible whatever else runs."""
    noise_seed = tf.constant([int(seed) % 2 ** 31, int(stream) % 2 ** 31], tf.int32)
    return np.asarray(_synthesis(gen.G)(tf.constant(ws, tf.float32), "random", noise_seed))


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
            out.append(np.asarray(_synthesis(gen.G)(tf.constant(ws[i:i + batch_size]), noise_mode, None)))
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
