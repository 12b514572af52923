"""Classifier evaluation: accuracy, per-class precision/recall/F1, confusion matrix.

Plain numpy (no sklearn). The conventions are sklearn's: the confusion matrix has the
true class on rows and the predicted class on columns; precision of a class that is
never predicted (and recall of a class with no examples) is 0, as is their F1.
Results go to `metrics.json`, `confusion_matrix.png` (+ `.pdf`/`.svg` for papers; matplotlib, drawn by
`tfstylegan.utils.charts`) and TensorBoard (scalars plus the confusion-matrix image).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfstylegan.utils.charts import confusion_matrix_figure, figure_to_array, save_figure
from tfstylegan.utils.io import write_json


def confusion_matrix(labels, preds, num_classes: int) -> np.ndarray:
    """int64 [num_classes, num_classes]: entry [t, p] counts examples of true class t predicted as p."""
    labels = np.asarray(labels, np.int64).reshape(-1)
    preds = np.asarray(preds, np.int64).reshape(-1)
    if labels.shape != preds.shape:
        raise ValueError(f"labels and preds differ in length. Received: {labels.shape} vs {preds.shape}")
    for name, v in (("labels", labels), ("preds", preds)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} must be in [0, {num_classes}). Received: min={v.min()}, max={v.max()}")
    cm = np.zeros([num_classes, num_classes], np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def classification_metrics(labels, preds, class_names: Sequence[str]) -> dict[str, Any]:
    """Metrics for integer `labels` and `preds` [N] over `class_names`.

    Returns a JSON-ready dict: num_examples, accuracy, balanced_accuracy (mean recall),
    macro_precision/recall/f1, class_names, per_class {name: {precision, recall, f1, support}},
    confusion_matrix (nested lists, true on rows).
    """
    class_names = [str(c) for c in class_names]
    cm = confusion_matrix(labels, preds, len(class_names))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    n = int(cm.sum())
    return {
        "num_examples": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "balanced_accuracy": float(recall[support > 0].mean()) if (support > 0).any() else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "class_names": class_names,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
    }


def predict_labels(model, data, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Runs `model` (images -> logits) over `data`; returns (labels int64 [N], preds int64 [N]).

    `data` is a `tf.data.Dataset` of batched `(image [B, H, W, C], label [B])` or a tuple
    `(images [N, H, W, C], labels [N])` of arrays.
    """
    predict = tf.function(lambda x: tf.argmax(model(x, training=False), axis=-1), reduce_retracing=True)
    if isinstance(data, tf.data.Dataset):
        batches = data
    else:
        images, labels = data
        images, labels = np.asarray(images, np.float32), np.asarray(labels)
        batches = ((images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(images), batch_size))
    all_labels, all_preds = [], []
    for x, y in batches:
        all_preds.append(np.asarray(predict(tf.convert_to_tensor(x, tf.float32))))
        all_labels.append(np.asarray(y).reshape(-1))
    if not all_labels:
        return np.zeros([0], np.int64), np.zeros([0], np.int64)
    return np.concatenate(all_labels).astype(np.int64), np.concatenate(all_preds).astype(np.int64)


def evaluate_classifier(model, images, labels=None, class_names: Sequence[str] | None = None,
                        batch_size: int = 64) -> dict[str, Any]:
    """`classification_metrics` of `model` on `images` [N, H, W, 1] in [-1, 1] with `labels` [N].

    `images` may also be a batched `tf.data.Dataset` of (image, label) (then `labels` is None).
    `class_names` defaults to `model.class_names`.
    """
    class_names = list(class_names if class_names is not None else model.class_names)
    data = images if labels is None else (images, labels)
    y_true, y_pred = predict_labels(model, data, batch_size=batch_size)
    return classification_metrics(y_true, y_pred, class_names)


# --- rendering -------------------------------------------------------------------------------------------------

def render_confusion_matrix(cm, class_names: Sequence[str], title: str | None = None) -> np.ndarray:
    """uint8 RGB image [H, W, 3] of a confusion matrix (true class on rows): counts and row-normalised
    panels with colorbars, as in confusion_matrix.png (`tfstylegan.utils.charts.confusion_matrix_figure`)."""
    return figure_to_array(confusion_matrix_figure(cm, class_names, title=title))


def write_metrics(metrics: dict[str, Any], out_dir: str | os.PathLike, tensorboard_dir: str | os.PathLike | None = None,
                  step: int = 0, prefix: str = "test") -> None:
    """Writes `<out_dir>/metrics.json`, `<out_dir>/confusion_matrix.{png,pdf,svg}` and, if given, TensorBoard
    summaries.

    TensorBoard gets `<prefix>/accuracy`, `<prefix>/balanced_accuracy`, `<prefix>/macro_f1`,
    `<prefix>/<class>/{precision,recall,f1}` scalars and a `<prefix>/confusion_matrix` image.
    """
    out_dir = Path(out_dir)
    write_json(out_dir / "metrics.json", metrics)
    figure = confusion_matrix_figure(metrics["confusion_matrix"], metrics["class_names"],
                                     title=f"{prefix}: accuracy {metrics['accuracy']:.3f}")
    save_figure(figure, out_dir / "confusion_matrix")
    image = figure_to_array(figure)
    if tensorboard_dir is not None:
        writer = tf.summary.create_file_writer(str(tensorboard_dir))
        with writer.as_default(step=step):
            for key in ("accuracy", "balanced_accuracy", "macro_f1"):
                tf.summary.scalar(f"{prefix}/{key}", metrics[key])
            for name, values in metrics["per_class"].items():
                for key in ("precision", "recall", "f1"):
                    tf.summary.scalar(f"{prefix}/{name}/{key}", values[key])
            tf.summary.image(f"{prefix}/confusion_matrix", image[None])
        writer.close()
