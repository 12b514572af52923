"""Fine-tuning the InceptionV3 judge on a prepared dataset.

(Over 400 lines: one training procedure, from the sources of a mixture to the tested model; the model, its
weights and its metrics are their own modules.)

Two phases with Adam (Keras' transfer-learning guide):
1. `head_epochs` with the backbone frozen: only the new head learns (rate `lr_head`).
2. the remaining `epochs - head_epochs` with the whole network trainable at the low rate
   `lr_finetune`; the backbone's BatchNormalization layers stay in inference mode
   (`training=False`) so their ImageNet statistics are not wrecked by small batches.
From random initialisation (`weights='none'`) there is nothing to transfer: one phase of
`epochs` trains everything at `lr_head` with BatchNormalization in training mode.

Class weights (inverse frequency, from the training counts) balance the loss (Figshare has
1426 glioma vs 708 meningioma slices); light geometric/contrast augmentation runs in the
input pipeline; early stopping watches the validation loss; the best model by validation
loss is kept in `<out>/classifier.keras` (written atomically whenever it improves) and is
the one evaluated on the patient-wise test split.

Training on mixtures (`TrainingMixture`): the real dataset's train split and/or the train splits of
further prepared datasets (synthetic ones from launchers/synthesize.py), a ratio or a count per class;
validation and test always use the real dataset's patient-wise val/test splits. `evaluate --utility`
trains its classifiers through this same function, and `command_line` gives the launcher command that
reruns any such training by hand.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from classifier.metrics import evaluate_classifier, write_metrics
from classifier.model import MIN_INPUT_SIZE, TumorClassifier, load_classifier, save_classifier
from classifier.weights import build_with_weights, resolve_weights
from tfstylegan.data.classes import ALL_CLASS_NAMES
from tfstylegan.data.pipeline import load_dataset, read_manifest
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import atomic_dir, write_json

_log = logging.getLogger("tfstylegan.classifier")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Classifier training settings (the study: 30 epochs, batch 64, Adam).

    Attributes:
      input_size: side the images are resized to for InceptionV3 (299 as published; >= 75).
      dropout: dropout before the classification layer.
      epochs: total epochs, head phase included.
      head_epochs: epochs of phase 1 (frozen backbone); ignored with weights='none'.
      batch_size: global batch size (split over the replicas of the strategy).
      lr_head: Adam learning rate of phase 1 (and of from-scratch training).
      lr_finetune: Adam learning rate of phase 2 (whole network).
      weights: 'imagenet', 'none' or a local weights file (see classifier.weights).
      patience: early-stopping patience in epochs on the validation loss (0 = no early stopping).
      class_weighting: weight the loss by inverse class frequency.
      augment: random flips, rotations, zooms, translations and contrast on training images.
      mixed_precision: compute in float16 (mixed_float16 policy with loss scaling).
      seed: random seed for initialisation, shuffling and augmentation.
      max_train_images: use at most this many training images (0 = all), for tests and demos.
    """

    input_size: int = 299
    dropout: float = 0.2
    epochs: int = 30
    head_epochs: int = 5
    batch_size: int = 64
    lr_head: float = 1e-3
    lr_finetune: float = 1e-4
    weights: str = "imagenet"
    patience: int = 5
    class_weighting: bool = True
    augment: bool = True
    mixed_precision: bool = False
    seed: int = 0
    max_train_images: int = 0

    def __post_init__(self):
        def check(cond, msg):
            if not cond:
                raise UserError(msg)

        check(self.input_size >= MIN_INPUT_SIZE,
              f"InceptionV3 needs input_size >= {MIN_INPUT_SIZE}. Received: input_size={self.input_size}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        check(self.epochs >= 1, f"epochs must be >= 1. Received: epochs={self.epochs}")
        check(0 <= self.head_epochs <= self.epochs,
              f"head_epochs must be in [0, epochs={self.epochs}]. Received: head_epochs={self.head_epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1. Received: batch_size={self.batch_size}")
        check(self.lr_head > 0 and self.lr_finetune > 0,
              f"Learning rates must be > 0. Received: lr_head={self.lr_head}, lr_finetune={self.lr_finetune}")
        check(self.patience >= 0, f"patience must be >= 0. Received: patience={self.patience}")
        check(self.max_train_images >= 0,
              f"max_train_images must be >= 0 (0 = all). Received: max_train_images={self.max_train_images}")
        check(bool(str(self.weights).strip()), "weights must be 'imagenet', 'none' or a file path.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassifierConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"ClassifierConfig: unknown fields {sorted(unknown)}. Known: {sorted(names)}.")
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class TrainingMixture:
    """Which slices train the classifier. Validation and test always use the real dataset's val/test splits.

    Attributes:
      extra_data: further prepared datasets (e.g. synthetic ones written by launchers/synthesize.py) whose
        train splits are added to the training set.
      extra_ratio: take round(extra_ratio * real training slices of the class) slices of each class from
        each extra dataset (1.0 doubles every class); 0 = not used.
      extra_per_class: or this many slices of each class from each extra dataset; 0 = not used.
        With neither, all of each extra dataset is used. Slices are the first ones of each class in file
        order (for a synthetic dataset: seed order), the same every epoch.
      real_train: also train on the real train split (False: extra data only, e.g. train on synthetic,
        test on real).
    """

    extra_data: tuple[str, ...] = ()
    extra_ratio: float = 0.0
    extra_per_class: int = 0
    real_train: bool = True

    def __post_init__(self):
        object.__setattr__(self, "extra_data", tuple(str(p) for p in self.extra_data if str(p).strip()))

        def check(cond, msg):
            if not cond:
                raise UserError(msg)

        check(math.isfinite(self.extra_ratio) and self.extra_ratio >= 0,
              f"--extra_ratio must be a finite number >= 0 (0 = all of each extra dataset). "
              f"Received: {self.extra_ratio}")
        check(self.extra_per_class >= 0, f"--extra_per_class must be >= 0. Received: {self.extra_per_class}")
        check(not (self.extra_ratio and self.extra_per_class),
              "Pass --extra_ratio or --extra_per_class, not both.")
        check(bool(self.extra_data) or not (self.extra_ratio or self.extra_per_class),
              "--extra_ratio / --extra_per_class need --extra_data (the datasets to take the slices from).")
        check(self.real_train or bool(self.extra_data),
              "--noreal_train leaves nothing to train on: pass --extra_data (e.g. a synthetic dataset).")
        check(len(set(self.extra_data)) == len(self.extra_data), f"--extra_data lists a dataset twice: "
              f"{list(self.extra_data)}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "extra_data": list(self.extra_data)}

    def extra_count(self, real_count: int, available: int) -> int:
        """Slices of one class to take from one extra dataset."""
        if self.extra_per_class:
            return int(self.extra_per_class)
        if self.extra_ratio:
            return int(round(self.extra_ratio * real_count))
        return int(available)


# Launcher flag of each ClassifierConfig field (launchers/train_classifier.py).
_CONFIG_FLAGS = {"input_size": "input_size", "dropout": "dropout", "epochs": "epochs", "head_epochs": "head_epochs",
                 "batch_size": "batch", "lr_head": "lr", "lr_finetune": "lr_finetune", "weights": "weights",
                 "patience": "patience", "class_weighting": "class_weights", "augment": "augment",
                 "mixed_precision": "mixed_precision", "seed": "seed", "max_train_images": "max_train_images"}


def command_line(config: ClassifierConfig, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 mixture: TrainingMixture | None = None) -> list[str]:
    """The `python -m launchers.train_classifier ...` argv that reruns `train_classifier` with these settings."""
    args = ["python", "-m", "launchers.train_classifier", f"--data={data_dir}", f"--out={out_dir}"]
    for field, flag in _CONFIG_FLAGS.items():
        value = getattr(config, field)
        args.append((f"--{flag}" if value else f"--no{flag}") if isinstance(value, bool) else f"--{flag}={value}")
    mixture = mixture or TrainingMixture()
    if mixture.extra_data:
        args.append(f"--extra_data={','.join(mixture.extra_data)}")
    if mixture.extra_ratio:
        args.append(f"--extra_ratio={mixture.extra_ratio}")
    if mixture.extra_per_class:
        args.append(f"--extra_per_class={mixture.extra_per_class}")
    if not mixture.real_train:
        args.append("--noreal_train")
    return args


@dataclasses.dataclass(frozen=True)
class ClassifierRun:
    """What `train_classifier` produced: the best model's path, its test metrics, the epoch history."""

    model_path: Path
    metrics: dict[str, Any]
    history: dict[str, list[float]]


def class_weights(counts: Sequence[int]) -> np.ndarray:
    """Inverse-frequency weights float32 [K], `n_total / (K_present * n_k)` (1 on average per example).

    Classes with no examples get weight 0 (they contribute no loss anyway).
    """
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    if not present.any():
        raise UserError("The training split has no images.")
    w = np.zeros_like(counts)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w.astype(np.float32)


def make_augmentation(seed: int = 0) -> keras.Sequential:
    """Augmentation for [N, H, W, 1] images in [-1, 1] (background -1): mirror, small rotation/zoom/shift, contrast."""
    fill = dict(fill_mode="constant", fill_value=-1.0)
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, seed=seed + 1, **fill),
        keras.layers.RandomZoom(0.1, seed=seed + 2, **fill),
        keras.layers.RandomTranslation(0.05, 0.05, seed=seed + 3, **fill),
        keras.layers.RandomContrast(0.2, value_range=(-1.0, 1.0), seed=seed + 4),
    ], name="augment")


def make_train_dataset(images_labels: tf.data.Dataset, config: ClassifierConfig, weights: np.ndarray | None,
                       shuffle_buffer: int) -> tf.data.Dataset:
    """Unbatched (image [H, W, 1], label) -> batched (image [B, H, W, 1], label [B], weight [B]) for `fit`.

    Shuffles with a buffer of `shuffle_buffer` examples (0 = keep the order of `images_labels`).

    The weight of each example is its class weight (1 without class weighting).
    """
    ds = images_labels
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size)
    if config.augment:
        augment = make_augmentation(config.seed)
        # One batch at a time: the layers draw from shared seed state, so batches augmented in parallel take
        # their draws in a racy order and the same command trained a slightly different judge (prefetch
        # below still overlaps augmentation with training).
        ds = ds.map(lambda x, y: (augment(x, training=True), y))
    table = tf.constant(weights if weights is not None else np.ones([1], np.float32))
    if weights is not None:
        ds = ds.map(lambda x, y: (x, y, tf.gather(table, y)))
    else:
        ds = ds.map(lambda x, y: (x, y, tf.ones_like(y, tf.float32)))
    return ds.prefetch(tf.data.AUTOTUNE)


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model to `path` (native .keras, atomically) whenever `monitor` improves; keeps the best across fits."""

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss"):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.best = math.inf
        self.best_epoch = -1

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value):
            return
        if value < self.best:
            self.best, self.best_epoch = float(value), epoch
            save_classifier(self.model, self.path)
            print(f"epoch {epoch + 1}: {self.monitor} improved to {value:.4f}, saved {self.path}", flush=True)


def recalibrate_batchnorm(model: TumorClassifier, images: tf.data.Dataset, max_batches: int = 50) -> int:
    """Re-estimates the backbone's BatchNormalization statistics as the mean over training batches ("precise BN").

    For a backbone trained from scratch, the exponential moving averages lag the weights badly in
    short runs and the model then predicts one class at inference; this replaces them by the plain
    average of up to `max_batches` batch statistics under the current weights. `images` yields
    image batches [B, H, W, 1] (or (image, label, ...) tuples). Returns the number of batches used.
    """
    bns = [layer for layer in model.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.moving_mean.assign(tf.zeros_like(bn.moving_mean))
        bn.moving_variance.assign(tf.zeros_like(bn.moving_variance))
    n = 0
    try:
        for batch in images.take(max_batches):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            n += 1
            for bn in bns:
                bn.momentum = (n - 1) / n  # running mean of the per-batch statistics
            model.features(x, training=True)  # eager: BN reads the momentum set just above
    finally:
        for bn, m in zip(bns, saved):
            bn.momentum = m
    if n == 0:
        for bn in bns:
            bn.moving_variance.assign(tf.ones_like(bn.moving_variance))
    return n


class RecalibrateBatchNorm(keras.callbacks.Callback):
    """Runs `recalibrate_batchnorm` before each validation, so the checkpointed model has fresh statistics."""

    def __init__(self, images: tf.data.Dataset, max_batches: int = 50):
        super().__init__()
        self.images = images
        self.max_batches = max_batches

    def on_test_begin(self, logs=None):
        recalibrate_batchnorm(self.model, self.images, self.max_batches)


def fit_classifier(config: ClassifierConfig, train: tf.data.Dataset, val: tf.data.Dataset,
                   class_names: Sequence[str], class_counts: Sequence[int], out_dir: str | os.PathLike,
                   strategy: tf.distribute.Strategy | None = None, verbose: int = 2,
                   shuffle_buffer: int | None = None) -> tuple[Path, dict[str, list[float]]]:
    """Trains a classifier; the best model by validation loss ends in `<out_dir>/classifier.keras`.

    Args:
      train, val: unbatched datasets of (image float32 [H, W, 1] in [-1, 1], label int32 []).
      class_names: output classes; class_counts: training examples per class (for class weights).
      strategy: a tf.distribute strategy (default: the current one).
      shuffle_buffer: examples in the shuffle buffer (default: the training set, at most 4096;
        0 = `train` is already reshuffled every epoch).
    Returns:
      (path of the best `.keras`, Keras history merged over both phases).
    """
    out_dir = Path(out_dir)
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.seed)
    source = resolve_weights(config.weights)
    weights = class_weights(class_counts) if config.class_weighting else None
    num_train = int(np.sum(class_counts))
    if shuffle_buffer is None:
        shuffle_buffer = max(1, min(num_train, 4096))
    train_ds = make_train_dataset(train, config, weights, shuffle_buffer=shuffle_buffer)
    val_ds = val.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    previous_policy = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        with strategy.scope():
            model = build_with_weights(source, class_names, input_size=config.input_size, dropout=config.dropout)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)

    model_path = out_dir / "classifier.keras"
    best = BestCheckpoint(model_path)
    tensorboard = keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), write_graph=False, profile_batch=0)
    if source.pretrained:
        phases = [("head", config.head_epochs, config.lr_head, False),
                  ("finetune", config.epochs, config.lr_finetune, True)]
    else:
        if config.head_epochs:
            _log.info("weights='none': no head-only phase (a random backbone has nothing to keep); "
                      "all %d epochs train the whole network at lr %g.", config.epochs, config.lr_head)
        phases = [("scratch", config.epochs, config.lr_head, True)]

    history: dict[str, list[float]] = {}
    epoch = 0
    for name, end_epoch, lr, backbone_trainable in phases:
        if end_epoch <= epoch:
            continue
        print(f"phase '{name}': epochs {epoch + 1}-{end_epoch}, lr {lr:g}, backbone "
              f"{'trainable' if backbone_trainable else 'frozen'}", flush=True)
        with strategy.scope():
            model.backbone.trainable = backbone_trainable
            model.compile(optimizer=keras.optimizers.Adam(lr),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                          # XLA pays off on GPUs; on CPUs compiling InceptionV3 costs more than it saves.
                          jit_compile=bool(tf.config.list_logical_devices("GPU")))
        callbacks = [best, tensorboard]
        if not source.pretrained:  # must run before the checkpoint sees the validation loss
            callbacks.insert(0, RecalibrateBatchNorm(train.batch(config.batch_size)))
        if config.patience:
            callbacks.append(keras.callbacks.EarlyStopping("val_loss", patience=config.patience))
        h = model.fit(train_ds, validation_data=val_ds, epochs=end_epoch, initial_epoch=epoch,
                      callbacks=callbacks, verbose=verbose, shuffle=False)  # train_ds shuffles itself
        for k, v in h.history.items():
            history.setdefault(k, []).extend(float(x) for x in v)
        epoch = end_epoch
    if not model_path.exists():  # validation loss never finite: keep the last model rather than nothing
        _log.warning("The validation loss was never finite; saving the last model to %s.", model_path)
        save_classifier(model, model_path)
    return model_path, history


def _count_labels(ds: tf.data.Dataset, num_classes: int) -> np.ndarray:
    counts = np.zeros([num_classes], np.int64)
    for y in ds.map(lambda x, y: y).batch(4096):
        counts += np.bincount(np.asarray(y), minlength=num_classes)[:num_classes]
    return counts


def _label_map(class_names: Sequence[str]):
    """Dataset labels (canonical indices into ALL_CLASS_NAMES) -> indices into the classifier's `class_names`."""
    lut = tf.constant([list(class_names).index(c) if c in class_names else -1 for c in ALL_CLASS_NAMES], tf.int32)
    return lambda x, y: (x, tf.gather(lut, y))


def _training_sources(config: ClassifierConfig, data_dir: Path, manifest: dict, class_names: list[str],
                      mixture: TrainingMixture) -> list[dict]:
    """[{data, counts [K], dataset (unbatched, labels remapped), selection}] of every training source."""
    remap = _label_map(class_names)
    real_counts = np.array([manifest["split_counts"].get("train", {}).get(c, 0) for c in class_names], np.int64)
    sources = []
    if mixture.real_train:
        # The pipeline shuffles the whole split every epoch; a --max_train_images subset is drawn once
        # (then cached) and reshuffled by fit_classifier.
        train = load_dataset(data_dir, split="train", batch_size=None, shuffle=True, seed=config.seed).map(remap)
        if config.max_train_images:
            train = train.take(config.max_train_images).cache()
            counts = _count_labels(train, len(class_names))
            selection = f"{config.max_train_images} drawn once, reshuffled every epoch"
        else:
            counts, selection = real_counts, "all, reshuffled every epoch"
        sources.append({"data": str(data_dir), "counts": counts, "dataset": train, "selection": selection,
                        "subset": bool(config.max_train_images)})
    for k, extra in enumerate(mixture.extra_data):
        extra_dir = Path(extra)
        if extra_dir.resolve() == data_dir.resolve():
            raise UserError(f"--extra_data {extra} is the real --data itself; pass another dataset (e.g. a synthetic "
                            "one from launchers/synthesize.py).")
        em = read_manifest(extra_dir)
        unknown = [c for c in em["class_names"] if c not in class_names]
        if unknown:
            raise UserError(f"--extra_data {extra} has classes {unknown} that the real dataset {data_dir} lacks "
                            f"(it has {', '.join(class_names)}); the classifier learns the real dataset's classes.")
        if int(em["resolution"]) != int(manifest["resolution"]):
            raise UserError(f"--extra_data {extra} is {em['resolution']}x{em['resolution']} but {data_dir} is "
                            f"{manifest['resolution']}x{manifest['resolution']}; make or prepare it at the real "
                            "dataset's resolution.")
        available = em["split_counts"].get("train", {})
        counts = np.zeros([len(class_names)], np.int64)
        streams, weights = [], []
        for i, c in enumerate(class_names):
            n = mixture.extra_count(int(real_counts[i]), int(available.get(c, 0)))
            if n > int(available.get(c, 0)):
                asked_by = "--extra_per_class" if mixture.extra_per_class else "--extra_ratio"
                raise UserError(f"--extra_data {extra} has {available.get(c, 0)} training slices of {c!r}; "
                                f"{n} were asked for ({asked_by}). Make a larger dataset or ask for fewer.")
            if n:
                ds = load_dataset(extra_dir, split="train", class_name=c, batch_size=None, shuffle=False,
                                  cache=False).take(n).map(remap)
                streams.append(ds.shuffle(min(n, 4096), seed=config.seed + 1 + k, reshuffle_each_iteration=True))
                weights.append(n)
                counts[i] = n
        if not streams:
            raise UserError(f"--extra_data {extra}: no training slices selected (counts {dict(available)}).")
        ds = streams[0] if len(streams) == 1 else tf.data.Dataset.sample_from_datasets(
            streams, weights=[w / sum(weights) for w in weights], seed=config.seed + 1 + k,
            rerandomize_each_iteration=True)
        sources.append({"data": str(extra_dir), "counts": counts, "dataset": ds, "subset": True,
                        "selection": "first n per class in file order, reshuffled every epoch"})
    return sources


def train_classifier(config: ClassifierConfig, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                     strategy: tf.distribute.Strategy | None = None, verbose: int = 2,
                     mixture: TrainingMixture | None = None, overwrite: bool = False) -> ClassifierRun:
    """Trains the judge on a prepared dataset (and extra datasets) and evaluates it on the patient-wise test split.

    Writes into `out_dir` (which must not exist or be empty): `config.json` (settings and the training
    sources with their counts per class), `classifier.keras` (best by validation loss), `metrics.json` +
    `confusion_matrix.png` (test split) and TensorBoard logs under `tensorboard/`.

    Args:
      mixture: the training sources (`TrainingMixture`); default: the real train split only.
      overwrite: replace a non-empty `out_dir`: the new run trains in a temporary folder beside it, which
        replaces the old one only when the run is complete (a failed or killed run leaves the old one).
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"Output {out_dir} is a file; --out must be a folder.")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise UserError(f"Output folder {out_dir} already exists and is not empty. Choose another --out, "
                            f"delete it first, or pass --overwrite (it is replaced when the new run completes).")
        with atomic_dir(out_dir, overwrite=True) as work_dir:  # removed again if the run fails
            run = _train_classifier(config, data_dir, work_dir, out_dir, strategy, verbose, mixture)
        return dataclasses.replace(run, model_path=out_dir / Path(run.model_path).name)
    return _train_classifier(config, data_dir, out_dir, out_dir, strategy, verbose, mixture)


def _train_classifier(config: ClassifierConfig, data_dir: Path, out_dir: Path, final_dir: Path,
                      strategy: tf.distribute.Strategy | None, verbose: int,
                      mixture: TrainingMixture | None) -> ClassifierRun:
    """`train_classifier` writing into `out_dir`, which becomes `final_dir` (the name its records give)."""
    mixture = mixture or TrainingMixture()
    resolve_weights(config.weights)  # fail before reading any data
    manifest = read_manifest(data_dir)
    class_names = list(manifest["class_names"])
    split_counts = manifest.get("split_counts", {})

    def split_size(split):
        return int(sum(split_counts.get(split, {}).values()))

    if split_size("train") == 0 and mixture.real_train:
        raise UserError(f"{data_dir} has no training images (manifest split_counts: {split_counts}). "
                        f"Prepare it again with launchers/prepare_data.py.")
    val_split = "val" if split_size("val") else "test"
    test_split = "test" if split_size("test") else "val"
    if split_size(val_split) == 0:
        synthetic = manifest.get("source", {}).get("format") == "synthetic"
        hint = " (a synthetic dataset goes in --extra_data, with the real one as --data)" if synthetic else ""
        raise UserError(f"{data_dir} has neither a val nor a test split to validate on. "
                        f"Prepare it again with launchers/prepare_data.py and held-out patients{hint}.")
    if val_split != "val":
        _log.warning("%s has no val split: early stopping and checkpoints watch the test split.", data_dir)
    if test_split != "test":
        _log.warning("%s has no test split: the reported metrics are on the val split.", data_dir)

    # The datasets' shuffles and interleaving draw from the global seed too: set it before building them, so a
    # run in a fresh process (the launcher) and one inside a longer one (evaluate --utility) train alike.
    keras.utils.set_random_seed(config.seed)
    sources = _training_sources(config, data_dir, manifest, class_names, mixture)
    counts = np.sum([s["counts"] for s in sources], axis=0).astype(np.int64)
    if counts.sum() == 0:
        raise UserError(f"No training slices selected from {[s['data'] for s in sources]}.")
    if len(sources) == 1:
        train = sources[0]["dataset"]
        shuffle_buffer = None if sources[0]["subset"] else 0  # a full real split is already reshuffled
    else:  # every source reshuffles itself; interleave them at random in proportion to their sizes
        sizes = [int(s["counts"].sum()) for s in sources]
        train = tf.data.Dataset.sample_from_datasets([s["dataset"] for s in sources],
                                                     weights=[n / sum(sizes) for n in sizes], seed=config.seed,
                                                     rerandomize_each_iteration=True)
        shuffle_buffer = 0
    # the sizes of an epoch, which Keras cannot infer from TFRecords (it would warn after the first epoch)
    train = train.apply(tf.data.experimental.assert_cardinality(int(counts.sum())))
    remap = _label_map(class_names)
    val = load_dataset(data_dir, split=val_split, batch_size=None, shuffle=False).map(remap)
    val = val.apply(tf.data.experimental.assert_cardinality(split_size(val_split)))

    out_dir.mkdir(parents=True, exist_ok=True)
    train_sources = [{"data": s["data"], "split": "train", "selection": s["selection"],
                      "counts": {c: int(n) for c, n in zip(class_names, s["counts"])}} for s in sources]
    write_json(out_dir / "config.json", {
        "classifier": config.to_dict(), "data": str(data_dir), "class_names": class_names,
        "mixture": mixture.to_dict(), "train_sources": train_sources,
        "train_counts": {c: int(n) for c, n in zip(class_names, counts)},
        "class_weights": (class_weights(counts).tolist() if config.class_weighting else None),
        "val_split": val_split, "test_split": test_split,
        "strategy": type(strategy or tf.distribute.get_strategy()).__name__,
        "command": command_line(config, data_dir, final_dir, mixture),
    })
    for s in train_sources:
        print(f"training on {s['data']} train: {s['counts']}", flush=True)
    start = time.perf_counter()
    model_path, history = fit_classifier(config, train, val, class_names, counts, out_dir, strategy, verbose,
                                         shuffle_buffer=shuffle_buffer)
    model = load_classifier(model_path)
    test = load_dataset(data_dir, split=test_split, batch_size=config.batch_size, shuffle=False).map(remap)
    metrics = evaluate_classifier(model, test, class_names=class_names)
    metrics.update(split=test_split, data=str(data_dir), epochs_run=len(history.get("loss", [])),
                   train_seconds=round(time.perf_counter() - start, 1), num_train=int(counts.sum()),
                   train_counts={c: int(n) for c, n in zip(class_names, counts)}, train_sources=train_sources)
    write_metrics(metrics, out_dir, tensorboard_dir=out_dir / "tensorboard" / "test",
                  step=metrics["epochs_run"], prefix=test_split)
    print(f"{test_split} accuracy {metrics['accuracy']:.4f} (macro F1 {metrics['macro_f1']:.4f}) on "
          f"{metrics['num_examples']} real {test_split} images of {data_dir}; wrote {final_dir}", flush=True)
    return ClassifierRun(model_path, metrics, history)
