"""The mapping network f: z (and class c) -> w, with the tracked average w for truncation."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfstylegan.networks.layers import FullyConnectedLayer, assert_shape, normalize_2nd_moment


@keras.saving.register_keras_serializable(package="tfstylegan")
class MappingNetwork(keras.layers.Layer):
    """StyleGAN2 mapping network (stylegan2-ada-pytorch `MappingNetwork`).

    z [N, z_dim] and one-hot c [N, c_dim] are each normalised to unit second moment (c after
    an embedding `embed`), concatenated and passed through `num_layers` lrelu FC layers with
    lr multiplier 0.01. With `num_ws` set the output is broadcast to ws [N, num_ws, w_dim],
    else w [N, w_dim] (the discriminator's class-embedding use).

    `w_avg` [w_dim] is the moving average of w (decay `w_avg_beta`), updated when
    `update_emas=True`; truncation lerps towards it:
    w' = w_avg + psi * (w - w_avg) for the first `truncation_cutoff` ws (all if None).
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None,
                 activation: str = "lrelu", lr_multiplier: float = 0.01,
                 w_avg_beta: float | None = 0.995, **kwargs):
        kwargs.setdefault("dtype", "float32")  # as ADA: the mapping network always runs in float32
        super().__init__(**kwargs)
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.num_ws = None if num_ws is None else int(num_ws)
        self.num_layers = int(num_layers)
        self.activation = activation
        self.lr_multiplier = float(lr_multiplier)
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = self.w_dim
        if self.c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = self.w_dim
        self.embed_features, self.layer_features = int(embed_features), int(layer_features)
        features = [self.z_dim + self.embed_features] + [self.layer_features] * (self.num_layers - 1) + [self.w_dim]
        self.embed = (FullyConnectedLayer(self.c_dim, self.embed_features, name="embed", dtype=self.dtype_policy)
                      if self.c_dim > 0 else None)
        self.fcs = [FullyConnectedLayer(features[i], features[i + 1], activation=activation,
                                        lr_multiplier=self.lr_multiplier, name=f"fc{i}", dtype=self.dtype_policy)
                    for i in range(self.num_layers)]
        self.w_avg = None
        if self.num_ws is not None and w_avg_beta is not None:
            self.w_avg = self.add_weight(name="w_avg", shape=(self.w_dim,), initializer="zeros",
                                         trainable=False, aggregation="mean")
        self.built = True

    def call(self, z=None, c=None, truncation_psi=1.0, truncation_cutoff: int | None = None,
             update_emas: bool = False):
        """z: [N, z_dim] or None, c: [N, c_dim] or None -> ws [N, num_ws, w_dim] (or w [N, w_dim])."""
        x = None
        if self.z_dim > 0:
            assert_shape(z, [None, self.z_dim], "z")
            x = normalize_2nd_moment(tf.cast(z, tf.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"This mapping network is conditional (c_dim={self.c_dim}); pass c [N, "
                                 f"{self.c_dim}] one-hot class labels. Received: c=None")
            assert_shape(c, [None, self.c_dim], "c")
            y = normalize_2nd_moment(self.embed(tf.cast(c, tf.float32)))
            x = tf.concat([x, y], axis=1) if x is not None else y
        for fc in self.fcs:
            x = fc(x)
        x = tf.cast(x, tf.float32)
        if update_emas and self.w_avg is not None:
            batch_mean = tf.reduce_mean(x, axis=0)
            self.w_avg.assign(batch_mean + (self.w_avg - batch_mean) * self.w_avg_beta)
        if self.num_ws is not None:
            x = tf.tile(x[:, None, :], [1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if self.w_avg is not None and not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1):
            psi = tf.cast(truncation_psi, tf.float32)
            truncated = self.w_avg + psi * (x - self.w_avg)
            if self.num_ws is None or truncation_cutoff is None:
                x = truncated
            else:
                cut = tf.cast(tf.range(self.num_ws) < truncation_cutoff, tf.float32)[None, :, None]
                x = cut * truncated + (1 - cut) * x
        return x

    def get_config(self):
        cfg = super().get_config()
        cfg.update(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                   num_layers=self.num_layers, embed_features=self.embed_features or None,
                   layer_features=self.layer_features, activation=self.activation,
                   lr_multiplier=self.lr_multiplier, w_avg_beta=self.w_avg_beta)
        return cfg
