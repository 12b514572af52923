"""The StyleGAN2 generator G(z, c) = g(f(z, c)) as a Keras 3 subclass model."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfstylegan.config import GeneratorConfig
from tfstylegan.networks.mapping import MappingNetwork
from tfstylegan.networks.synthesis import SynthesisNetwork


@keras.saving.register_keras_serializable(package="tfstylegan")
class Generator(keras.Model):
    """StyleGAN2 generator: `mapping` (z, c -> ws) followed by `synthesis` (ws -> img).

    Call: `G(z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode='random')`
    with z [N, z_dim] float, c [N, c_dim] one-hot (conditional models only) -> img
    [N, R, R, img_channels] float32 in about [-1, 1].
    """

    def __init__(self, config: GeneratorConfig, **kwargs):
        if isinstance(config, dict):
            config = GeneratorConfig.from_dict(config)
        super().__init__(**kwargs)
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        self.synthesis = SynthesisNetwork(config, name="synthesis")
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=config.z_dim, c_dim=config.c_dim, w_dim=config.w_dim,
                                      num_ws=self.num_ws, num_layers=config.mapping_layers,
                                      lr_multiplier=config.mapping_lr_multiplier,
                                      w_avg_beta=config.w_avg_beta, name="mapping", dtype="float32")
        self.built = True

    def call(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="random",
             noise_seed=None, update_emas=False, fused_modconv=None, training=False):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, noise_seed=noise_seed, fused_modconv=fused_modconv)

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name}

    @classmethod
    def from_config(cls, cfg):
        return cls(GeneratorConfig.from_dict(cfg["config"]), name=cfg.get("name"))

    def one_hot(self, class_ids) -> tf.Tensor | None:
        """Class indices [N] -> one-hot c [N, c_dim] (None for unconditional models)."""
        if self.c_dim == 0:
            return None
        return tf.one_hot(tf.cast(class_ids, tf.int32), self.c_dim, dtype=tf.float32)


def seed_to_z(seeds, z_dim: int) -> np.ndarray:
    """The official tools' seed convention: z = RandomState(seed).randn(1, z_dim) per seed.

    seeds: iterable of ints -> z float32 [len(seeds), z_dim].
    """
    return np.concatenate([np.random.RandomState(int(s)).randn(1, z_dim) for s in seeds]).astype(np.float32)
