"""Projects a real slice into the generator's latent space W (or W+): the latent that reproduces it.

The official StyleGAN2 projector (w_avg start, lr ramp, noise regularisation), with pixel MSE
plus, with --classifier, the judge's feature distance (LPIPS weights cannot be downloaded).
Examples:

  python -m launchers.project --checkpoint runs/00001-glioma --target slice.png --out proj/slice
  python -m launchers.project --checkpoint runs/00003-cond --data data/figshare256 --split test \
      --index 12 --w_plus --classifier judge/classifier.keras --steps 1000 --out proj/test12

Writes proj.png, target.png, projected_w.npz (key `w`, [1, num_ws, w_dim], and the optimised noise),
progress.png (snapshots, then the target) and projection.json (losses). Render the projection again
with `launchers/generate.py --projected_w <out>/projected_w.npz` (the same image as proj.png).
The official tools' names work too: --network, --outdir, --class, --num_steps.
See `tfstylegan.apps.projection`.
"""

from absl import flags

from tfstylegan.utils.cli import run

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run or checkpoint folder, or an official StyleGAN2 TF1 .pkl "
                                  "(converted on the fly).", required=True)
_TARGET = flags.DEFINE_string("target", None, "Target PNG (8/16-bit, resized to the model's resolution).")
_DATA = flags.DEFINE_string("data", None, "Prepared dataset to take the target from (with --index).")
_INDEX = flags.DEFINE_integer("index", 0, "Index of the target image in --split of --data.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split of --data.")
_CLASS = flags.DEFINE_string("class_name", None, "Class of the target, by name or index (conditional models; "
                             "with --data it also restricts --index to that class).")
_CLASSIFIER = flags.DEFINE_string("classifier", None, "Optional judge (classifier.keras): adds its feature "
                                  "distance to the pixel MSE.")
_STEPS = flags.DEFINE_integer("steps", 300, "Optimisation steps (1000 in the official projector).")
_W_PLUS = flags.DEFINE_bool("w_plus", False, "Optimise one w per layer (W+) instead of one w.")
_FEATURE_WEIGHT = flags.DEFINE_float("feature_weight", 1.0, "Weight of the judge's feature distance.")
_LR = flags.DEFINE_float("lr", 0.1, "Initial (peak) learning rate.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the w statistics and the initial noise.")
_OUT = flags.DEFINE_string("out", None, "Output folder (written atomically).", required=True)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")

# The official StyleGAN2 tools' names.
flags.DEFINE_alias("network", "checkpoint")
flags.DEFINE_alias("outdir", "out")
flags.DEFINE_alias("class", "class_name")
flags.DEFINE_alias("num_steps", "steps")


def main(argv):
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from tfstylegan.apps.projection import ProjectionConfig, run_projection

    config = ProjectionConfig(num_steps=_STEPS.value, w_plus=_W_PLUS.value, feature_weight=_FEATURE_WEIGHT.value,
                              initial_learning_rate=_LR.value, seed=_SEED.value)
    run_projection(_CHECKPOINT.value, _OUT.value, target_path=_TARGET.value, data_dir=_DATA.value,
                   index=_INDEX.value, split=_SPLIT.value, class_name=_CLASS.value,
                   classifier_path=_CLASSIFIER.value, config=config, overwrite=_OVERWRITE.value)


if __name__ == "__main__":
    run(main)
