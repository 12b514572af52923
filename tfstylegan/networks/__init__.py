"""StyleGAN2 networks as Keras 3 subclass models (NHWC, equalized lr, mixed-precision aware)."""

from tfstylegan.networks.discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue, MinibatchStd
from tfstylegan.networks.generator import Generator, seed_to_z
from tfstylegan.networks.layers import Conv2dLayer, FullyConnectedLayer, count_params
from tfstylegan.networks.mapping import MappingNetwork
from tfstylegan.networks.synthesis import SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGB


def build_networks(preset):
    """(G, D, G_ema) of a `tfstylegan.config.Preset`, under the current Keras dtype policy.

    Weights are created at construction (random, from Keras' global seed); G_ema has G's architecture.
    """
    return (Generator(preset.generator, name="G"), Discriminator(preset.discriminator, name="D"),
            Generator(preset.generator, name="G_ema"))


__all__ = [
    "Generator", "Discriminator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer",
    "ToRGB", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStd", "FullyConnectedLayer",
    "Conv2dLayer", "build_networks", "count_params", "seed_to_z",
]
