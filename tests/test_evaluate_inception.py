"""ImageNet-InceptionV3 features of tfstylegan.apps.evaluation: `InceptionFeatures` and
`evaluate(inception_weights=...)`.

Random notop InceptionV3 weights at input 75 stand in for Keras' ImageNet file (nothing is downloaded).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.apps.evaluation import features
from tfstylegan.apps.evaluation import run as evaluation
from tfstylegan.utils.errors import UserError

SIZE = 75


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A random notop InceptionV3 (input 75) saved as Keras 3 `.weights.h5` and as a legacy `.h5` like ImageNet's."""
    root = tmp_path_factory.mktemp("inception")
    keras.utils.set_random_seed(3)
    model = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    model.save_weights(root / "notop.weights.h5")
    model.save(root / "notop.h5")  # legacy HDF5 (a 'model_weights' group), the keras-applications layout
    return {"root": root, "model": model, "weights_h5": root / "notop.weights.h5", "legacy_h5": root / "notop.h5"}


def _images(n, size=16, seed=0):
    """float32 [n, size, size, 1] in [-1, 1], a little outside too (the extractor clips)."""
    return np.random.default_rng(seed).uniform(-1.1, 1.1, (n, size, size, 1)).astype(np.float32)


def test_features_match_the_saved_network(backbone):
    images = _images(5)
    feats = features.InceptionFeatures(backbone["weights_h5"], size=SIZE, batch_size=2)(images)
    assert feats.shape == (5, 2048) and feats.dtype == np.float32 and np.all(np.isfinite(feats))
    assert np.std(feats) > 0 and not np.allclose(feats[0], feats[1])
    # gray -> RGB, resized to 75; [-1, 1] is already InceptionV3's input scale; global average pooling
    x = tf.image.resize(np.tile(np.clip(images, -1, 1), [1, 1, 1, 3]), [SIZE, SIZE], antialias=True)
    expected = np.mean(backbone["model"](x, training=False).numpy(), axis=(1, 2))
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)


def test_features_are_deterministic_across_batches_formats_and_instances(backbone):
    images = _images(5, seed=1)
    a = features.InceptionFeatures(backbone["weights_h5"], size=SIZE, batch_size=2)
    first = a(images)
    np.testing.assert_array_equal(a(images), first)
    np.testing.assert_allclose(a(images[3:]), first[3:], rtol=1e-5, atol=1e-6)  # independent of the batch
    for path in (backbone["weights_h5"], backbone["legacy_h5"]):
        other = features.InceptionFeatures(path, size=SIZE, batch_size=8)(images)
        np.testing.assert_allclose(other, first, rtol=1e-5, atol=1e-6, err_msg=str(path))
    assert a(images[:0]).shape == (0, 2048)


def test_missing_or_incompatible_file_is_a_user_error(backbone, tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(UserError, match="nope.h5.*does not exist"):
        features.InceptionFeatures(missing, size=SIZE)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file")
    with pytest.raises(UserError, match="garbage.h5"):
        features.InceptionFeatures(garbage, size=SIZE)
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    wrong = tmp_path / "dense.weights.h5"
    small.save_weights(wrong)
    with pytest.raises(UserError, match="dense.weights.h5.*notop") as info:
        features.InceptionFeatures(wrong, size=SIZE)
    assert len(str(info.value)) < 600  # Keras' reason in one line, not its list of every unloaded layer


@pytest.mark.slow
def test_evaluate_writes_inception_metrics(backbone, phantom_data, tiny_checkpoints, tiny_judge, tmp_path):
    data, judge = phantom_data, tiny_judge  # the judge's 75 px is SIZE
    spec = ",".join(f"{c}={tiny_checkpoints[c]}" for c in ("meningioma", "glioma"))
    config = evaluation.EvaluationConfig(num_images=10, is_splits=2, kid_subsets=5, ppl_samples=0, batch_size=16,
                                         inception_size=SIZE)
    out = tmp_path / "eval"
    evaluation.evaluate(spec, judge, data, out, config,
                        inception_weights=backbone["legacy_h5"], show_progress=False)

    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["inception_weights"] == str(backbone["legacy_h5"])
    assert saved["settings"]["inception_size"] == SIZE and "'inception'" in saved["settings"]["features"]
    for metrics in (saved["per_class"]["meningioma"], saved["per_class"]["glioma"], saved["pooled"]):
        inc = metrics["inception"]
        assert set(inc) == {"fid", "kid", "precision", "recall"}
        assert np.isfinite(inc["fid"]) and inc["fid"] >= -1e-6
        assert len(inc["kid"]) == 2 and np.all(np.isfinite(inc["kid"]))
        assert 0 <= inc["precision"] <= 1 and 0 <= inc["recall"] <= 1
        assert inc["fid"] != metrics["fid"]  # other features than the judge's
    # the per-class numbers are those of the extractor on the same images
    from tfstylegan.apps import generation
    from tfstylegan.data.pipeline import read_manifest

    gen = generation.load_class_generators(spec)["glioma"]
    fake = generation.image_channel(generation.generate_images(gen, list(range(10)), 1.0, "const", batch_size=16,
                                                               show_progress=False))
    real, _ = evaluation.real_sample(data, read_manifest(data), "glioma", 10, "test")
    inception = features.InceptionFeatures(backbone["weights_h5"], size=SIZE)
    expected = evaluation.distribution_metrics(inception(real), inception(fake), config)
    assert saved["per_class"]["glioma"]["inception"]["fid"] == pytest.approx(expected["fid"], rel=1e-3, abs=1e-3)

    # one class: 'pooled' is that class, the ImageNet-feature metrics included
    one = evaluation.evaluate(spec.split(",")[1], judge, data, tmp_path / "eval1",
                              config, inception_weights=backbone["weights_h5"], show_progress=False)
    assert list(one["per_class"]) == ["glioma"]
    assert one["pooled"]["inception"] == one["per_class"]["glioma"]["inception"]
    assert one["per_class"]["glioma"]["inception"]["fid"] == pytest.approx(expected["fid"], rel=1e-3, abs=1e-3)
