"""StyleGAN2 networks as Keras 3 subclass models (NHWC, equalized lr, mixed-precision aware)."""

from tfstylegan.networks.discriminator import (Discriminator, DiscriminatorBlock, DiscriminatorEpilogue,
                                               MinibatchStd)
from tfstylegan.networks.generator import Generator, seed_to_z
from tfstylegan.networks.layers import Conv2dLayer, FullyConnectedLayer, count_params
from tfstylegan.networks.mapping import MappingNetwork
from tfstylegan.networks.synthesis import SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGB


def build_networks(generator_config, discriminator_config):
    """Returns (G, D) built from their configs (weights are created at construction)."""
    return Generator(generator_config, name="G"), Discriminator(discriminator_config, name="D")


__all__ = [
    "Generator", "Discriminator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer",
    "ToRGB", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStd", "FullyConnectedLayer",
    "Conv2dLayer", "build_networks", "count_params", "seed_to_z",
]
