"""The synthesis network g: ws -> image, the paper's skip generator (config F).

Names follow the paper and stylegan2-ada-pytorch: `SynthesisLayer` (modulated 3x3 conv with
demodulation, noise and lrelu), `ToRGB` (modulated 1x1 conv without demodulation),
`SynthesisBlock` (one resolution), `SynthesisNetwork` (constant 4x4 input, one block per
resolution, skip connections summing the upsampled ToRGB outputs).

Noise: `noise_mode='random'` draws fresh per-pixel noise (stateless from `noise_seed` [2] int32
if given, so a training step is reproducible), `'const'` uses the stored `noise_const`
buffers, `'none'` adds nothing. With `noise_mode='random'` the caller may instead pass the
noise itself, `noise=[...]`: one [N, r, r, 1] tensor per SynthesisLayer in layer order
(`SynthesisNetwork.noise_resolutions`), e.g. to replay another implementation's draws.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfstylegan.config import GeneratorConfig
from tfstylegan.networks.layers import Conv2dLayer, FullyConnectedLayer, assert_shape, policy_for
from tfstylegan.ops import bias_act as _bias_act
from tfstylegan.ops import modulated_conv2d as _modconv
from tfstylegan.ops import upfirdn2d as _upfirdn2d
from tfstylegan.utils.errors import UserError

_SQRT_HALF = 0.7071067811865476  # a Python float: Keras turns numpy scalars passed to call() into tensors

NOISE_MODES = ("random", "const", "none")
"""Synthesis noise: 'random' (fresh draws, what the model samples), 'const' (the stored buffers), 'none'."""


def check_noise_mode(noise_mode: str) -> None:
    """Raises a UserError (a ValueError) unless `noise_mode` is one of NOISE_MODES."""
    if noise_mode not in NOISE_MODES:
        raise UserError(f"noise_mode must be one of {', '.join(NOISE_MODES)}. Received: noise_mode={noise_mode!r}")


@keras.saving.register_keras_serializable(package="tfstylegan")
class SynthesisLayer(keras.layers.Layer):
    """Modulated conv + noise + bias + lrelu. x: [N, r/up, r/up, in] -> [N, r, r, out]."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, layer_index: int = 0, **kwargs):
        kwargs.setdefault("autocast", False)  # inputs are cast explicitly (img and styles stay float32)
        super().__init__(**kwargs)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.w_dim, self.resolution = int(w_dim), int(resolution)
        self.kernel_size, self.up = int(kernel_size), int(up)
        self.use_noise, self.activation = bool(use_noise), activation
        self.resample_filter_taps = tuple(resample_filter)
        self.conv_clamp = conv_clamp
        self.layer_index = int(layer_index)
        self.padding = self.kernel_size // 2
        self.act_gain = _bias_act.activation_funcs[activation].def_gain
        self.resample_filter = _upfirdn2d.setup_filter(list(self.resample_filter_taps))
        self.affine = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1, name="affine",
                                          dtype="float32")
        self.weight = self.add_weight(name="weight",
                                      shape=(self.kernel_size, self.kernel_size, self.in_channels, self.out_channels),
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))
        if self.use_noise:
            self.noise_const = self.add_weight(name="noise_const", shape=(self.resolution, self.resolution),
                                               initializer=keras.initializers.RandomNormal(stddev=1.0),
                                               trainable=False)
            self.noise_strength = self.add_weight(name="noise_strength", shape=(), initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(self.out_channels,), initializer="zeros")
        self.built = True

    def call(self, x, w, noise_mode: str = "random", noise_seed=None, fused_modconv: bool = True,
             gain: float = 1.0, noise=None):
        """x: [N, H, W, in], w: [N, w_dim] -> [N, resolution, resolution, out].

        noise: optional [N, resolution, resolution, 1] unit-variance noise used instead of a fresh
        draw when noise_mode='random' (scaled by `noise_strength` here).
        """
        check_noise_mode(noise_mode)
        dtype = self.compute_dtype
        styles = self.affine(w)  # [N, in], float32
        given, noise = noise, None
        if self.use_noise and noise_mode == "random" and given is not None:
            assert_shape(given, [None, self.resolution, self.resolution, 1], "noise")
            noise = tf.cast(tf.cast(given, tf.float32) * self.noise_strength, dtype)
        elif self.use_noise and noise_mode == "random":
            shape = [tf.shape(x)[0], self.resolution, self.resolution, 1]
            if noise_seed is not None:
                seed = tf.random.experimental.stateless_fold_in(noise_seed, self.layer_index)
                noise = tf.random.stateless_normal(shape, seed=seed)
            else:
                noise = tf.random.normal(shape)
            noise = tf.cast(noise * self.noise_strength, dtype)
        elif self.use_noise and noise_mode == "const":
            noise = tf.cast((self.noise_const * self.noise_strength)[None, :, :, None], dtype)
        x = _modconv.modulated_conv2d(  # weight and styles float32: (de)modulation in float32, as the reference
            tf.cast(x, dtype), self.weight, styles, noise=noise, up=self.up,
            padding=self.padding, resample_filter=self.resample_filter, flip_weight=(self.up == 1),
            fused_modconv=fused_modconv)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return _bias_act.bias_act(x, tf.cast(self.bias, x.dtype), act=self.activation, gain=act_gain,
                                  clamp=act_clamp)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(in_channels=self.in_channels, out_channels=self.out_channels, w_dim=self.w_dim,
                   resolution=self.resolution, kernel_size=self.kernel_size, up=self.up,
                   use_noise=self.use_noise, activation=self.activation,
                   resample_filter=list(self.resample_filter_taps), conv_clamp=self.conv_clamp,
                   layer_index=self.layer_index)
        return cfg


@keras.saving.register_keras_serializable(package="tfstylegan")
class ToRGB(keras.layers.Layer):
    """Modulated 1x1 conv to image channels, no demodulation. x: [N, r, r, in] -> [N, r, r, img_channels]."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, **kwargs):
        kwargs.setdefault("autocast", False)  # inputs are cast explicitly (img and styles stay float32)
        super().__init__(**kwargs)
        self.in_channels, self.out_channels, self.w_dim = int(in_channels), int(out_channels), int(w_dim)
        self.kernel_size = int(kernel_size)
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1, name="affine",
                                          dtype="float32")
        self.weight = self.add_weight(name="weight",
                                      shape=(self.kernel_size, self.kernel_size, self.in_channels, self.out_channels),
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.bias = self.add_weight(name="bias", shape=(self.out_channels,), initializer="zeros")
        self.weight_gain = 1.0 / np.sqrt(self.in_channels * self.kernel_size ** 2)
        self.built = True

    def call(self, x, w, fused_modconv: bool = True):
        dtype = self.compute_dtype
        styles = self.affine(w) * self.weight_gain
        x = _modconv.modulated_conv2d(tf.cast(x, dtype), self.weight, styles,
                                      demodulate=False, fused_modconv=fused_modconv)
        return _bias_act.bias_act(x, tf.cast(self.bias, x.dtype), clamp=self.conv_clamp)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(in_channels=self.in_channels, out_channels=self.out_channels, w_dim=self.w_dim,
                   kernel_size=self.kernel_size, conv_clamp=self.conv_clamp)
        return cfg


@keras.saving.register_keras_serializable(package="tfstylegan")
class SynthesisBlock(keras.layers.Layer):
    """One resolution of the synthesis network.

    The 4x4 block starts from the learned constant `const` [4, 4, out]; others upsample with
    `conv0` (up=2) then `conv1`. With the skip architecture every block adds its `torgb`
    output to the upsampled image from the block below.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False, use_noise: bool = True,
                 first_layer_index: int = 0, **kwargs):
        kwargs.setdefault("dtype", policy_for(use_fp16))
        kwargs.setdefault("autocast", False)  # inputs are cast explicitly (img and styles stay float32)
        super().__init__(**kwargs)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.w_dim, self.resolution, self.img_channels = int(w_dim), int(resolution), int(img_channels)
        self.is_last, self.architecture = bool(is_last), architecture
        self.resample_filter_taps = tuple(resample_filter)
        self.conv_clamp, self.use_fp16, self.use_noise = conv_clamp, bool(use_fp16), bool(use_noise)
        self.first_layer_index = int(first_layer_index)
        self.resample_filter = _upfirdn2d.setup_filter(list(self.resample_filter_taps))
        policy = self.dtype_policy
        common = dict(w_dim=self.w_dim, resolution=self.resolution, use_noise=self.use_noise,
                      resample_filter=self.resample_filter_taps, conv_clamp=conv_clamp, dtype=policy)
        self.num_conv = 0
        self.num_torgb = 0
        self.const = None
        self.conv0 = None
        if self.in_channels == 0:
            self.const = self.add_weight(name="const", shape=(self.resolution, self.resolution, self.out_channels),
                                         initializer=keras.initializers.RandomNormal(stddev=1.0))
        else:
            self.conv0 = SynthesisLayer(self.in_channels, self.out_channels, up=2, name="conv0",
                                        layer_index=self.first_layer_index, **common)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(self.out_channels, self.out_channels, name="conv1",
                                    layer_index=self.first_layer_index + self.num_conv, **common)
        self.num_conv += 1
        self.torgb = None
        if self.is_last or self.architecture == "skip":
            self.torgb = ToRGB(self.out_channels, self.img_channels, w_dim=self.w_dim, conv_clamp=conv_clamp,
                               name="torgb", dtype=policy)
            self.num_torgb += 1
        self.skip = None
        if self.in_channels != 0 and self.architecture == "resnet":
            self.skip = Conv2dLayer(self.in_channels, self.out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=self.resample_filter_taps, name="skip", dtype=policy)
        self.built = True

    def call(self, x, img, ws, noise_mode: str = "random", noise_seed=None, fused_modconv: bool = True,
             noise=None):
        """x: [N, r/2, r/2, in] or None, img: [N, r/2, r/2, C] or None, ws: [N, num_conv + num_torgb, w_dim].

        noise: None or `num_conv` per-layer noise tensors [N, r, r, 1] (conv0 first).
        """
        dtype = self.compute_dtype
        if dtype == "float16":
            # As stylegan2-ada-pytorch: fuse only in float32 (TF has no float16 gradient for grouped
            # convolutions on CPU, and fp16 blocks are the large ones where fusing does not pay off).
            fused_modconv = False
        w_iter = iter(tf.unstack(ws, axis=1))
        if self.in_channels == 0:
            n = tf.shape(ws)[0]
            x = tf.tile(tf.cast(self.const, dtype)[None], [n, 1, 1, 1])
        else:
            assert_shape(x, [None, self.resolution // 2, self.resolution // 2, self.in_channels], "x")
            x = tf.cast(x, dtype)
        layer_kw = dict(noise_mode=noise_mode, noise_seed=noise_seed, fused_modconv=fused_modconv)
        noise = [None] * self.num_conv if noise is None else list(noise)
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), noise=noise[0], **layer_kw)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=_SQRT_HALF)
            x = self.conv0(x, next(w_iter), noise=noise[0], **layer_kw)
            x = self.conv1(x, next(w_iter), gain=_SQRT_HALF, noise=noise[1], **layer_kw)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), noise=noise[0], **layer_kw)
            x = self.conv1(x, next(w_iter), noise=noise[1], **layer_kw)
        if img is not None:
            assert_shape(img, [None, self.resolution // 2, self.resolution // 2, self.img_channels], "img")
            img = _upfirdn2d.upsample2d(img, self.resample_filter)
        if self.torgb is not None:
            y = tf.cast(self.torgb(x, next(w_iter), fused_modconv=fused_modconv), tf.float32)
            img = img + y if img is not None else y
        return x, img

    def get_config(self):
        cfg = super().get_config()
        cfg.update(in_channels=self.in_channels, out_channels=self.out_channels, w_dim=self.w_dim,
                   resolution=self.resolution, img_channels=self.img_channels, is_last=self.is_last,
                   architecture=self.architecture, resample_filter=list(self.resample_filter_taps),
                   conv_clamp=self.conv_clamp, use_fp16=self.use_fp16, use_noise=self.use_noise,
                   first_layer_index=self.first_layer_index)
        return cfg


@keras.saving.register_keras_serializable(package="tfstylegan")
class SynthesisNetwork(keras.layers.Layer):
    """ws [N, num_ws, w_dim] -> img [N, R, R, img_channels] (float32, roughly [-1, 1])."""

    def __init__(self, config: GeneratorConfig, **kwargs):
        kwargs.setdefault("autocast", False)  # inputs are cast explicitly (img and styles stay float32)
        super().__init__(**kwargs)
        self.config = config
        self.w_dim = config.w_dim
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        self.block_resolutions = config.block_resolutions
        self.blocks = []
        self.num_ws = 0
        layer_index = 0
        for res in self.block_resolutions:
            in_channels = config.channels_at(res // 2) if res > 4 else 0
            block = SynthesisBlock(
                in_channels, config.channels_at(res), w_dim=config.w_dim, resolution=res,
                img_channels=config.img_channels, is_last=(res == config.img_resolution),
                architecture=config.architecture, resample_filter=config.resample_filter,
                conv_clamp=config.conv_clamp, use_fp16=(res >= config.fp16_resolution),
                use_noise=config.use_noise, first_layer_index=layer_index, name=f"b{res}")
            layer_index += block.num_conv
            self.num_ws += block.num_conv
            if res == config.img_resolution:
                self.num_ws += block.num_torgb
            self.blocks.append(block)
        assert self.num_ws == config.num_ws, (self.num_ws, config.num_ws)
        self.built = True

    @property
    def noise_resolutions(self) -> list[int]:
        """Resolution of each SynthesisLayer's noise input, in layer order (b4.conv1, b8.conv0, ...)."""
        return [block.resolution for block in self.blocks for _ in range(block.num_conv)]

    def call(self, ws, noise_mode: str = "random", noise_seed=None, fused_modconv: bool | None = None,
             noise=None):
        """ws [N, num_ws, w_dim] -> img [N, R, R, C].

        noise: None (draw, from `noise_seed` if given) or, with noise_mode='random', a list of
        unit-variance noise tensors [N, r, r, 1], one per layer at `noise_resolutions`.
        """
        check_noise_mode(noise_mode)
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        ws = tf.cast(ws, tf.float32)
        if fused_modconv is None:
            fused_modconv = self.config.fused_modconv
        if noise is not None and len(noise) != len(self.noise_resolutions):
            raise ValueError(f"noise must hold one tensor per synthesis layer ({len(self.noise_resolutions)}, at "
                             f"resolutions {self.noise_resolutions}). Received: {len(noise)} tensors")
        x = img = None
        w_idx = layer_idx = 0
        for block in self.blocks:
            block_ws = ws[:, w_idx:w_idx + block.num_conv + block.num_torgb]
            w_idx += block.num_conv
            block_noise = None if noise is None else noise[layer_idx:layer_idx + block.num_conv]
            layer_idx += block.num_conv
            x, img = block(x, img, block_ws, noise_mode=noise_mode, noise_seed=noise_seed,
                           fused_modconv=fused_modconv, noise=block_noise)
        return img

    def get_config(self):
        cfg = super().get_config()
        cfg.update(config=self.config.to_dict())
        return cfg

    @classmethod
    def from_config(cls, cfg):
        cfg = dict(cfg)
        config = GeneratorConfig.from_dict(cfg.pop("config"))
        return cls(config, **cfg)
