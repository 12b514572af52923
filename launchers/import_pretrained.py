"""Imports an official NVlabs StyleGAN2 / StyleGAN2-ADA TF1 `.pkl` as a tfstylegan checkpoint folder.

The pickle is read with a restricted unpickler: nothing stored in it is executed, and a file
asking for any other class than the official networks and numpy arrays is refused.

Example:
  python -m launchers.import_pretrained --pkl stylegan2-church-config-f.pkl --out pretrained/church \
      --preset paper256
  python -m launchers.generate --checkpoint pretrained/church --seeds 0-7 --noise_mode const
  python -m launchers.train_stylegan --resume pretrained/church --data data/figshare256 ...

G, D and Gs (-> G_ema) are converted; 3-channel RGB networks become 1-channel MRI networks
(`--rgb_to_gray`: the generator outputs luminance / mean / red of the official RGB image;
the discriminator sees a gray image as the official one sees (g, g, g)).
See `tfstylegan.export.legacy`.
"""

from absl import flags

from tfstylegan.config import PRESET_NAMES
from tfstylegan.utils.cli import run

_PKL = flags.DEFINE_string("pkl", None, "Official TF1 network pickle (G, D, Gs) to import.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output checkpoint folder (written atomically).", required=True)
_PRESET = flags.DEFINE_enum("preset", "paper256", list(PRESET_NAMES),
                            "Training preset stored with the networks; its mapping depth must match the pickle's "
                            "(official pickles: 8 layers -> paper256).")
_RESOLUTION = flags.DEFINE_integer("resolution", 0, "Expected resolution of the pickle (0: the preset's).")
_CHANNELS = flags.DEFINE_integer("img_channels", 1, "Image channels of the imported networks: 1 (MRI) or the "
                                 "pickle's own (3 keeps RGB).")
_RGB_TO_GRAY = flags.DEFINE_enum("rgb_to_gray", "luminance", ["luminance", "mean", "first"],
                                 "How ToRGB's 3 outputs become one: ITU-R 601 luminance, their mean, or red.")
_CLASS = flags.DEFINE_string("class_name", None, "Tumor class this model will be fine-tuned on (recorded in "
                             "run.json; optional).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")


def main(argv):
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from tfstylegan.export.legacy import import_official_pickle

    out = import_official_pickle(_PKL.value, _OUT.value, preset=_PRESET.value, resolution=_RESOLUTION.value or None,
                                 img_channels=_CHANNELS.value, rgb_to_gray=_RGB_TO_GRAY.value,
                                 class_name=_CLASS.value, overwrite=_OVERWRITE.value)
    print(f"wrote {out}: use it as --checkpoint (generate, export) or --resume (train_stylegan)")


if __name__ == "__main__":
    run(main)
