"""One harness for every StyleGAN2 layer and model (keras-hub `run_layer_test` / `run_backbone_test` style).

For each: the output shapes and dtypes; `get_config` -> `from_config` rebuilds an equal layer that, given the
same weights, computes the same outputs; a `.keras` save -> load round trip computes the same outputs; built
under the `mixed_float16` policy with fp16 requested it computes in float16 and stays finite.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.config import get_preset
from tfstylegan.networks import (Conv2dLayer, Discriminator, DiscriminatorBlock, DiscriminatorEpilogue,
                                 FullyConnectedLayer, Generator, MappingNetwork, MinibatchStd, SynthesisBlock,
                                 SynthesisLayer, SynthesisNetwork, ToRGB)

TINY = get_preset("tiny").with_data(c_dim=3)


def _rand(*shape, seed=0):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# name -> (layer class, constructor kwargs, positional inputs, call kwargs, expected output shapes)
CASES = {
    "FullyConnectedLayer": (FullyConnectedLayer, dict(in_features=8, out_features=5, activation="lrelu"),
                            (_rand(2, 8),), {}, [(2, 5)]),
    "Conv2dLayer_down": (Conv2dLayer, dict(in_channels=3, out_channels=4, kernel_size=3, activation="lrelu", down=2),
                         (_rand(2, 8, 8, 3),), {}, [(2, 4, 4, 4)]),
    "Conv2dLayer_up": (Conv2dLayer, dict(in_channels=3, out_channels=4, kernel_size=1, bias=False, up=2),
                       (_rand(2, 4, 4, 3),), {}, [(2, 8, 8, 4)]),
    "MappingNetwork": (MappingNetwork, dict(z_dim=8, c_dim=3, w_dim=8, num_ws=4, num_layers=2),
                       (_rand(2, 8), tf.one_hot([0, 2], 3)), {}, [(2, 4, 8)]),
    "SynthesisLayer": (SynthesisLayer, dict(in_channels=4, out_channels=6, w_dim=8, resolution=8, up=2),
                       (_rand(2, 4, 4, 4), _rand(2, 8, seed=1)), dict(noise_mode="const"), [(2, 8, 8, 6)]),
    "ToRGB": (ToRGB, dict(in_channels=6, out_channels=1, w_dim=8), (_rand(2, 8, 8, 6), _rand(2, 8, seed=1)), {},
              [(2, 8, 8, 1)]),
    "SynthesisBlock": (SynthesisBlock, dict(in_channels=4, out_channels=6, w_dim=8, resolution=8, img_channels=1,
                                            is_last=True, use_fp16=True, conv_clamp=256),
                       (_rand(2, 4, 4, 4), _rand(2, 4, 4, 1, seed=1), _rand(2, 3, 8, seed=2)),
                       dict(noise_mode="const"), [(2, 8, 8, 6), (2, 8, 8, 1)]),
    "SynthesisNetwork": (SynthesisNetwork, dict(config=TINY.generator.replace(num_fp16_res=2, conv_clamp=256)),
                         (_rand(2, TINY.generator.num_ws, TINY.generator.w_dim),), dict(noise_mode="const"),
                         [(2, 16, 16, 1)]),
    "DiscriminatorBlock": (DiscriminatorBlock, dict(in_channels=4, tmp_channels=4, out_channels=6, resolution=8,
                                                    img_channels=1, use_fp16=True, conv_clamp=256),
                           (_rand(2, 8, 8, 4), None), {}, [(2, 4, 4, 6)]),
    "MinibatchStd": (MinibatchStd, dict(group_size=2), (_rand(4, 4, 4, 3),), {}, [(4, 4, 4, 4)]),
    "DiscriminatorEpilogue": (DiscriminatorEpilogue, dict(in_channels=6, cmap_dim=0, resolution=4, img_channels=1,
                                                          mbstd_group_size=2),
                              (_rand(2, 4, 4, 6),), {}, [(2, 1)]),
    "Generator": (Generator, dict(config=TINY.generator.replace(num_fp16_res=2, conv_clamp=256)),
                  (_rand(2, TINY.generator.z_dim), tf.one_hot([0, 1], 3)), dict(noise_mode="const"),
                  [(2, 16, 16, 1)]),
    "Discriminator": (Discriminator, dict(config=TINY.discriminator.replace(num_fp16_res=2, conv_clamp=256,
                                                                          mbstd_group_size=2)),
                      (_rand(2, 16, 16, 1), tf.one_hot([0, 1], 3)), {}, [(2, 1)]),
}
FP16_CASES = {"SynthesisBlock", "SynthesisNetwork", "DiscriminatorBlock", "Generator", "Discriminator"}


def _outputs(layer, inputs, kwargs):
    out = layer(*inputs, **kwargs)
    if isinstance(out, (tuple, list)):
        out = [o for o in out if o is not None]
    else:
        out = [out]
    return [np.asarray(tf.cast(o, tf.float32)) for o in out]


@keras.saving.register_keras_serializable(package="tfstylegan_tests")
class _Holder(keras.Model):
    """A model that only holds one layer, so that `.keras` saving covers the layer's config and weights."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, *args, **kwargs):
        return self.layer(*args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}

    def get_build_config(self):
        return None  # the layers create their weights at construction: nothing to rebuild from shapes

    @classmethod
    def from_config(cls, config):
        layer = keras.saving.deserialize_keras_object(config.pop("layer"))
        return cls(layer, **config)


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_shapes_config_round_trip_and_save_load(name, tmp_path):
    cls, init, inputs, call_kwargs, shapes = CASES[name]
    keras.utils.set_random_seed(0)
    layer = cls(**init)
    outs = _outputs(layer, inputs, call_kwargs)
    assert [o.shape for o in outs] == shapes
    assert all(np.isfinite(o).all() for o in outs)
    assert layer.weights or name == "MinibatchStd", f"{name} holds no weights"

    # config round trip: an equal layer; with the same weights, the same outputs
    config = layer.get_config()
    clone = cls.from_config(config)
    _outputs(clone, inputs, call_kwargs)  # build
    assert clone.get_config() == config
    clone.set_weights(layer.get_weights())
    for a, b in zip(outs, _outputs(clone, inputs, call_kwargs)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

    # .keras save -> load
    holder = _Holder(layer)
    _outputs(holder, inputs, call_kwargs)
    path = tmp_path / f"{name}.keras"
    holder.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(outs, _outputs(loaded, inputs, call_kwargs)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(FP16_CASES))
def test_layer_under_mixed_precision_computes_in_float16_and_stays_finite(name):
    cls, init, inputs, call_kwargs, shapes = CASES[name]
    keras.mixed_precision.set_dtype_policy("mixed_float16")  # the autouse fixture restores float32
    keras.utils.set_random_seed(0)
    layer = cls(**init)
    outs = _outputs(layer, inputs, call_kwargs)
    assert [o.shape for o in outs] == shapes
    assert all(np.isfinite(o).all() for o in outs)
    fp16 = [v for v in layer.weights if v.dtype == "float32"] and [
        sub for sub in layer._flatten_layers() if sub.compute_dtype == "float16"]
    assert fp16, f"{name}: no sub-layer computes in float16 under mixed_float16 with fp16 requested"
