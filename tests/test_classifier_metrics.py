"""Classifier metrics: golden values by hand, confusion matrix, PNG/JSON/TensorBoard outputs."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from classifier.metrics import (classification_metrics, confusion_matrix, evaluate_classifier,
                                render_confusion_matrix, write_metrics)
from tfstylegan.data.classes import CLASS_NAMES

NAMES = list(CLASS_NAMES)
# 10 examples. True: 3 meningioma, 4 glioma, 3 pituitary.
LABELS = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
PREDS = [0, 1, 0, 1, 1, 2, 1, 2, 2, 0]


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(LABELS, PREDS, 3)
    np.testing.assert_array_equal(cm, [[2, 1, 0],
                                       [0, 3, 1],
                                       [1, 0, 2]])
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        confusion_matrix([0, 3], [0, 0], 3)


def test_golden_metrics():
    m = classification_metrics(LABELS, PREDS, NAMES)
    # By hand: precision = tp / predicted: men 2/3, gli 3/4, pit 2/3; recall = tp / true: 2/3, 3/4, 2/3.
    assert m["num_examples"] == 10 and m["accuracy"] == pytest.approx(0.7)
    pc = m["per_class"]
    assert pc["meningioma"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert pc["glioma"] == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4})
    assert pc["pituitary"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.75 + 2 / 3) / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 0.75 + 2 / 3) / 3)
    json.dumps(m, allow_nan=False)


def test_asymmetric_and_never_predicted():
    # pituitary is never predicted: precision 0 (not NaN). meningioma: P = 2/4, R = 2/2, F1 = 2PR/(P+R) = 2/3.
    m = classification_metrics([0, 0, 1, 2], [0, 0, 0, 0], NAMES)
    assert m["per_class"]["pituitary"]["precision"] == 0.0 and m["per_class"]["pituitary"]["f1"] == 0.0
    assert m["per_class"]["meningioma"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3,
                                                          "support": 2})
    assert m["accuracy"] == 0.5


class _FixedModel:
    """Predicts the class written in the image's first pixel (0, 1, 2 -> logits peak)."""

    class_names = NAMES

    def __call__(self, x, training=False):
        k = tf.cast(tf.round(x[:, 0, 0, 0]), tf.int32)
        return tf.one_hot(k, 3) * 5.0


def test_evaluate_arrays_and_dataset():
    images = np.zeros([10, 8, 8, 1], np.float32)
    images[:, 0, 0, 0] = PREDS
    m1 = evaluate_classifier(_FixedModel(), images, np.array(LABELS), batch_size=3)
    ds = tf.data.Dataset.from_tensor_slices((images, np.array(LABELS, np.int32))).batch(4)
    m2 = evaluate_classifier(_FixedModel(), ds)
    assert m1 == m2 == classification_metrics(LABELS, PREDS, NAMES)


def test_render_and_write(tmp_path):
    m = classification_metrics(LABELS, PREDS, NAMES)
    img = render_confusion_matrix(m["confusion_matrix"], NAMES, title="test: accuracy 0.700")
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    # The picture follows the counts (cell colours and numbers: tests/test_plots.py).
    other = render_confusion_matrix(np.array(m["confusion_matrix"])[::-1], NAMES, title="test: accuracy 0.700")
    assert other.shape == img.shape and np.any(other != img)
    write_metrics(m, tmp_path, tensorboard_dir=tmp_path / "tb", step=3)
    assert json.loads((tmp_path / "metrics.json").read_text()) == m
    png = np.asarray(Image.open(tmp_path / "confusion_matrix.png").convert("RGB"))
    np.testing.assert_array_equal(png, img)  # the PNG is the TensorBoard picture
    assert (tmp_path / "confusion_matrix.pdf").read_bytes().startswith(b"%PDF")
    svg = (tmp_path / "confusion_matrix.svg").read_text()
    assert all(f">{name}<" in svg for name in NAMES)
    tags = set()
    for f in (tmp_path / "tb").glob("events.out.tfevents.*"):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            tags |= {v.tag for v in e.summary.value}
    assert {"test/accuracy", "test/confusion_matrix", "test/glioma/f1", "test/macro_f1"} <= tags
