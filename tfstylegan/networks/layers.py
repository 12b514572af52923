"""Equalized-learning-rate building blocks shared by the generator and the discriminator.

Weights are stored unscaled (N(0, 1) / lr_multiplier at init) and scaled at run time by
`lr_multiplier / sqrt(fan_in)` (Karras et al. 2018, "equalized learning rate"), exactly as
stylegan2-ada-pytorch `training/networks.py`. Weight layouts are TF's: dense `[in, out]`,
conv `[kh, kw, in, out]`.

Every layer creates its variables in `__init__` (all shapes follow from the config), so a
network is complete and countable as soon as it is constructed.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from tfstylegan.ops import bias_act as _bias_act
from tfstylegan.ops import conv2d_resample as _conv2d_resample
from tfstylegan.ops import upfirdn2d as _upfirdn2d

_SERIAL_PACKAGE = "tfstylegan"


def assert_shape(x: tf.Tensor, shape: list, name: str = "tensor") -> None:
    """Checks the static shape of `x` against `shape` (None entries are free)."""
    if x.shape.rank != len(shape):
        raise ValueError(f"{name}: expected rank {len(shape)} {shape}. Received: shape={x.shape}")
    for i, (have, want) in enumerate(zip(x.shape, shape)):
        if want is not None and have is not None and have != want:
            raise ValueError(f"{name}: expected dim {i} == {want} (shape {shape}). Received: shape={x.shape}")


def normalize_2nd_moment(x: tf.Tensor, eps: float = 1e-8) -> tf.Tensor:
    """x / sqrt(mean(x**2) + eps) over the feature axis. x: [N, F]."""
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True) + eps)


def policy_for(use_fp16: bool) -> str:
    """Dtype policy of a block: 'mixed_float16' if the global policy is mixed and the block is fp16."""
    global_policy = keras.mixed_precision.dtype_policy().name
    if use_fp16 and global_policy == "mixed_float16":
        return "mixed_float16"
    return "float32"


@keras.saving.register_keras_serializable(package=_SERIAL_PACKAGE)
class FullyConnectedLayer(keras.layers.Layer):
    """Dense layer with equalized learning rate and fused bias + activation.

    Args:
      in_features, out_features: sizes; x: [N, in_features] -> [N, out_features].
      bias_init: initial bias value (1 for style affines, so styles start at 1).
      lr_multiplier: learning-rate multiplier (0.01 in the mapping network).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation: str = "linear", lr_multiplier: float = 1.0, bias_init: float = 0.0,
                 **kwargs):
        kwargs.setdefault("autocast", False)  # inputs are cast explicitly (img and styles stay float32)
        super().__init__(**kwargs)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.activation = activation
        self.lr_multiplier = float(lr_multiplier)
        self.bias_init = float(bias_init)
        self.use_bias = bool(bias)
        self.weight = self.add_weight(
            name="weight", shape=(self.in_features, self.out_features),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lr_multiplier))
        self.bias = (self.add_weight(name="bias", shape=(self.out_features,),
                                     initializer=keras.initializers.Constant(self.bias_init))
                     if self.use_bias else None)
        self.weight_gain = self.lr_multiplier / math.sqrt(self.in_features)
        self.bias_gain = self.lr_multiplier
        self.built = True

    def call(self, x):
        dtype = self.compute_dtype
        x = tf.cast(x, dtype)
        w = tf.cast(self.weight, dtype) * tf.cast(self.weight_gain, dtype)
        x = tf.matmul(x, w)
        b = None
        if self.bias is not None:
            b = tf.cast(self.bias, dtype)
            if self.bias_gain != 1:
                b = b * tf.cast(self.bias_gain, dtype)
        return _bias_act.bias_act(x, b, act=self.activation)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(in_features=self.in_features, out_features=self.out_features, bias=self.use_bias,
                   activation=self.activation, lr_multiplier=self.lr_multiplier, bias_init=self.bias_init)
        return cfg


@keras.saving.register_keras_serializable(package=_SERIAL_PACKAGE)
class Conv2dLayer(keras.layers.Layer):
    """Conv with equalized lr, optional FIR up/down sampling, fused bias + activation + clamp.

    x: [N, H, W, in_channels] -> [N, H*up/down, W*up/down, out_channels].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter=(1, 3, 3, 1), conv_clamp: float | None = None, **kwargs):
        kwargs.setdefault("autocast", False)  # inputs are cast explicitly (img and styles stay float32)
        super().__init__(**kwargs)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = int(kernel_size)
        self.activation = activation
        self.up = int(up)
        self.down = int(down)
        self.resample_filter_taps = tuple(resample_filter)
        self.conv_clamp = conv_clamp
        self.use_bias = bool(bias)
        self.padding = self.kernel_size // 2
        self.weight_gain = 1.0 / math.sqrt(self.in_channels * self.kernel_size ** 2)
        self.act_gain = _bias_act.activation_funcs[activation].def_gain
        self.resample_filter = _upfirdn2d.setup_filter(list(self.resample_filter_taps))
        self.weight = self.add_weight(
            name="weight", shape=(self.kernel_size, self.kernel_size, self.in_channels, self.out_channels),
            initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.bias = (self.add_weight(name="bias", shape=(self.out_channels,), initializer="zeros")
                     if self.use_bias else None)
        self.built = True

    def call(self, x, gain: float = 1.0):
        dtype = self.compute_dtype
        x = tf.cast(x, dtype)
        w = tf.cast(self.weight, dtype) * tf.cast(self.weight_gain, dtype)
        b = tf.cast(self.bias, dtype) if self.bias is not None else None
        flip_weight = self.up == 1  # slightly faster, as stylegan2-ada-pytorch
        x = _conv2d_resample.conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down,
                                             padding=self.padding, flip_weight=flip_weight)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return _bias_act.bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(in_channels=self.in_channels, out_channels=self.out_channels,
                   kernel_size=self.kernel_size, bias=self.use_bias, activation=self.activation, up=self.up,
                   down=self.down, resample_filter=list(self.resample_filter_taps), conv_clamp=self.conv_clamp)
        return cfg


def count_params(layer: keras.layers.Layer, trainable_only: bool = True) -> int:
    """Number of scalar parameters (trainable by default) of a layer or model."""
    weights = layer.trainable_weights if trainable_only else layer.weights
    return int(sum(int(np.prod(w.shape)) for w in weights))
