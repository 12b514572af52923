"""Feature extractors of the evaluation: the fine-tuned judge, and ImageNet InceptionV3 from a local file."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfstylegan.utils.errors import UserError
from tfstylegan.utils.progress import Progress


class Judge:
    """The fine-tuned classifier as a batched numpy feature/probability extractor (one traced function)."""

    def __init__(self, model, batch_size: int = 32):
        self.model = model
        self.class_names = [str(c) for c in model.class_names]
        self.batch_size = int(batch_size)
        self._fn = tf.function(model.features_and_probs, reduce_retracing=True)

    def features_and_probs(self, images: np.ndarray, desc: str | None = None,
                           show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """images float [N, H, W, 1] in [-1, 1] -> (features float32 [N, 2048], probs float32 [N, K])."""
        images = np.asarray(images, np.float32)
        feats, probs = [], []
        progress = Progress(len(images), desc=desc or "judge", unit="img", enabled=show_progress)
        for i in range(0, len(images), self.batch_size):
            f, p = self._fn(images[i:i + self.batch_size])
            feats.append(np.asarray(f))
            probs.append(np.asarray(p))
            progress.update(len(f))
        progress.close()
        if not feats:
            return np.zeros([0, 2048], np.float32), np.zeros([0, len(self.class_names)], np.float32)
        return np.concatenate(feats), np.concatenate(probs)

    def normalized_features(self, images) -> np.ndarray:
        """Unit-length features [N, 2048] (the PPL distance space)."""
        f = np.asarray(self._fn(np.asarray(images, np.float32))[0], np.float64)
        return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


class InceptionFeatures:
    """ImageNet InceptionV3 pooled features (standard-ish FID) from a local notop weights file.

    images float [N, H, W, 1] in [-1, 1] -> gray to RGB, resized to `size`, which is already
    InceptionV3's input scale -> features float32 [N, 2048]. Nothing is downloaded.
    """

    def __init__(self, weights_path: str | os.PathLike, size: int = 299, batch_size: int = 32):
        path = Path(weights_path)
        if not path.is_file():
            raise UserError(f"--inception_weights file {path} does not exist. Pass a local notop InceptionV3 "
                            "weights file (Keras' inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5); "
                            "nothing is downloaded.")
        try:
            self.model = keras.applications.InceptionV3(include_top=False, weights=str(path), pooling="avg",
                                                        input_shape=(int(size), int(size), 3))
        except Exception as e:  # Keras raises several types for a mismatched file
            # only the first line: Keras lists every layer it could not load (188 for InceptionV3)
            reason = (str(e).strip().splitlines() or [""])[0].rstrip(".: ")
            raise UserError(f"Could not load the InceptionV3 weights {path}: {type(e).__name__}: {reason}. "
                            "Pass the notop (include_top=False) InceptionV3 weights file.") from None
        self.size, self.batch_size = int(size), int(batch_size)

        def features(images):
            x = tf.clip_by_value(tf.cast(images, tf.float32), -1.0, 1.0)
            x = tf.tile(x, [1, 1, 1, 3])
            x = tf.image.resize(x, [self.size, self.size], method="bilinear", antialias=True)
            return tf.cast(self.model(x, training=False), tf.float32)

        self._fn = tf.function(features, reduce_retracing=True)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        out = [np.asarray(self._fn(images[i:i + self.batch_size])) for i in range(0, len(images), self.batch_size)]
        return np.concatenate(out) if out else np.zeros([0, 2048], np.float32)
