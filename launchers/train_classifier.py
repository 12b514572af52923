"""Fine-tunes the InceptionV3 tumor-class judge on a prepared dataset and evaluates it on the test split.

  python -m launchers.train_classifier --data=data/figshare256 --out=runs/classifier \
      --epochs=30 --batch=64 --weights=imagenet
  # real + synthetic (launchers/synthesize.py): as many synthetic slices per class as real ones
  python -m launchers.train_classifier --data=data/figshare256 --extra_data=synth/figshare256 --extra_ratio=1.0 \
      --out=runs/classifier_mix
  # train on synthetic only, validate and test on the real patient-wise splits
  python -m launchers.train_classifier --data=data/figshare256 --extra_data=synth/figshare256 --noreal_train \
      --out=runs/classifier_tstr

Validation and test always use --data's val/test splits; --extra_data only adds training slices.

Writes <out>/classifier.keras (best by validation loss), metrics.json, confusion_matrix.png,
config.json and TensorBoard logs under <out>/tensorboard. `--weights=imagenet` reads Keras'
cache ($KERAS_HOME/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5) and
never downloads; `--weights=none` trains from scratch (lower accuracy); or pass a file.
"""

from absl import flags

from tfstylegan.utils import cli

_DATA = flags.DEFINE_string("data", None, "Prepared dataset folder (launchers/prepare_data.py).", required=True)
_OUT = flags.DEFINE_string("out", None, "Output folder (must not exist or be empty).", required=True)
_EPOCHS = flags.DEFINE_integer("epochs", 30, "Total epochs, head phase included.")
_HEAD_EPOCHS = flags.DEFINE_integer("head_epochs", 5, "Epochs with the backbone frozen (pretrained weights only).")
_BATCH = flags.DEFINE_integer("batch", 64, "Global batch size.")
_WEIGHTS = flags.DEFINE_string("weights", "imagenet", "'imagenet' (Keras cache, no download), 'none', or a "
                               "local .h5/.weights.h5/.keras file.")
_INPUT_SIZE = flags.DEFINE_integer("input_size", 299, "Side the images are resized to for InceptionV3 (>= 75).")
_STRATEGY = flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                              "tf.distribute strategy (multi_worker reads TF_CONFIG).")
_MIXED = flags.DEFINE_boolean("mixed_precision", False, "Compute in float16 (mixed_float16 policy).")
_LR = flags.DEFINE_float("lr", 1e-3, "Adam learning rate of the head phase (and of from-scratch training).")
_LR_FINETUNE = flags.DEFINE_float("lr_finetune", 1e-4, "Adam learning rate when fine-tuning the whole network.")
_DROPOUT = flags.DEFINE_float("dropout", 0.2, "Dropout before the classification layer.")
_PATIENCE = flags.DEFINE_integer("patience", 5, "Early-stopping patience in epochs on val loss (0 = off).")
_CLASS_WEIGHTS = flags.DEFINE_boolean("class_weights", True, "Weight the loss by inverse class frequency.")
_AUGMENT = flags.DEFINE_boolean("augment", True, "Random flips/rotations/zooms/shifts/contrast in training.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_MAX_TRAIN = flags.DEFINE_integer("max_train_images", 0, "Use at most this many real training images (0 = all).")
_EXTRA_DATA = flags.DEFINE_list("extra_data", [], "Further prepared datasets (e.g. synthetic ones from "
                                "launchers/synthesize.py) whose train splits are added to the training set.")
_EXTRA_RATIO = flags.DEFINE_float("extra_ratio", 0.0, "From each --extra_data take this many slices per real "
                                  "training slice of each class (1.0 doubles every class; 0 = all of it).")
_EXTRA_PER_CLASS = flags.DEFINE_integer("extra_per_class", 0, "Or this many slices of each class from each "
                                        "--extra_data (0 = all of it).")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace a non-empty --out; the old folder stays until the "
                                  "new run completes.")
_REAL_TRAIN = flags.DEFINE_boolean("real_train", True, "Train on --data's train split too; --noreal_train trains "
                                   "on --extra_data only (train on synthetic, test on real).")


def main(argv):
    del argv
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from classifier.training import ClassifierConfig, TrainingMixture, train_classifier
    from tfstylegan.training.distribute import get_strategy

    config = ClassifierConfig(
        input_size=_INPUT_SIZE.value, dropout=_DROPOUT.value, epochs=_EPOCHS.value,
        head_epochs=min(_HEAD_EPOCHS.value, _EPOCHS.value), batch_size=_BATCH.value, lr_head=_LR.value,
        lr_finetune=_LR_FINETUNE.value, weights=_WEIGHTS.value, patience=_PATIENCE.value,
        class_weighting=_CLASS_WEIGHTS.value, augment=_AUGMENT.value, mixed_precision=_MIXED.value,
        seed=_SEED.value, max_train_images=_MAX_TRAIN.value)
    mixture = TrainingMixture(extra_data=tuple(_EXTRA_DATA.value), extra_ratio=_EXTRA_RATIO.value,
                              extra_per_class=_EXTRA_PER_CLASS.value, real_train=_REAL_TRAIN.value)
    train_classifier(config, _DATA.value, _OUT.value, strategy=get_strategy(_STRATEGY.value), mixture=mixture,
                     overwrite=_OVERWRITE.value)


if __name__ == "__main__":
    cli.run(main)
