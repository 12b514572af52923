"""The StyleGAN2 discriminator (residual architecture) as a Keras 3 subclass model."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfstylegan.config import DiscriminatorConfig
from tfstylegan.networks.layers import Conv2dLayer, FullyConnectedLayer, assert_shape, policy_for
from tfstylegan.networks.mapping import MappingNetwork

_SQRT_HALF = 0.7071067811865476  # a Python float: Keras turns numpy scalars passed to call() into tensors


@keras.saving.register_keras_serializable(package="tfstylegan")
class DiscriminatorBlock(keras.layers.Layer):
    """One resolution of D: (FromRGB) -> conv0 -> conv1 (down 2), with a 1x1 residual `skip`.

    x: [N, r, r, in] or None (top block), img: [N, r, r, C] -> x [N, r/2, r/2, out], img.
    """

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int,
                 img_channels: int, architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter=(1, 3, 3, 1), conv_clamp: float | None = None, use_fp16: bool = False,
                 **kwargs):
        kwargs.setdefault("dtype", policy_for(use_fp16))
        kwargs.setdefault("autocast", False)  # inputs are cast explicitly (img and styles stay float32)
        super().__init__(**kwargs)
        self.in_channels, self.tmp_channels, self.out_channels = int(in_channels), int(tmp_channels), int(out_channels)
        self.resolution, self.img_channels = int(resolution), int(img_channels)
        self.architecture, self.activation = architecture, activation
        self.resample_filter_taps = tuple(resample_filter)
        self.conv_clamp, self.use_fp16 = conv_clamp, bool(use_fp16)
        policy = self.dtype_policy
        self.fromrgb = None
        if self.in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(self.img_channels, self.tmp_channels, kernel_size=1, activation=activation,
                                       conv_clamp=conv_clamp, name="fromrgb", dtype=policy)
        self.conv0 = Conv2dLayer(self.tmp_channels, self.tmp_channels, kernel_size=3, activation=activation,
                                 conv_clamp=conv_clamp, name="conv0", dtype=policy)
        self.conv1 = Conv2dLayer(self.tmp_channels, self.out_channels, kernel_size=3, activation=activation,
                                 down=2, resample_filter=self.resample_filter_taps, conv_clamp=conv_clamp,
                                 name="conv1", dtype=policy)
        self.skip = None
        if architecture == "resnet":
            self.skip = Conv2dLayer(self.tmp_channels, self.out_channels, kernel_size=1, bias=False, down=2,
                                    resample_filter=self.resample_filter_taps, name="skip", dtype=policy)
        self.built = True

    def call(self, x, img):
        dtype = self.compute_dtype
        if x is not None:
            assert_shape(x, [None, self.resolution, self.resolution, self.in_channels], "x")
            x = tf.cast(x, dtype)
        if self.in_channels == 0 or self.architecture == "skip":
            assert_shape(img, [None, self.resolution, self.resolution, self.img_channels], "img")
            y = self.fromrgb(tf.cast(img, dtype))
            x = x + y if x is not None else y
            img = None  # (the skip architecture would downsample img here)
        if self.architecture == "resnet":
            y = self.skip(x, gain=_SQRT_HALF)
            x = self.conv0(x)
            x = self.conv1(x, gain=_SQRT_HALF)
            x = y + x
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img

    def get_config(self):
        cfg = super().get_config()
        cfg.update(in_channels=self.in_channels, tmp_channels=self.tmp_channels, out_channels=self.out_channels,
                   resolution=self.resolution, img_channels=self.img_channels, architecture=self.architecture,
                   activation=self.activation, resample_filter=list(self.resample_filter_taps),
                   conv_clamp=self.conv_clamp, use_fp16=self.use_fp16)
        return cfg


@keras.saving.register_keras_serializable(package="tfstylegan")
class MinibatchStd(keras.layers.Layer):
    """Minibatch standard deviation (Karras et al. 2018), grouped as stylegan2-ada-pytorch.

    The batch N is split into groups of G = min(group_size, N) samples (sample i joins group
    i mod N/G); per group the std over the group, averaged over each of `num_channels` channel
    slices and all pixels, is appended as `num_channels` constant feature maps.
    x: [N, H, W, C] -> [N, H, W, C + num_channels]. N must be divisible by G.
    """

    def __init__(self, group_size: int, num_channels: int = 1, **kwargs):
        kwargs.setdefault("autocast", False)  # inputs are cast explicitly (img and styles stay float32)
        super().__init__(**kwargs)
        self.group_size, self.num_channels = int(group_size), int(num_channels)

    def call(self, x):
        n = tf.shape(x)[0]
        _, h, w, c = x.shape
        g = tf.minimum(self.group_size, n) if self.group_size is not None else n
        f = self.num_channels
        cf = c // f
        y = tf.reshape(x, [g, -1, h, w, f, cf])               # [G, n, H, W, F, c]
        y = tf.cast(y, tf.float32)
        y = y - tf.reduce_mean(y, axis=0)                      # [G, n, H, W, F, c]
        y = tf.reduce_mean(tf.square(y), axis=0)               # [n, H, W, F, c]
        y = tf.sqrt(y + 1e-8)
        y = tf.reduce_mean(y, axis=[1, 2, 4])                  # [n, F]
        y = tf.tile(y[:, None, None, :], [g, h, w, 1])         # [N, H, W, F]
        return tf.concat([x, tf.cast(y, x.dtype)], axis=-1)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(group_size=self.group_size, num_channels=self.num_channels)
        return cfg


@keras.saving.register_keras_serializable(package="tfstylegan")
class DiscriminatorEpilogue(keras.layers.Layer):
    """4x4 head: MinibatchStd -> conv 3x3 -> fc -> out (1 logit, or a cmap_dim projection).

    With classes, logits = sum(out(x) * cmap) / sqrt(cmap_dim) (projection discriminator).
    Note the flatten before `fc` is in NHWC order (H, W, C); importers of NCHW weights permute.
    """

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 mbstd_group_size: int = 4, mbstd_num_channels: int = 1, activation: str = "lrelu",
                 conv_clamp: float | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # as ADA: the 4x4 epilogue always runs in float32
        kwargs.setdefault("autocast", False)  # inputs are cast explicitly (img and styles stay float32)
        super().__init__(**kwargs)
        self.in_channels, self.cmap_dim, self.resolution = int(in_channels), int(cmap_dim), int(resolution)
        self.img_channels = int(img_channels)
        self.mbstd_group_size, self.mbstd_num_channels = int(mbstd_group_size), int(mbstd_num_channels)
        self.activation, self.conv_clamp = activation, conv_clamp
        policy = self.dtype_policy
        self.mbstd = MinibatchStd(self.mbstd_group_size, self.mbstd_num_channels, name="mbstd", dtype=policy) \
            if self.mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(self.in_channels + self.mbstd_num_channels, self.in_channels, kernel_size=3,
                                activation=activation, conv_clamp=conv_clamp, name="conv", dtype=policy)
        self.fc = FullyConnectedLayer(self.in_channels * self.resolution ** 2, self.in_channels,
                                      activation=activation, name="fc", dtype=policy)
        self.out = FullyConnectedLayer(self.in_channels, 1 if self.cmap_dim == 0 else self.cmap_dim, name="out",
                                       dtype=policy)
        self.built = True

    def call(self, x, cmap=None):
        assert_shape(x, [None, self.resolution, self.resolution, self.in_channels], "x")
        x = tf.cast(x, tf.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(tf.reshape(x, [tf.shape(x)[0], -1]))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = tf.reduce_sum(x * cmap, axis=1, keepdims=True) * (1 / np.sqrt(self.cmap_dim))
        return x

    def get_config(self):
        cfg = super().get_config()
        cfg.update(in_channels=self.in_channels, cmap_dim=self.cmap_dim, resolution=self.resolution,
                   img_channels=self.img_channels, mbstd_group_size=self.mbstd_group_size,
                   mbstd_num_channels=self.mbstd_num_channels, activation=self.activation,
                   conv_clamp=self.conv_clamp)
        return cfg


@keras.saving.register_keras_serializable(package="tfstylegan")
class Discriminator(keras.Model):
    """StyleGAN2 discriminator. `D(img, c=None)`: img [N, R, R, C] in [-1, 1], c [N, c_dim] -> logits [N, 1].

    `blocks[i]` is the block at resolution R / 2**i (highest first); Freeze-D freezes the
    first `k` of them (`freeze_blocks(k)`).
    """

    def __init__(self, config: DiscriminatorConfig, **kwargs):
        if isinstance(config, dict):
            config = DiscriminatorConfig.from_dict(config)
        kwargs.setdefault("autocast", False)  # inputs are cast explicitly (img and styles stay float32)
        super().__init__(**kwargs)
        self.config = config
        self.c_dim, self.img_resolution, self.img_channels = config.c_dim, config.img_resolution, config.img_channels
        self.blocks = []
        for res in config.block_resolutions:
            in_channels = config.channels_at(res) if res < config.img_resolution else 0
            self.blocks.append(DiscriminatorBlock(
                in_channels, config.channels_at(res), config.channels_at(res // 2), resolution=res,
                img_channels=config.img_channels, architecture=config.architecture,
                resample_filter=config.resample_filter, conv_clamp=config.conv_clamp,
                use_fp16=(res >= config.fp16_resolution), name=f"b{res}"))
        cmap_dim = config.channels_at(4) if config.c_dim > 0 else 0
        self.cmap_dim = cmap_dim
        self.mapping = None
        if config.c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=config.c_dim, w_dim=cmap_dim, num_ws=None,
                                          num_layers=config.mapping_layers, w_avg_beta=None, name="mapping",
                                          dtype="float32")
        self.b4 = DiscriminatorEpilogue(config.channels_at(4), cmap_dim=cmap_dim, resolution=4,
                                        img_channels=config.img_channels, mbstd_group_size=config.mbstd_group_size,
                                        mbstd_num_channels=config.mbstd_num_channels,
                                        conv_clamp=config.conv_clamp, name="b4", dtype="float32")
        self.built = True

    def call(self, img, c=None, training=False):
        assert_shape(img, [None, self.img_resolution, self.img_resolution, self.img_channels], "img")
        x = None
        for block in self.blocks:
            x, img = block(x, img)
        cmap = None
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"This discriminator is conditional (c_dim={self.c_dim}); pass c [N, "
                                 f"{self.c_dim}]. Received: c=None")
            cmap = self.mapping(None, c)
        return tf.cast(self.b4(x, cmap), tf.float32)

    def freeze_blocks(self, k: int) -> None:
        """Freeze-D (Mo et al. 2020): the first (highest-resolution) k blocks stop training."""
        for i, block in enumerate(self.blocks):
            block.trainable = i >= k

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name}

    @classmethod
    def from_config(cls, cfg):
        return cls(DiscriminatorConfig.from_dict(cfg["config"]), name=cfg.get("name"))
