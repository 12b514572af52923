"""Test helper: a randomly initialised tiny generator written as a tfstylegan checkpoint folder."""

from tfstylegan.networks import Discriminator, Generator
from tfstylegan.training.checkpoint import save_networks


def save_tiny(out, preset, class_names, class_name, conditional, with_mask=False):
    """Writes G, D and G_ema built from `preset` (random weights) with their run.json; returns the folder."""
    G, D, G_ema = (Generator(preset.generator, name="G"), Discriminator(preset.discriminator, name="D"),
                   Generator(preset.generator, name="G_ema"))
    info = {"preset": preset.to_dict(), "class_names": class_names, "class_name": class_name,
            "conditional": conditional, "with_mask": with_mask, "data": None, "options": {}}
    return save_networks(out, info, G, D, G_ema)
