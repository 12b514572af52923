"""Writes a synthetic dataset: generated slices filtered for privacy and quality, in the prepared layout.

  # 1000 slices per class from a conditional model, privacy-filtered against the real training slices
  python -m launchers.synthesize --checkpoint runs/00003-cond --data data/figshare256 \
      --classifier judge/classifier.keras --num_per_class 1000 --out synth/figshare256
  # per-class models, 5000 slices in the real class ratios, truncation 0.7, the judge's quality filter, PNGs too
  python -m launchers.synthesize --checkpoint meningioma=runs/00000-men,glioma=runs/00001-gli,\
pituitary=runs/00002-pit --data data/figshare256 --classifier judge/classifier.keras \
      --match_ratios --num 5000 --truncation_psi 0.7 --min_class_prob 0.8 --png --out synth/ratios

Then train on it: `python -m launchers.train_classifier --data data/figshare256 --extra_data synth/figshare256
--extra_ratio 1.0 --out runs/clf_mix` (validation and test stay on the real patient-wise splits).

Writes <out>/train/*.tfrecord and manifest.json (read by load_dataset, train_classifier, evaluate),
<out>/privacy/report.json with the closest kept pairs as pictures, slices.csv, and with --png a PNG per
slice. An interrupted run keeps its finished shards in .<out>.partial/: rerun with --resume.
See tfstylegan.apps.synthetic_dataset.
"""

from absl import flags

from tfstylegan.utils.cli import run

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A run/checkpoint folder (conditional or per-class), or "
                                  "per-class folders as class=PATH,class=PATH,...", required=True)
_DATA = flags.DEFINE_string("data", None, "The real prepared dataset the models were trained on: its train split "
                            "is the privacy reference, its val/test splits the baseline.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output folder (appears when complete).", required=True)
_CLASSIFIER = flags.DEFINE_string("classifier", None, "The judge (classifier.keras): adds the feature-space "
                                  "privacy check and the quality filter. Without it privacy is checked in pixels.")
_NUM_PER_CLASS = flags.DEFINE_integer("num_per_class", 0, "Slices per class.")
_MATCH_RATIOS = flags.DEFINE_bool("match_ratios", False, "Share --num slices among the classes in the real "
                                  "training split's ratios instead of --num_per_class each.")
_NUM = flags.DEFINE_integer("num", 0, "Total slices with --match_ratios.")
_PSI = flags.DEFINE_float("truncation_psi", 1.0, "Truncation psi (1 = none).")
_NOISE = flags.DEFINE_enum("noise_mode", "const", ["const", "random", "none"], "Generator noise ('random' is "
                           "seeded by each slice's seed, so it is reproducible too).")
_WITH_MASK = flags.DEFINE_bool("with_mask", None, "Store the tumor masks of models trained --with_mask (default: "
                               "whenever the model makes them); --nowith_mask drops them.")
_PRIVACY_PCT = flags.DEFINE_float("privacy_percentile", 1.0, "Drop candidates closer to a real training slice "
                                  "than this percentile of the held-out real slices are (0 = keep all; the "
                                  "distances are still reported).")
_MIN_CLASS_PROB = flags.DEFINE_float("min_class_prob", 0.0, "Quality filter: keep candidates the judge gives "
                                     "at least this probability of their class (0 = off; needs --classifier).")
_SEED = flags.DEFINE_integer("seed", 0, "First seed of every class; candidates use seed, seed+1, ...")
_PNG = flags.DEFINE_bool("png", False, "Also write PNGs (png/<class>/, masks beside) listed in slices.csv.")
_BATCH = flags.DEFINE_integer("batch", 64, "Candidates per generator / judge call.")
_SHARD_SIZE = flags.DEFINE_integer("shard_size", 1024, "Slices per TFRecord shard (the unit --resume keeps).")
_MAX_DRAWS = flags.DEFINE_float("max_draws_per_slice", 10.0, "Give up when a class needs more candidates than "
                                "this many per kept slice.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out (when the new one is complete) or "
                               "an unfinished one.")
_RESUME = flags.DEFINE_bool("resume", False, "Continue the interrupted run of the same flags.")
_QUIET = flags.DEFINE_bool("quiet", False, "No progress lines.")
# the official StyleGAN2 tools' names, as on generate and evaluate
flags.DEFINE_alias("network", "checkpoint")
flags.DEFINE_alias("trunc", "truncation_psi")
flags.DEFINE_alias("outdir", "out")
flags.DEFINE_alias("batch_size", "batch")


def main(argv):
    del argv
    # here: the flags are checked before TensorFlow starts (the settings module imports none)
    from tfstylegan.apps.synthetic_dataset.settings import SyntheticDatasetConfig

    config = SyntheticDatasetConfig(
        num_per_class=_NUM_PER_CLASS.value, num=_NUM.value, match_ratios=_MATCH_RATIOS.value,
        truncation_psi=_PSI.value, noise_mode=_NOISE.value, with_mask=_WITH_MASK.value,
        privacy_percentile=_PRIVACY_PCT.value, min_class_prob=_MIN_CLASS_PROB.value, seed=_SEED.value,
        batch_size=_BATCH.value, shard_size=_SHARD_SIZE.value, max_draws_per_slice=_MAX_DRAWS.value, png=_PNG.value)
    from tfstylegan.apps.synthetic_dataset.run import write_synthetic_dataset  # here: TensorFlow, once the flags pass

    write_synthetic_dataset(_CHECKPOINT.value, _DATA.value, _OUT.value, config, classifier=_CLASSIFIER.value,
                            overwrite=_OVERWRITE.value, resume=_RESUME.value, show_progress=not _QUIET.value)


if __name__ == "__main__":
    run(main)
