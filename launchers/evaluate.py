"""Evaluates trained generators with the tumor-class judge: IS, FID/KID, precision/recall, memorization, PPL.

Reproduces the study's table (Inception Score of 300 real vs 300 generated images per class)
and adds the metrics the study lacked. Examples:

  # per-class generators (the study's setup)
  python -m launchers.evaluate --checkpoint meningioma=runs/00000-meningioma,glioma=runs/00001-glioma,\
pituitary=runs/00002-pituitary --classifier judge/classifier.keras --data data/figshare256 --out eval
  # one conditional generator, 1000 images per class, with the train-on-synthetic experiment
  python -m launchers.evaluate --checkpoint runs/00003-cond --classifier judge/classifier.keras \
      --data data/figshare256 --num_images 1000 --utility --out eval_cond

Writes <out>/results.json, <out>/figures/*.png and TensorBoard logs in <out>/tensorboard.
See tfstylegan.apps.evaluation`.
"""

from absl import flags

from tfstylegan.apps.generation.seeds import check_truncation_psi
from tfstylegan.utils.cli import run

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A run/checkpoint folder (conditional or per-class), or "
                                  "per-class folders (or official .pkl files) as class=PATH,class=PATH,...",
                                  required=True)
_CLASSIFIER = flags.DEFINE_string("classifier", None, "The judge: classifier.keras from launchers/train_classifier.",
                                  required=True)
_DATA = flags.DEFINE_string("data", None, "The prepared dataset (launchers/prepare_data.py).", required=True)
_OUT = flags.DEFINE_string("out", None, "Output folder (written atomically).", required=True)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 300, "Real and generated images per class (300 in the study; "
                                   "more is more reliable).")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Real split compared with (all splits are "
                           "used, and the results say so, when it has fewer than --num_images).")
_PSI = flags.DEFINE_float("truncation_psi", 1.0, "Truncation psi of the generated images (1 = none; finite).")
_NOISE = flags.DEFINE_enum("noise_mode", "random", ["random", "const", "none"], "Synthesis noise: 'random' (what "
                           "the model samples, the reference's metrics), 'const' (stored buffers) or 'none'.")
_BATCH = flags.DEFINE_integer("batch", 32, "Images per generator / judge call.")
_IS_SPLITS = flags.DEFINE_integer("is_splits", 10, "Inception Score splits.")
_KID_SUBSETS = flags.DEFINE_integer("kid_subsets", 100, "KID subsets.")
_PR_K = flags.DEFINE_integer("pr_k", 3, "k of the precision/recall manifolds.")
_MEMO_PCT = flags.DEFINE_float("memorization_percentile", 1.0, "Held-out distance percentile below which a "
                               "generated image counts as a possible copy.")
_PPL = flags.DEFINE_integer("ppl_samples", 300, "Perceptual path length samples per class (0 = skip).")
_INCEPTION = flags.DEFINE_string("inception_weights", None, "Optional local notop ImageNet InceptionV3 weights "
                                 "(.h5) for standard-ish FID features in addition to the judge's. Never downloaded.")
_INCEPTION_SIZE = flags.DEFINE_integer("inception_size", 299, "Input size of the ImageNet InceptionV3 (299).")
_UTILITY = flags.DEFINE_bool("utility", False, "Also train classifiers on real / real+synthetic / synthetic "
                             "images and test them on the real test split (slow).")
_UTILITY_EPOCHS = flags.DEFINE_integer("utility_epochs", 5, "Epochs of each utility classifier.")
_UTILITY_WEIGHTS = flags.DEFINE_string("utility_weights", "imagenet", "Initial weights of the utility classifiers: "
                                       "imagenet (Keras' cache), none, or a local file.")
_UTILITY_BATCH = flags.DEFINE_integer("utility_batch_size", 32, "Batch size of the utility classifiers.")
_UTILITY_SETTINGS = flags.DEFINE_list("utility_settings", ["real", "real+synthetic", "synthetic"],
                                      "Utility training sets to compare, tested on the real test split.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of KID subsets, PPL sampling and the pooled IS shuffle.")
_QUIET = flags.DEFINE_bool("quiet", False, "No progress lines.")

# The official StyleGAN2 tools' names (and this launcher's earlier --batch_size).
flags.DEFINE_alias("network", "checkpoint")
flags.DEFINE_alias("trunc", "truncation_psi")
flags.DEFINE_alias("outdir", "out")
flags.DEFINE_alias("batch_size", "batch")


def main(argv):
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from tfstylegan.apps.evaluation.run import EvaluationConfig, evaluate

    check_truncation_psi(_PSI.value)
    config = EvaluationConfig(
        num_images=_NUM_IMAGES.value, split=_SPLIT.value, truncation_psi=_PSI.value, noise_mode=_NOISE.value,
        batch_size=_BATCH.value, is_splits=_IS_SPLITS.value, kid_subsets=_KID_SUBSETS.value, pr_k=_PR_K.value,
        memorization_percentile=_MEMO_PCT.value, ppl_samples=_PPL.value, inception_size=_INCEPTION_SIZE.value,
        utility=_UTILITY.value, utility_epochs=_UTILITY_EPOCHS.value, utility_weights=_UTILITY_WEIGHTS.value,
        utility_batch_size=_UTILITY_BATCH.value, utility_settings=tuple(_UTILITY_SETTINGS.value), seed=_SEED.value)
    evaluate(_CHECKPOINT.value, _CLASSIFIER.value, _DATA.value, _OUT.value, config,
             inception_weights=_INCEPTION.value, overwrite=_OVERWRITE.value, show_progress=not _QUIET.value)


if __name__ == "__main__":
    run(main)
