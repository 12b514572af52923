"""TumorClassifier: output shapes/dtypes, features+probs, input handling, .keras round trip, load errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from classifier.model import (FEATURE_DIM, TumorClassifier, build_classifier, from_uint8, load_classifier,
                              predict_features_and_probs, save_classifier)
from tfstylegan.data.classes import CLASS_NAMES
from tfstylegan.utils.errors import UserError

CLASSES = CLASS_NAMES


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    m = build_classifier(CLASSES, input_size=75, dropout=0.3)
    # Non-zero head weights so probabilities differ between images.
    m.head.kernel.assign(tf.random.stateless_normal(m.head.kernel.shape, seed=[1, 2]) * 100.0)
    return m


def _images(n, size=64, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 1)).astype(np.float32)


def test_outputs_shapes_and_consistency(model):
    x = _images(5)
    logits = model(x)
    assert logits.shape == (5, 3) and logits.dtype == tf.float32
    f, p = model.features_and_probs(x)
    assert f.shape == (5, FEATURE_DIM) and f.dtype == tf.float32
    assert p.shape == (5, 3) and p.dtype == tf.float32
    np.testing.assert_allclose(p.numpy().sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p.numpy(), tf.nn.softmax(logits).numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(f.numpy() >= 0)  # pooled ReLU features
    assert np.std(p.numpy()[:, 0]) > 0  # different images, different predictions


def test_input_handling(model):
    x = _images(3)
    # Out-of-range values are clipped, so [-5, 5] gives the same as the clipped image.
    np.testing.assert_allclose(model(x * 5).numpy(), model(np.clip(x * 5, -1, 1)).numpy(), rtol=1e-5, atol=1e-5)
    # A gray image equals the same image given as 3 identical channels.
    np.testing.assert_allclose(model(x).numpy(), model(np.repeat(x, 3, axis=-1)).numpy(), rtol=1e-5, atol=1e-5)
    # uint8 [0, 255] -> [-1, 1]
    u8 = np.array([[[[0], [255]], [[128], [51]]]], np.uint8)
    np.testing.assert_allclose(from_uint8(u8).numpy().ravel(), [-1, 1, 128 / 127.5 - 1, 51 / 127.5 - 1], atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        from_uint8(x)
    with pytest.raises(ValueError, match=r"\[N, H, W, 1 or 3\]"):
        model(np.zeros([2, 64, 64, 2], np.float32))
    # The batched numpy helper takes uint8 too and agrees with features_and_probs.
    f, p = predict_features_and_probs(model, to_u8 := (np.clip(x * 127.5 + 127.5, 0, 255)).astype(np.uint8),
                                      batch_size=2)
    f2, p2 = model.features_and_probs(from_uint8(to_u8))
    np.testing.assert_allclose(f, f2.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p, p2.numpy(), rtol=1e-4, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(UserError, match="input_size >= 75"):
        TumorClassifier(CLASSES, input_size=64)
    with pytest.raises(UserError, match="at least 2 classes"):
        TumorClassifier(("glioma",), input_size=75)


def test_keras_round_trip(model, tmp_path):
    path = save_classifier(model, tmp_path / "clf.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf.keras"]  # no temporary left behind
    loaded = load_classifier(path)
    assert isinstance(loaded, TumorClassifier)
    assert loaded.class_names == CLASSES and loaded.input_size == 75 and loaded.dropout_rate == 0.3
    x = _images(4, size=80, seed=3)
    f1, p1 = model.features_and_probs(x)
    f2, p2 = loaded.features_and_probs(x)
    np.testing.assert_allclose(f2.numpy(), f1.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p2.numpy(), p1.numpy(), rtol=1e-5, atol=1e-6)
    assert TumorClassifier.from_config(model.get_config()).get_config() == model.get_config()
    with pytest.raises(UserError, match=".keras"):
        save_classifier(model, tmp_path / "clf.h5")


def test_load_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_classifier(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(UserError, match="bad.keras"):
        load_classifier(bad)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(UserError, match="not a TumorClassifier"):
        load_classifier(tmp_path / "other.keras")


def test_mixed_precision_outputs_float32():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    m = build_classifier(CLASSES, input_size=75)
    assert m.backbone.layers[1].compute_dtype == "float16"
    f, p = m.features_and_probs(_images(2))
    assert f.dtype == tf.float32 and p.dtype == tf.float32 and m(_images(2)).dtype == tf.float32
    assert np.all(np.isfinite(p.numpy()))
