"""Adaptive discriminator augmentation (ADA) for grayscale / mask-carrying images.

A TensorFlow port of the 'bgc' pipeline of stylegan2-ada-pytorch `training/augment.py` (Karras et
al. 2020): `AugmentPipe` (pixel blitting, geometric and colour ops, one composed inverse matrix per
sample executed by `tfstylegan.ops.grid_sample.resample`) and `AdaController` (p from the sign of
D on reals). Randomness is stateless (`tfstylegan.ops.random`): `pipe(images, seed)` is a pure
function of (images, p, seed), identical eagerly and under XLA. The design and how it differs from
ADA: docs/AUGMENT.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import tensorflow as tf

from tfstylegan.ops.grid_sample import resample
from tfstylegan.ops.random import random_normal, random_uniform
from tfstylegan.utils.errors import UserError

# Probability multipliers of named pipelines (stylegan2-ada-pytorch train.py augpipe_specs,
# without the colour-only ops that make no sense on grayscale MRI).
AUGMENT_SPECS: dict[str, dict[str, float]] = {
    "blit": dict(xflip=1, rotate90=1, xint=1),
    "geom": dict(scale=1, rotate=1, aniso=1, xfrac=1),
    "color": dict(brightness=1, contrast=1),
    "bg": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1),
    "bgc": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1),
}

# Columns of the per-sample uniform and normal draws (fixed, whatever ops are enabled, so a
# seed gives the same transform for an op whether or not the others are on).
_U_XFLIP_GATE, _U_XFLIP, _U_ROT90_GATE, _U_ROT90, _U_XINT_GATE, _U_XINT_X, _U_XINT_Y = range(7)
_U_SCALE_GATE, _U_PREROT_GATE, _U_PREROT, _U_ANISO_GATE, _U_POSTROT_GATE, _U_POSTROT = range(7, 13)
_U_XFRAC_GATE, _U_BRIGHT_GATE, _U_CONTRAST_GATE = range(13, 16)
_NUM_UNIFORM = 16
_N_SCALE, _N_ANISO, _N_XFRAC_X, _N_XFRAC_Y, _N_BRIGHT, _N_CONTRAST = range(6)
_NUM_NORMAL = 6


# ---------------------------------------------------------------------------------------------
# Transformation matrices (ADA's helpers, batched).

def _matrix(rows: list[list[tf.Tensor | float]], batch_size: tf.Tensor) -> tf.Tensor:
    """A [N, 3, 3] float32 matrix from 3x3 rows of [N] tensors or Python numbers."""
    elems = [tf.broadcast_to(tf.cast(e, tf.float32), [batch_size]) for row in rows for e in row]
    return tf.reshape(tf.stack(elems, axis=-1), [batch_size, 3, 3])


def _translate(tx, ty, n):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n)


def _scale(sx, sy, n):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n)


def _rotate(cos, sin, n):
    """Rotation by theta (x right, y down) given cos(theta) and sin(theta)."""
    return _matrix([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], n)


class AugmentPipe(tf.Module):
    """ADA augmentation of NHWC images in [-1, 1]; strength `p` is a non-trainable tf.Variable.

    Args:
      xflip, rotate90, xint, scale, rotate, aniso, xfrac, brightness, contrast: probability
        multipliers (0 disables an op; ADA's 'bgc' sets them all to 1).
      xint_max: range of integer translation, relative to the image size.
      scale_std, aniso_std: log2 standard deviations of isotropic / anisotropic scaling.
      rotate_max: range of arbitrary rotation, 1 = full circle.
      xfrac_std: standard deviation of fractional translation, relative to the image size.
      brightness_std: standard deviation of the additive brightness offset.
      contrast_std: log2 standard deviation of the contrast factor.
      p: initial strength in [0, 1].
      color_channels: how many leading channels brightness/contrast touch; None = 1 for
        2-channel images (image + mask) and all channels otherwise.
      seed: seed of `self.generator` (used when `__call__` gets no seed).

    Use `pipe(images, seed=None)`; `pipe.p.assign(...)` changes the strength without retracing.
    """

    def __init__(self, *, xflip: float = 0, rotate90: float = 0, xint: float = 0, xint_max: float = 0.125,
                 scale: float = 0, rotate: float = 0, aniso: float = 0, xfrac: float = 0,
                 scale_std: float = 0.2, rotate_max: float = 1, aniso_std: float = 0.2, xfrac_std: float = 0.125,
                 brightness: float = 0, contrast: float = 0, brightness_std: float = 0.2,
                 contrast_std: float = 0.5, p: float = 0.0, color_channels: int | None = None,
                 seed: int = 0, name: str = "augment_pipe"):
        super().__init__(name=name)
        self._config = dict(xflip=xflip, rotate90=rotate90, xint=xint, xint_max=xint_max, scale=scale,
                            rotate=rotate, aniso=aniso, xfrac=xfrac, scale_std=scale_std, rotate_max=rotate_max,
                            aniso_std=aniso_std, xfrac_std=xfrac_std, brightness=brightness, contrast=contrast,
                            brightness_std=brightness_std, contrast_std=contrast_std, color_channels=color_channels)
        for key, value in self._config.items():
            if key != "color_channels" and not (isinstance(value, (int, float)) and value >= 0):
                raise UserError(f"AugmentPipe: {key} must be a number >= 0. Received: {key}={value!r}")
        if not 0 <= p <= 1:
            raise UserError(f"AugmentPipe: p must be in [0, 1]. Received: p={p}")
        if color_channels is not None and color_channels < 0:
            raise UserError(f"AugmentPipe: color_channels must be >= 0 or None. Received: {color_channels}")
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

    # ------------------------------------------------------------------
    def draw_params(self, batch_size, height: int, width: int, seed: tf.Tensor) -> Mapping[str, tf.Tensor]:
        """Random transforms for a batch of [N, height, width, C] images; pure in (N, p, seed).

        Returns:
          dict with `g_inv` [N, 3, 3] float32 (output pixel -> input pixel, centred frame),
          `brightness` [N] float32 (additive, 0 = off) and `contrast` [N] float32 (factor, 1 = off).
        """
        n = batch_size
        u = random_uniform(seed, n, _NUM_UNIFORM)
        z = random_normal(seed, n, _NUM_NORMAL)
        p = tf.convert_to_tensor(self.p, tf.float32)
        zeros, ones = tf.zeros([n]), tf.ones([n])

        def gate(column, prob):
            return u[:, column] < prob

        g_inv = tf.eye(3, batch_shape=[n])
        if self.xflip > 0:
            i = tf.where(gate(_U_XFLIP_GATE, self.xflip * p), tf.floor(u[:, _U_XFLIP] * 2), zeros)
            g_inv = g_inv @ _scale(1 - 2 * i, 1, n)
        if self.rotate90 > 0:
            k = tf.where(gate(_U_ROT90_GATE, self.rotate90 * p), tf.floor(u[:, _U_ROT90] * 4), zeros)
            k = tf.cast(k, tf.int32)  # quarter turns; exact cos/sin so blits stay exact
            g_inv = g_inv @ _rotate(tf.gather([1.0, 0.0, -1.0, 0.0], k), tf.gather([0.0, 1.0, 0.0, -1.0], k), n)
        if self.xint > 0:
            on = gate(_U_XINT_GATE, self.xint * p)
            tx = tf.where(on, (u[:, _U_XINT_X] * 2 - 1) * self.xint_max, zeros)
            ty = tf.where(on, (u[:, _U_XINT_Y] * 2 - 1) * self.xint_max, zeros)
            g_inv = g_inv @ _translate(-tf.round(tx * width), -tf.round(ty * height), n)
        if self.scale > 0:
            s = tf.where(gate(_U_SCALE_GATE, self.scale * p), tf.pow(2.0, z[:, _N_SCALE] * self.scale_std), ones)
            g_inv = g_inv @ _scale(1 / s, 1 / s, n)
        p_rot = 1 - tf.sqrt(tf.clip_by_value(1 - self.rotate * p, 0, 1))  # P(pre or post) = rotate * p
        if self.rotate > 0:
            theta = tf.where(gate(_U_PREROT_GATE, p_rot), (u[:, _U_PREROT] * 2 - 1) * math.pi * self.rotate_max,
                             zeros)
            g_inv = g_inv @ _rotate(tf.cos(theta), tf.sin(theta), n)
        if self.aniso > 0:
            s = tf.where(gate(_U_ANISO_GATE, self.aniso * p), tf.pow(2.0, z[:, _N_ANISO] * self.aniso_std), ones)
            g_inv = g_inv @ _scale(1 / s, s, n)
        if self.rotate > 0:
            theta = tf.where(gate(_U_POSTROT_GATE, p_rot),
                             (u[:, _U_POSTROT] * 2 - 1) * math.pi * self.rotate_max, zeros)
            g_inv = g_inv @ _rotate(tf.cos(theta), tf.sin(theta), n)
        if self.xfrac > 0:
            on = gate(_U_XFRAC_GATE, self.xfrac * p)
            tx = tf.where(on, z[:, _N_XFRAC_X] * self.xfrac_std, zeros)
            ty = tf.where(on, z[:, _N_XFRAC_Y] * self.xfrac_std, zeros)
            g_inv = g_inv @ _translate(-tx * width, -ty * height, n)

        b = zeros
        if self.brightness > 0:
            b = tf.where(gate(_U_BRIGHT_GATE, self.brightness * p), z[:, _N_BRIGHT] * self.brightness_std, zeros)
        c = ones
        if self.contrast > 0:
            c = tf.where(gate(_U_CONTRAST_GATE, self.contrast * p), tf.pow(2.0, z[:, _N_CONTRAST] * self.contrast_std),
                         ones)
        return {"g_inv": g_inv, "brightness": b, "contrast": c}

    def apply(self, images: tf.Tensor, params: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Executes `draw_params` output: one geometric resampling, then brightness and contrast.

        Samples whose transform is the identity are returned bit for bit. Colour:
        `out = (x + brightness) * contrast` on the colour channels (ADA's order).

        Args:
          images: [N, H, W, C] float in [-1, 1].
        Returns:
          [N, H, W, C], same dtype.
        """
        g_inv = params["g_inv"]
        is_identity = tf.reduce_all(tf.equal(g_inv, tf.eye(3)[None]), axis=[1, 2])  # [N]
        x = tf.where(is_identity[:, None, None, None], images, resample(images, g_inv))

        b, c = params["brightness"], params["contrast"]
        k = self._color_channels(images.shape[-1])
        if k > 0 and (self.brightness > 0 or self.contrast > 0):
            color, rest = x[..., :k], x[..., k:]
            b_ = tf.cast(b, x.dtype)[:, None, None, None]
            c_ = tf.cast(c, x.dtype)[:, None, None, None]
            keep = tf.logical_and(tf.equal(b, 0), tf.equal(c, 1))[:, None, None, None]
            color = tf.where(keep, color, (color + b_) * c_)
            x = tf.concat([color, rest], axis=-1) if k < images.shape[-1] else color
        return x

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
        params = self.draw_params(tf.shape(images)[0], images.shape[1], images.shape[2], seed)
        return self.apply(images, params)

    call = __call__

    def _color_channels(self, channels: int) -> int:
        if self.color_channels is not None:
            return min(self.color_channels, channels)
        return 1 if channels == 2 else channels


class AdaController(tf.Module):
    """The ADA heuristic: steers `pipe.p` so that E[sign(D(real))] (`rt`) tracks `target`.

    Every `ada_interval` calls of `update(real_logits)`, with rt = mean sign of the real logits
    seen since the last adjustment:
        p <- clip(p + sign(rt - target) * batch_size * ada_interval / (ada_kimg * 1000), 0, 1)
    (stylegan2-ada-pytorch training_loop.py; there p is only clamped below).

    Pure TF and branch-free: `update` can run eagerly, in a `tf.function`, or inside an
    XLA-compiled train step; it keeps its state in non-trainable variables (checkpoint the
    controller with the pipe). Under tf.distribute call it on the gathered global logits from
    the cross-replica context (one update per global step), not per replica.

    Args:
      pipe: the AugmentPipe whose `p` is adjusted (any object with a float32 variable `p`).
      batch_size: global batch size (images per step).
      target: target value of rt (0.6 in ADA).
      ada_interval: steps between adjustments (4 in ADA).
      ada_kimg: thousands of images for p to move from 0 to 1 (500 in ADA, 100 for transfer).
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

    def update(self, real_logits: tf.Tensor) -> tf.Tensor:
        """Accumulates sign(real_logits) and, every `ada_interval` calls, adjusts `pipe.p`.

        Args:
          real_logits: [N, 1] or [N] discriminator logits on (augmented) real images.
        Returns:
          p after this call, float32 scalar.
        """
        signs = tf.sign(tf.cast(tf.reshape(real_logits, [-1]), tf.float32))
        sign_sum = self.sign_sum.assign_add(tf.reduce_sum(signs))
        sign_count = self.sign_count.assign_add(tf.cast(tf.size(signs), tf.float32))
        steps = self.steps.assign_add(1)
        due = tf.equal(steps % self.ada_interval, 0)
        rt = sign_sum / tf.maximum(sign_count, 1.0)
        p = self.pipe.p
        new_p = tf.clip_by_value(p + tf.sign(rt - self.target) * self.step_size, 0.0, 1.0)
        self.rt.assign(tf.where(due, rt, self.rt))
        self.sign_sum.assign(tf.where(due, 0.0, sign_sum))
        self.sign_count.assign(tf.where(due, 0.0, sign_count))
        return p.assign(tf.where(due, new_p, p))
