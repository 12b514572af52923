"""--weights imagenet | none | PATH: Keras cache lookup (no download), local round trips, clear errors."""

import logging

import h5py
import keras
import numpy as np
import pytest

from classifier.model import build_classifier, save_classifier
from classifier.weights import (IMAGENET_FILENAME, IMAGENET_URL, build_with_weights, resolve_weights,
                                weights_equal)
from tfstylegan.utils.errors import UserError
from tfstylegan.data.classes import CLASS_NAMES

CLASSES = CLASS_NAMES


@pytest.fixture(scope="module")
def trained():
    """A classifier with distinctive (non-initial) weights everywhere."""
    keras.utils.set_random_seed(7)
    m = build_classifier(CLASSES, input_size=75)
    rng = np.random.default_rng(0)
    m.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in m.get_weights()])
    return m


def test_none_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="tfstylegan.classifier"):
        m = build_with_weights("none", CLASSES, input_size=75)
    assert "random weights" in caplog.text and "lower accuracy" in caplog.text
    assert not resolve_weights("none").pretrained and not m.freeze_batchnorm


def test_imagenet_missing_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    with pytest.raises(UserError) as e:
        resolve_weights("imagenet")
    msg = str(e.value)
    assert str(tmp_path / "kh" / "models" / IMAGENET_FILENAME) in msg and IMAGENET_URL in msg
    assert not (tmp_path / "kh" / "models").exists()  # nothing downloaded or created


def test_imagenet_from_keras_cache(trained, tmp_path, monkeypatch):
    # A stand-in for the real ImageNet file, in the same legacy keras-applications .h5 format.
    from keras.src.legacy.saving import legacy_h5_format

    cache = tmp_path / "kh" / "models"
    cache.mkdir(parents=True)
    with h5py.File(cache / IMAGENET_FILENAME, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, trained.backbone)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    src = resolve_weights("imagenet")
    assert src.kind == "imagenet" and src.path == cache / IMAGENET_FILENAME
    m = build_with_weights(src, CLASSES, input_size=99)  # any input size uses the same backbone weights
    assert weights_equal(m.backbone, trained.backbone) and m.freeze_batchnorm


def test_classifier_weights_round_trip(trained, tmp_path):
    path = tmp_path / "clf.weights.h5"
    trained.save_weights(path)
    assert resolve_weights(str(path)).kind == "classifier"
    m = build_with_weights(str(path), CLASSES, input_size=75)
    assert weights_equal(m, trained)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 1)).astype(np.float32)
    np.testing.assert_allclose(m(x).numpy(), trained(x).numpy(), rtol=1e-5, atol=1e-6)


def test_keras_file_and_backbone_file(trained, tmp_path):
    save_classifier(trained, tmp_path / "clf.keras")
    m = build_with_weights(str(tmp_path / "clf.keras"), CLASSES, input_size=80)
    assert weights_equal(m, trained) and m.input_size == 80
    trained.backbone.save_weights(tmp_path / "bb.weights.h5")
    src = resolve_weights(str(tmp_path / "bb.weights.h5"))
    assert src.kind == "backbone"
    m = build_with_weights(src, CLASSES, input_size=75)
    assert weights_equal(m.backbone, trained.backbone) and not weights_equal(m.head, trained.head)


def test_missing_and_incompatible_files(trained, tmp_path):
    with pytest.raises(UserError, match="nope.h5 does not exist"):
        resolve_weights(str(tmp_path / "nope.h5"))
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(UserError, match="unknown format"):
        resolve_weights(str(tmp_path / "w.txt"))
    (tmp_path / "trunc.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(UserError, match="trunc.h5 is not a readable HDF5"):
        resolve_weights(str(tmp_path / "trunc.h5"))
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    small.save_weights(tmp_path / "small.weights.h5")
    with pytest.raises(UserError, match="small.weights.h5 does not fit the notop InceptionV3"):
        build_with_weights(str(tmp_path / "small.weights.h5"), CLASSES, input_size=75)
    four = build_classifier(CLASSES + ("notumor",), input_size=75)
    four.save_weights(tmp_path / "four.weights.h5")
    with pytest.raises(UserError, match="four.weights.h5 does not fit a 3-class"):
        build_with_weights(str(tmp_path / "four.weights.h5"), CLASSES, input_size=75)
    save_classifier(four, tmp_path / "four.keras")
    with pytest.raises(UserError, match="predicts 4 classes"):
        build_with_weights(str(tmp_path / "four.keras"), CLASSES, input_size=75)
