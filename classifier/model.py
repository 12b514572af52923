"""The tumor-class judge: an InceptionV3 backbone with a small classification head.

`TumorClassifier` takes the toolkit's images (float [N, H, W, 1] in [-1, 1], what the
generator and `tfstylegan.data.pipeline.load_dataset` produce) and does its own input
handling: clip, map to [0, 255], gray -> 3 channels, resize to `input_size` (299 for
the published backbone; anything >= 75 works), then InceptionV3's `preprocess_input`.

- `model(images)` -> logits float32 [N, num_classes] (what training uses).
- `model.features_and_probs(images)` -> (features float32 [N, 2048], probs float32
  [N, num_classes]): the pooled backbone features (FID/KID/precision-recall) and the
  class probabilities (Inception Score) from one forward pass.
- `predict_features_and_probs(model, images)` does the same in batches, returning numpy.

The model saves and loads in the native `.keras` format with its class names
(`save_classifier` / `load_classifier`).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import atomic_path

FEATURE_DIM = 2048  # InceptionV3's pooled feature size
MIN_INPUT_SIZE = 75  # the smallest input keras.applications.InceptionV3 accepts
SCRATCH_BN_MOMENTUM = 0.9  # BatchNormalization momentum when the backbone trains from random init


def from_uint8(images) -> tf.Tensor:
    """uint8 images [N, H, W, C] in [0, 255] (e.g. decoded PNGs, a serving request) -> float32 in [-1, 1]."""
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        raise ValueError(f"from_uint8 takes uint8 images. Received: dtype={images.dtype.name}")
    return tf.cast(images, tf.float32) / 127.5 - 1.0


@keras.saving.register_keras_serializable(package="tfstylegan")
class TumorClassifier(keras.Model):
    """InceptionV3 (no top) + global average pooling + dropout + Dense(num_classes).

    Args:
      class_names: the class of each output index (canonical order, e.g. CLASS_NAMES).
      input_size: side the images are resized to before the backbone (>= 75; 299 as published).
      dropout: dropout rate before the classification layer.
      freeze_batchnorm: run the backbone's BatchNormalization layers in inference mode even
        while training (Keras' transfer-learning guide, for a pretrained backbone). Use False
        when training from random initialisation, where there are no statistics to keep.
      backbone_weights: None (random init) or a local `.h5` / `.weights.h5` file of the notop
        InceptionV3 backbone. Not part of the config: a saved classifier carries its own weights.
    """

    def __init__(self, class_names: Sequence[str], input_size: int = 299, dropout: float = 0.2,
                 freeze_batchnorm: bool = True, backbone_weights: str | os.PathLike | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        class_names = tuple(str(c) for c in class_names)
        if len(class_names) < 2:
            raise UserError(f"A classifier needs at least 2 classes. Received: class_names={class_names}")
        if int(input_size) < MIN_INPUT_SIZE:
            raise UserError(f"InceptionV3 needs input_size >= {MIN_INPUT_SIZE}. Received: input_size={input_size}")
        if not 0.0 <= float(dropout) < 1.0:
            raise UserError(f"dropout must be in [0, 1). Received: dropout={dropout}")
        self.class_names = class_names
        self.num_classes = len(class_names)
        self.input_size = int(input_size)
        self.dropout_rate = float(dropout)
        self.freeze_batchnorm = bool(freeze_batchnorm)
        self.backbone = keras.applications.InceptionV3(
            include_top=False, weights=None if backbone_weights is None else str(backbone_weights),
            input_shape=(self.input_size, self.input_size, 3), pooling=None)
        if not self.freeze_batchnorm:
            # Trained from scratch, the population statistics must follow fast-moving weights:
            # PyTorch's default momentum (0.9) instead of keras.applications' 0.99.
            for layer in self.backbone.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = SCRATCH_BN_MOMENTUM
        self.pool = keras.layers.GlobalAveragePooling2D(name="avg_pool")
        self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")
        # The logits stay float32 under a mixed_float16 policy (a stable softmax / loss).
        self.head = keras.layers.Dense(self.num_classes, dtype="float32", name="logits")

    def build(self, input_shape=None):
        self.head.build((None, FEATURE_DIM))
        self.built = True

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """[N, H, W, 1 or 3] float in [-1, 1] -> [N, input_size, input_size, 3], InceptionV3's input scale."""
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"TumorClassifier expects images [N, H, W, 1 or 3] in [-1, 1]. "
                             f"Received: shape={images.shape}")
        x = tf.cast(images, tf.float32)
        x = (tf.clip_by_value(x, -1.0, 1.0) + 1.0) * 127.5  # [0, 255]
        if x.shape[-1] == 1:
            x = tf.tile(x, [1, 1, 1, 3])
        x = tf.image.resize(x, [self.input_size, self.input_size], method="bilinear", antialias=True)
        x = keras.applications.inception_v3.preprocess_input(x)  # [0, 255] -> [-1, 1]
        return tf.cast(x, self.compute_dtype)

    def features(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Pooled backbone features float32 [N, 2048]."""
        x = self.preprocess(images)
        x = self.backbone(x, training=False if self.freeze_batchnorm else training)
        return tf.cast(self.pool(x), tf.float32)

    def call(self, images, training=False):
        """images [N, H, W, 1] in [-1, 1] -> logits float32 [N, num_classes]."""
        f = self.features(images, training=training)
        return self.head(self.dropout(f, training=training))

    def features_and_probs(self, images) -> tuple[tf.Tensor, tf.Tensor]:
        """images [N, H, W, 1] in [-1, 1] -> (features float32 [N, 2048], probs float32 [N, num_classes])."""
        f = self.features(images, training=False)
        return f, tf.nn.softmax(self.head(f))

    def get_config(self):
        config = super().get_config()
        config.update(class_names=list(self.class_names), input_size=self.input_size,
                      dropout=self.dropout_rate, freeze_batchnorm=self.freeze_batchnorm)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_classifier(class_names: Sequence[str], input_size: int = 299, dropout: float = 0.2,
                     freeze_batchnorm: bool = True,
                     backbone_weights: str | os.PathLike | None = None) -> TumorClassifier:
    """A built `TumorClassifier` (all variables created), ready for `load_weights` or training."""
    model = TumorClassifier(class_names, input_size=input_size, dropout=dropout,
                            freeze_batchnorm=freeze_batchnorm, backbone_weights=backbone_weights)
    model(tf.zeros([1, MIN_INPUT_SIZE, MIN_INPUT_SIZE, 1]))
    return model


def predict_features_and_probs(model: TumorClassifier, images, batch_size: int = 64
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Batched `features_and_probs` over numpy images [N, H, W, 1] in [-1, 1] or uint8 [0, 255].

    Returns (features float32 [N, 2048], probs float32 [N, num_classes]).
    """
    images = np.asarray(images)
    fn = tf.function(model.features_and_probs, reduce_retracing=True)
    feats, probs = [], []
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size]
        batch = from_uint8(batch) if batch.dtype == np.uint8 else tf.convert_to_tensor(batch, tf.float32)
        f, p = fn(batch)
        feats.append(f.numpy())
        probs.append(p.numpy())
    if not feats:
        return np.zeros([0, FEATURE_DIM], np.float32), np.zeros([0, model.num_classes], np.float32)
    return np.concatenate(feats), np.concatenate(probs)


def save_classifier(model: TumorClassifier, path: str | os.PathLike) -> Path:
    """Saves `model` in the native `.keras` format, atomically. Returns the path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise UserError(f"Classifiers are saved in the native .keras format. Received: path={path}")
    with atomic_path(path) as tmp:
        # Keras insists on the .keras suffix, so write to a .keras file inside the temporary name's folder.
        tmp_keras = tmp.with_name(tmp.name + ".keras")
        try:
            model.save(tmp_keras)
            os.replace(tmp_keras, tmp)
        finally:
            if tmp_keras.exists():
                tmp_keras.unlink()
    return path


def load_classifier(path: str | os.PathLike) -> TumorClassifier:
    """Loads a classifier saved by `save_classifier` / `launchers/train_classifier.py`.

    Raises:
      UserError: if the file is missing, not a `.keras` archive, or holds another kind of model.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Classifier file {path} does not exist. Train one with launchers/train_classifier.py "
                        f"(it writes <out>/classifier.keras) or pass the right path.")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a native Keras .keras archive (truncated or another format). "
                        f"Pass the classifier.keras written by launchers/train_classifier.py.")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad archive
        raise UserError(f"Could not load the classifier from {path}: {type(e).__name__}: {e}. "
                        f"The file may be corrupt or from an incompatible version; retrain it.") from None
    if not isinstance(model, TumorClassifier):
        raise UserError(f"{path} holds a {type(model).__name__}, not a TumorClassifier. "
                        f"Pass the classifier.keras written by launchers/train_classifier.py.")
    return model
