"""Adaptive discriminator augmentation (ADA): stylegan2-ada-pytorch `training/augment.py` in TensorFlow.

`AugmentPipe` runs the reference's pixel blitting, general geometric and colour transforms
(Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data") with the
reference's parameters, probabilities, order and execution, and `AdaController` steers `p` from
the sign of D on reals. `tests/test_golden_reference.py` checks both against the reference.

    pixel blitting   xflip, rotate90, xint (integer translation, max 0.125 of the size)
    geometric        scale (log2 std 0.2), pre-rotate, aniso (log2 std 0.2), post-rotate,
                     xfrac (fractional translation, std 0.125 of the size)
    colour           brightness (std 0.2), contrast (log2 std 0.5), luma flip, hue, saturation

All geometric ops compose into one inverse matrix per sample, executed as the reference does:
reflect-pad, upsample 2x with the sym6 wavelet, bilinear grid sample, downsample 2x with sym6
(so fractional shifts, rotations and shrinking do not alias). The colour ops compose into one
4x4 matrix; on one channel it is averaged over R, G, B as in the reference (luma flip becomes an
intensity negation, hue and saturation are skipped). Channels: geometric ops move every channel;
colour ops touch `color_channels` channels (1 or 3; by default channel 0 alone for image + mask).

Randomness is stateless (`tfstylegan.ops.random`): `pipe(images, seed)` is a pure function of
(images, p, seed), identical eagerly and under XLA. The random numbers are named draws
(`DRAWS`, the reference's draws in its order) so that another implementation's draws can be
replayed (`params_from_draws`). Design notes: docs/AUGMENT.md.

(Over 400 lines: ADA's pipeline is one algorithm with one parameter draw; its kernels are in ops/.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from tfstylegan.ops import upfirdn2d
from tfstylegan.ops.grid_sample import affine_grid, grid_sample
from tfstylegan.ops.random import random_normal, random_uniform
from tfstylegan.utils.errors import UserError

# Probability multipliers of the named pipelines (stylegan2-ada-pytorch train.py augpipe_specs).
AUGMENT_SPECS: dict[str, dict[str, float]] = {
    "blit": dict(xflip=1, rotate90=1, xint=1),
    "geom": dict(scale=1, rotate=1, aniso=1, xfrac=1),
    "color": dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    "bg": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1),
    "bgc": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1,
                lumaflip=1, hue=1, saturation=1),
}
GEOMETRIC_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")

# The sym6 wavelet's low-pass filter (the reference's `wavelets['sym6']`): the anti-aliasing filter
# of the geometric path.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)

# The per-sample random draws, in the reference's order: (name, 'uniform' | 'normal', columns).
# Each op draws a value and a gate (the op fires where gate < multiplier * p).
DRAWS: tuple[tuple[str, str, int], ...] = (
    ("xflip", "uniform", 1), ("xflip_gate", "uniform", 1),
    ("rotate90", "uniform", 1), ("rotate90_gate", "uniform", 1),
    ("xint", "uniform", 2), ("xint_gate", "uniform", 1),
    ("scale", "normal", 1), ("scale_gate", "uniform", 1),
    ("rotate_pre", "uniform", 1), ("rotate_pre_gate", "uniform", 1),
    ("aniso", "normal", 1), ("aniso_gate", "uniform", 1),
    ("rotate_post", "uniform", 1), ("rotate_post_gate", "uniform", 1),
    ("xfrac", "normal", 2), ("xfrac_gate", "uniform", 1),
    ("brightness", "normal", 1), ("brightness_gate", "uniform", 1),
    ("contrast", "normal", 1), ("contrast_gate", "uniform", 1),
    ("lumaflip", "uniform", 1), ("lumaflip_gate", "uniform", 1),
    ("hue", "uniform", 1), ("hue_gate", "uniform", 1),
    ("saturation", "normal", 1), ("saturation_gate", "uniform", 1),
)


# Every function here is plain tensor code (its `if`s test Python settings, never tensors): traced as
# it is, not rewritten by AutoGraph, which took about 60 s per trace of the pipe (measured on TF 2.21).
_plain_python = tf.autograph.experimental.do_not_convert


def _columns(kind: str) -> dict[str, slice]:
    out, start = {}, 0
    for name, k, cols in DRAWS:
        if k == kind:
            out[name] = slice(start, start + cols)
            start += cols
    return out


_UNIFORM_COLUMNS, _NORMAL_COLUMNS = _columns("uniform"), _columns("normal")


@_plain_python
def draw_random(seed: tf.Tensor, batch_size) -> dict[str, tf.Tensor]:
    """Every named draw of `DRAWS` for a batch: [N] (or [N, 2] for xint, xfrac) float32.

    Pure in (seed, batch_size); sample i's draws do not depend on the batch size.
    """
    u = random_uniform(seed, batch_size, max(s.stop for s in _UNIFORM_COLUMNS.values()))
    z = random_normal(seed, batch_size, max(s.stop for s in _NORMAL_COLUMNS.values()))
    out = {}
    for name, kind, cols in DRAWS:
        source, column = (u, _UNIFORM_COLUMNS[name]) if kind == "uniform" else (z, _NORMAL_COLUMNS[name])
        out[name] = source[:, column] if cols > 1 else source[:, column.start]
    return out


# ---------------------------------------------------------------------------------------------
# Transformation matrices (the reference's helpers, batched): [N, k, k] float32 from rows of [N]
# tensors or Python numbers.

def _matrix(rows, n) -> tf.Tensor:
    elems = [tf.broadcast_to(tf.cast(e, tf.float32), [n]) for row in rows for e in row]
    return tf.reshape(tf.stack(elems, axis=-1), [n, len(rows), len(rows)])


def _translate2d(tx, ty, n):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n)


def _scale2d(sx, sy, n):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n)


def _rotate2d(theta, n):
    return _matrix([[tf.cos(theta), tf.sin(-theta), 0], [tf.sin(theta), tf.cos(theta), 0], [0, 0, 1]], n)


def _translate3d(tx, ty, tz, n):
    return _matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]], n)


def _scale3d(sx, sy, sz, n):
    return _matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]], n)


def _rotate3d(v, theta, n):
    """Rotation by theta around the unit axis v (Rodrigues)."""
    vx, vy, vz = (float(a) for a in v[:3])
    s, c = tf.sin(theta), tf.cos(theta)
    cc = 1 - c
    return _matrix([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                    [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                    [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                    [0, 0, 0, 1]], n)


def _upsample2x_kernel(taps) -> tuple[np.ndarray, int, int]:
    """`upfirdn2d.upsample2d(x, setup_filter(taps), up=2)` along one axis as two polyphase filters.

    Output sample 2k + r (r = 0, 1) is sum_d kernel[d, r] * x[k + d - pad0]: the zero-stuffed
    upsampling never multiplies its zeros. Returns (kernel [taps, 2], pad0, pad1).
    """
    f = np.asarray(taps, np.float64)
    g = (f / f.sum())[::-1] * 2  # normalised, flipped (upfirdn2d convolves), gain 2 per axis
    p0 = (len(g) + 1) // 2  # upsample2d's leading pad
    weights = {}
    for r in (0, 1):
        for t in range(len(g)):
            if (r + t - p0) % 2 == 0:
                weights[r, (r + t - p0) // 2] = g[t]
    d0 = min(d for _, d in weights)
    d1 = max(d for _, d in weights)
    kernel = np.zeros([d1 - d0 + 1, 2], np.float32)
    for (r, d), value in weights.items():
        kernel[d - d0, r] = value
    return kernel, -d0, d1


@_plain_python
def upsample2x(x: tf.Tensor, taps) -> tf.Tensor:
    """`upfirdn2d.upsample2d(x, setup_filter(taps), up=2)` for a 1-D filter, computed polyphase.

    Two stride-1 convolutions with 2 output channels (the phases) per axis, interleaved: about
    30x faster on CPU than the zero-stuffing upfirdn2d for the 12-tap sym6 (measured, 94x94 -> 188x188,
    batch 32, forward + backward: 0.035 s vs 1.05 s). x: [N, H, W, C] -> [N, 2H, 2W, C].
    """
    _, h, w, c = x.shape
    n = tf.shape(x)[0]
    kernel, pad0, pad1 = _upsample2x_kernel(taps)
    y = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [-1, h, w, 1])  # channels into the batch
    y = tf.pad(y, [[0, 0], [0, 0], [pad0, pad1], [0, 0]])
    y = tf.nn.conv2d(y, tf.constant(kernel.reshape(1, -1, 1, 2), y.dtype), 1, "VALID")  # [B, H, W, phase]
    y = tf.reshape(y, [-1, h, 2 * w, 1])
    y = tf.pad(y, [[0, 0], [pad0, pad1], [0, 0], [0, 0]])
    y = tf.nn.conv2d(y, tf.constant(kernel.reshape(-1, 1, 1, 2), y.dtype), 1, "VALID")  # [B, H, 2W, phase]
    y = tf.reshape(tf.transpose(y, [0, 1, 3, 2]), [n, c, 2 * h, 2 * w])
    return tf.transpose(y, [0, 2, 3, 1])


@_plain_python
def geometric_transform(images: tf.Tensor, g_inv: tf.Tensor) -> tf.Tensor:
    """Executes per-sample inverse transforms as the reference: reflect-pad, 2x sym6 upsample, sample, 2x downsample.

    `g_inv` maps an output pixel (x, y, 1), in pixels from the image centre (x right, y down),
    to the input position it reads. The reference reflect-pads by a margin computed from the
    batch's transforms (what the transformed image corners need, plus the filter support,
    at most one image size) and reads zeros beyond it. Shapes must be static for XLA, so here the
    image is reflect-padded by the largest margin (size - 1) and the part beyond the batch's
    margin is zeroed, before and after upsampling: the same values as the reference's, at a fixed
    shape.

    Args:
      images: [N, H, W, C] float (H, W, C static; H, W >= 2).
      g_inv: [N, 3, 3] float32 affine.
    Returns:
      [N, H, W, C] in the images' dtype; linear in the images (differentiable to any order).
    """
    n, h, w, c = images.shape
    n = tf.shape(images)[0] if n is None else n
    filt = upfirdn2d.setup_filter(list(SYM6))
    hz_pad = len(SYM6) // 4
    g_inv = tf.cast(g_inv, tf.float32)

    # The reference's margin: the transformed corners' extent plus the filter support, in [0, size - 1].
    cx, cy = (w - 1) / 2, (h - 1) / 2
    corners = tf.constant([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], tf.float32)
    cp = tf.einsum("nij,kj->nik", g_inv, corners)[:, :2, :]  # [N, xy, corner]
    cp = tf.reshape(tf.transpose(cp, [1, 0, 2]), [2, -1])  # [xy, N * corner]
    margin = tf.reduce_max(tf.concat([-cp, cp], axis=0), axis=1)  # [x0, y0, x1, y1]
    margin = margin + tf.constant([hz_pad * 2 - cx, hz_pad * 2 - cy] * 2, tf.float32)
    margin = tf.minimum(tf.maximum(margin, 0.0), tf.constant([w - 1, h - 1] * 2, tf.float32))
    mx0, my0, mx1, my1 = tf.unstack(tf.cast(tf.math.ceil(margin), tf.int32))

    # Static reflect padding by (W - 1, H - 1); zero what lies beyond the reference's margin.
    px, py = w - 1, h - 1
    x = tf.pad(images, [[0, 0], [py, py], [px, px], [0, 0]], mode="REFLECT")

    def window(size: int, lo, hi, scale: int):
        i = tf.range(size * scale)
        return (i >= scale * lo) & (i < scale * hi)

    def crop_to_margin(x, scale):
        rows = window(h + 2 * py, py - my0, py + h + my1, scale)
        cols = window(w + 2 * px, px - mx0, px + w + mx1, scale)
        return x * tf.cast(rows[:, None] & cols[None, :], x.dtype)[None, :, :, None]

    x = crop_to_margin(x, 1)
    x = crop_to_margin(upsample2x(x, SYM6), 2)

    # The reference's chain of frames: padded image (centred as the original here), 2x, pixel
    # centres, then torch's normalised coordinates of the upsampled input and the sampled output.
    in_h, in_w = 2 * (h + 2 * py), 2 * (w + 2 * px)
    out_h, out_w = 2 * (h + 2 * hz_pad), 2 * (w + 2 * hz_pad)
    g = _scale2d(2, 2, n) @ g_inv @ _scale2d(0.5, 0.5, n)
    g = _translate2d(-0.5, -0.5, n) @ g @ _translate2d(0.5, 0.5, n)
    g = _scale2d(2 / in_w, 2 / in_h, n) @ g @ _scale2d(out_w / 2, out_h / 2, n)
    x = grid_sample(x, affine_grid(g[:, :2, :], out_h, out_w))
    return upfirdn2d.downsample2d(x, filt, down=2, padding=-hz_pad * 2, flip_filter=True)


@_plain_python
def color_transform(images: tf.Tensor, color: tf.Tensor) -> tf.Tensor:
    """Applies [N, 4, 4] homogeneous colour matrices: RGB as C[:3, :3] @ rgb + C[:3, 3]; one channel
    as the reference: the rows averaged, x * sum(row[:3]) + row[3]."""
    n, h, w, c = images.shape
    color = tf.cast(color, images.dtype)
    if c == 3:
        return tf.einsum("nij,nhwj->nhwi", color[:, :3, :3], images) + color[:, None, None, :3, 3]
    if c == 1:
        row = tf.reduce_mean(color[:, :3, :], axis=1)  # [N, 4]
        gain = tf.reduce_sum(row[:, :3], axis=1)
        return images * gain[:, None, None, None] + row[:, 3][:, None, None, None]
    raise ValueError(f"color_transform: 1 or 3 colour channels. Received: shape={images.shape}")


class AugmentPipe(tf.Module):
    """ADA augmentation of NHWC images in [-1, 1]; strength `p` is a non-trainable tf.Variable.

    Args:
      xflip, rotate90, xint, scale, rotate, aniso, xfrac, brightness, contrast, lumaflip, hue,
        saturation: probability multipliers (0 disables an op; 'bgc' sets them all to 1).
      xint_max: range of integer translation, relative to the image size.
      scale_std, aniso_std: log2 standard deviations of isotropic / anisotropic scaling.
      rotate_max: range of arbitrary rotation, 1 = full circle.
      xfrac_std: standard deviation of fractional translation, relative to the image size.
      brightness_std: standard deviation of the additive brightness offset.
      contrast_std: log2 standard deviation of the contrast factor.
      hue_max: range of hue rotation, 1 = full circle; saturation_std: its log2 standard deviation.
      p: initial strength in [0, 1].
      color_channels: how many leading channels the colour ops touch, 1 or 3 (0 = none); None = 1
        for 2-channel images (image + mask) and all channels otherwise.
      seed: seed of `self.generator` (used when `__call__` gets no seed).

    Use `pipe(images, seed=None)`; `pipe.p.assign(...)` changes the strength without retracing.
    """

    def __init__(self, *, xflip: float = 0, rotate90: float = 0, xint: float = 0, xint_max: float = 0.125,
                 scale: float = 0, rotate: float = 0, aniso: float = 0, xfrac: float = 0,
                 scale_std: float = 0.2, rotate_max: float = 1, aniso_std: float = 0.2, xfrac_std: float = 0.125,
                 brightness: float = 0, contrast: float = 0, lumaflip: float = 0, hue: float = 0,
                 saturation: float = 0, brightness_std: float = 0.2, contrast_std: float = 0.5,
                 hue_max: float = 1, saturation_std: float = 1, p: float = 0.0, color_channels: int | None = None,
                 seed: int = 0, name: str = "augment_pipe"):
        super().__init__(name=name)
        self._config = dict(xflip=xflip, rotate90=rotate90, xint=xint, xint_max=xint_max, scale=scale,
                            rotate=rotate, aniso=aniso, xfrac=xfrac, scale_std=scale_std, rotate_max=rotate_max,
                            aniso_std=aniso_std, xfrac_std=xfrac_std, brightness=brightness, contrast=contrast,
                            lumaflip=lumaflip, hue=hue, saturation=saturation, brightness_std=brightness_std,
                            contrast_std=contrast_std, hue_max=hue_max, saturation_std=saturation_std,
                            color_channels=color_channels)
        for key, value in self._config.items():
            if key != "color_channels" and not (isinstance(value, (int, float)) and value >= 0):
                raise UserError(f"AugmentPipe: {key} must be a number >= 0. Received: {key}={value!r}")
        if not 0 <= p <= 1:
            raise UserError(f"AugmentPipe: p must be in [0, 1]. Received: p={p}")
        if color_channels not in (None, 0, 1, 3):
            raise UserError(f"AugmentPipe: color_channels must be 0, 1, 3 or None. Received: {color_channels}")
        for key, value in self._config.items():
            setattr(self, key, value if key == "color_channels" else float(value))
        with self.name_scope:
            self.p = tf.Variable(float(p), trainable=False, dtype=tf.float32, name="p")
            self.generator = tf.random.Generator.from_seed(seed)

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> AugmentPipe:
        """The named pipeline ('blit', 'geom', 'color', 'bg', 'bgc'); kwargs as in `__init__`."""
        if spec not in AUGMENT_SPECS:
            raise UserError(f"Unknown augment pipe {spec!r}: choose one of {sorted(AUGMENT_SPECS)} "
                            f"(TrainConfig.augment_pipe / --augpipe). Received: {spec!r}")
        return cls(**AUGMENT_SPECS[spec], **kwargs)

    def get_config(self) -> dict:
        """Constructor arguments (without `p` and `seed`, which are state)."""
        return dict(self._config)

    @property
    def geometric(self) -> bool:
        return any(getattr(self, op) > 0 for op in GEOMETRIC_OPS)

    def color_channels_of(self, channels: int) -> int:
        """Colour channels of [..., channels] images: 1 or 3 (0 = no colour ops)."""
        k = self.color_channels if self.color_channels is not None else (1 if channels == 2 else channels)
        k = min(k, channels)
        if k not in (0, 1, 3):
            raise UserError(f"AugmentPipe: colour ops need 1 or 3 colour channels; images with {channels} channels "
                            f"give {k}. Pass color_channels=1 (or 0 for none).")
        return k

    # ------------------------------------------------------------------
    @_plain_python
    def params_from_draws(self, draws: Mapping[str, tf.Tensor], height: int, width: int,
                          color_channels: int = 1) -> dict[str, tf.Tensor]:
        """The per-sample transforms for the current `p` from named draws (`draw_random` or replayed).

        Follows the reference's AugmentPipe.forward line by line. Hue and saturation need 3
        colour channels (the reference skips them on one channel).

        Returns:
          {'g_inv': [N, 3, 3] output pixel -> input pixel (centred frame),
           'color': [N, 4, 4] homogeneous colour matrix}, float32.
        """
        p = tf.convert_to_tensor(self.p, tf.float32)
        n = tf.shape(next(iter(draws.values())))[0]
        zeros, ones = tf.zeros([n]), tf.ones([n])

        def on(name, prob):
            return draws[name + "_gate"] < prob

        g_inv = tf.eye(3, batch_shape=[n])
        if self.xflip > 0:
            i = tf.where(on("xflip", self.xflip * p), tf.floor(draws["xflip"] * 2), zeros)
            g_inv = g_inv @ _scale2d(1 / (1 - 2 * i), 1, n)
        if self.rotate90 > 0:
            i = tf.where(on("rotate90", self.rotate90 * p), tf.floor(draws["rotate90"] * 4), zeros)
            g_inv = g_inv @ _rotate2d(math.pi / 2 * i, n)
        if self.xint > 0:
            t = tf.where(on("xint", self.xint * p)[:, None], (draws["xint"] * 2 - 1) * self.xint_max,
                         tf.zeros([n, 2]))
            g_inv = g_inv @ _translate2d(-tf.round(t[:, 0] * width), -tf.round(t[:, 1] * height), n)
        if self.scale > 0:
            s = tf.where(on("scale", self.scale * p), tf.pow(2.0, draws["scale"] * self.scale_std), ones)
            g_inv = g_inv @ _scale2d(1 / s, 1 / s, n)
        p_rot = 1 - tf.sqrt(tf.clip_by_value(1 - self.rotate * p, 0, 1))  # P(pre OR post) = rotate * p
        if self.rotate > 0:
            theta = tf.where(on("rotate_pre", p_rot), (draws["rotate_pre"] * 2 - 1) * math.pi * self.rotate_max,
                             zeros)
            g_inv = g_inv @ _rotate2d(theta, n)
        if self.aniso > 0:
            s = tf.where(on("aniso", self.aniso * p), tf.pow(2.0, draws["aniso"] * self.aniso_std), ones)
            g_inv = g_inv @ _scale2d(1 / s, s, n)
        if self.rotate > 0:
            theta = tf.where(on("rotate_post", p_rot), (draws["rotate_post"] * 2 - 1) * math.pi * self.rotate_max,
                             zeros)
            g_inv = g_inv @ _rotate2d(theta, n)
        if self.xfrac > 0:
            t = tf.where(on("xfrac", self.xfrac * p)[:, None], draws["xfrac"] * self.xfrac_std, tf.zeros([n, 2]))
            g_inv = g_inv @ _translate2d(-t[:, 0] * width, -t[:, 1] * height, n)

        color = tf.eye(4, batch_shape=[n])
        luma = np.asarray([1, 1, 1, 0]) / np.sqrt(3)  # the luma axis
        luma_outer = tf.constant(np.outer(luma, luma), tf.float32)
        if self.brightness > 0:
            b = tf.where(on("brightness", self.brightness * p), draws["brightness"] * self.brightness_std, zeros)
            color = _translate3d(b, b, b, n) @ color
        if self.contrast > 0:
            c = tf.where(on("contrast", self.contrast * p), tf.pow(2.0, draws["contrast"] * self.contrast_std), ones)
            color = _scale3d(c, c, c, n) @ color
        if self.lumaflip > 0:
            i = tf.where(on("lumaflip", self.lumaflip * p), tf.floor(draws["lumaflip"] * 2), zeros)
            color = (tf.eye(4) - 2 * luma_outer * i[:, None, None]) @ color  # Householder reflection
        if self.hue > 0 and color_channels > 1:
            theta = tf.where(on("hue", self.hue * p), (draws["hue"] * 2 - 1) * math.pi * self.hue_max, zeros)
            color = _rotate3d(luma, theta, n) @ color
        if self.saturation > 0 and color_channels > 1:
            s = tf.where(on("saturation", self.saturation * p),
                         tf.pow(2.0, draws["saturation"] * self.saturation_std), ones)
            color = (luma_outer + (tf.eye(4) - luma_outer) * s[:, None, None]) @ color
        return {"g_inv": g_inv, "color": color}

    @_plain_python
    def draw_params(self, batch_size, height: int, width: int, seed: tf.Tensor,
                    color_channels: int = 1) -> dict[str, tf.Tensor]:
        """`params_from_draws` of this seed's draws; pure in (batch_size, p, seed)."""
        return self.params_from_draws(draw_random(seed, batch_size), height, width, color_channels)

    @_plain_python
    def apply(self, images: tf.Tensor, params: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Executes the transforms of `params`: geometric (if any geometric op is on), then colour.

        Args:
          images: [N, H, W, C] float in [-1, 1].
        Returns:
          [N, H, W, C], same dtype.
        """
        x = images
        if self.geometric:
            x = geometric_transform(x, params["g_inv"])
        k = self.color_channels_of(images.shape[-1])
        if k and any(getattr(self, op) > 0 for op in COLOR_OPS):
            colored = color_transform(x[..., :k], params["color"])
            x = tf.concat([colored, x[..., k:]], axis=-1) if k < images.shape[-1] else colored
        return x

    @_plain_python
    def __call__(self, images: tf.Tensor, seed: tf.Tensor | None = None) -> tf.Tensor:
        """Augments a batch with strength `self.p`.

        Args:
          images: [N, H, W, C] float in [-1, 1] (H, W, C static).
          seed: int32/int64 [2] for stateless randomness, or None to draw one from `self.generator`.
        Returns:
          [N, H, W, C], same dtype; differentiable (to any order) w.r.t. `images`.
        """
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4 or None in images.shape[1:]:
            raise ValueError(f"AugmentPipe: images must be [N, H, W, C] with static H, W, C. "
                             f"Received: shape={images.shape}")
        if seed is None:
            seed = self.generator.make_seeds(1)[:, 0]
        params = self.draw_params(tf.shape(images)[0], images.shape[1], images.shape[2], seed,
                                  self.color_channels_of(images.shape[-1]))
        return self.apply(images, params)

    call = __call__


class AdaController(tf.Module):
    """The ADA heuristic: steers `pipe.p` so that E[sign(D(real))] (`rt`) tracks `target`.

    `accumulate(real_logits)` after every phase that evaluates D on reals (Dmain and Dreg, as
    the reference's 'Loss/signs/real' statistic), `update()` once per iteration; every
    `ada_interval` iterations, with rt = mean sign of the real logits accumulated since the last
    adjustment:
        p <- max(p + sign(rt - target) * batch_size * ada_interval / (ada_kimg * 1000), 0)
    (stylegan2-ada-pytorch training_loop.py: p is clamped below only; above 1 every op fires).

    Pure TF and branch-free: both run eagerly, in a `tf.function` or inside an XLA-compiled
    step; the state lives in non-trainable variables (checkpoint the controller with the pipe).
    Under tf.distribute accumulate the gathered global logits in the cross-replica context.

    Args:
      pipe: the AugmentPipe whose `p` is adjusted (any object with a float32 variable `p`).
      batch_size: global batch size (images per iteration).
      target: target value of rt (0.6 in ADA).
      ada_interval: iterations between adjustments (4 in ADA).
      ada_kimg: thousands of images for p to move by 1 (500 in ADA, 100 for transfer).
    """

    def __init__(self, pipe: AugmentPipe, *, batch_size: int, target: float = 0.6, ada_interval: int = 4,
                 ada_kimg: float = 500.0, name: str = "ada_controller"):
        super().__init__(name=name)
        if batch_size < 1 or ada_interval < 1 or ada_kimg <= 0 or not 0 < target < 1:
            raise UserError("AdaController: need batch_size >= 1, ada_interval >= 1, ada_kimg > 0 and "
                            f"0 < target < 1. Received: batch_size={batch_size}, ada_interval={ada_interval}, "
                            f"ada_kimg={ada_kimg}, target={target}")
        self.pipe = pipe
        self.batch_size, self.target = int(batch_size), float(target)
        self.ada_interval, self.ada_kimg = int(ada_interval), float(ada_kimg)
        with self.name_scope:
            self.sign_sum = tf.Variable(0.0, trainable=False, name="sign_sum")  # since last adjustment
            self.sign_count = tf.Variable(0.0, trainable=False, name="sign_count")
            self.steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="steps")
            self.rt = tf.Variable(0.0, trainable=False, name="rt")  # rt at the last adjustment, for logging

    @property
    def step_size(self) -> float:
        """|adjust| per adjustment: batch_size * ada_interval / (ada_kimg * 1000)."""
        return self.batch_size * self.ada_interval / (self.ada_kimg * 1000)

    def accumulate(self, real_logits: tf.Tensor) -> None:
        """Adds sign(real_logits) ([N, 1] or [N] logits of D on augmented reals) to the statistic."""
        signs = tf.sign(tf.cast(tf.reshape(real_logits, [-1]), tf.float32))
        self.accumulate_signs(tf.reduce_sum(signs), tf.cast(tf.size(signs), tf.float32))

    def accumulate_signs(self, sign_sum: tf.Tensor, count: tf.Tensor) -> None:
        """Adds a sum of signs over `count` logits (e.g. summed over replicas) to the statistic."""
        self.sign_sum.assign_add(tf.cast(sign_sum, tf.float32))
        self.sign_count.assign_add(tf.cast(count, tf.float32))

    def update(self) -> tf.Tensor:
        """Ends an iteration; every `ada_interval`-th call adjusts `pipe.p`. Returns p (float32 scalar)."""
        steps = self.steps.assign_add(1)
        due = tf.equal(steps % self.ada_interval, 0)
        rt = self.sign_sum / tf.maximum(self.sign_count, 1.0)
        p = self.pipe.p
        new_p = tf.maximum(p + tf.sign(rt - self.target) * self.step_size, 0.0)
        self.rt.assign(tf.where(due, rt, self.rt))
        self.sign_sum.assign(tf.where(due, 0.0, self.sign_sum))
        self.sign_count.assign(tf.where(due, 0.0, self.sign_count))
        return p.assign(tf.where(due, new_p, p))
