"""Two-phase fine-tuning from a local notop InceptionV3 backbone (classifier.training.fit_classifier).

Phase 1 (head_epochs) must train only the head; phase 2 must train the backbone too at the
fine-tuning rate while its BatchNormalization statistics stay fixed (inference mode, as in
Keras' transfer-learning guide). Each `model.fit` call (one per phase) is wrapped to snapshot
the weights before and after it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from classifier.model import TumorClassifier, load_classifier
from classifier.training import ClassifierConfig, fit_classifier

CLASSES = ("meningioma", "glioma")


def _snapshot(model: TumorClassifier) -> dict[str, dict[str, np.ndarray]]:
    """Copies of the model's variables, grouped: backbone non-BN, BN moving statistics, BN beta, head.

    Keys are layer positions (layer names get numbered per process, so differ after loading).
    """
    groups: dict[str, dict[str, np.ndarray]] = {"conv": {}, "bn_stats": {}, "bn_beta": {}, "head": {}}
    for j, layer in enumerate(model.backbone.layers):
        if isinstance(layer, keras.layers.BatchNormalization):
            groups["bn_stats"][f"{j}/mean"] = layer.moving_mean.numpy().copy()
            groups["bn_stats"][f"{j}/variance"] = layer.moving_variance.numpy().copy()
            if layer.beta is not None:
                groups["bn_beta"][str(j)] = layer.beta.numpy().copy()
        else:
            for i, w in enumerate(layer.weights):
                groups["conv"][f"{j}/{i}"] = w.numpy().copy()
    for i, w in enumerate(model.head.weights):
        groups["head"][str(i)] = w.numpy().copy()
    return groups


def _changed(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    assert a.keys() == b.keys() and a
    return [k for k in a if not np.array_equal(a[k], b[k])]


def _dataset(n_per_class: int, seed: int) -> tf.data.Dataset:
    """Unbatched (image float32 [32, 32, 1] in [-1, 1], label int32): class 1 has a bright square."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, -0.5, (2 * n_per_class, 32, 32, 1)).astype(np.float32)
    y = np.repeat(np.arange(2, dtype=np.int32), n_per_class)
    x[y == 1, 8:24, 8:24] = 0.8
    return tf.data.Dataset.from_tensor_slices((x, y))


@pytest.mark.slow
def test_two_phase_finetune_from_local_backbone(tmp_path, monkeypatch):
    keras.utils.set_random_seed(1)
    source = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(75, 75, 3))
    rng = np.random.default_rng(0)
    for layer in source.layers:  # population statistics unlike a fresh layer's 0 / 1, as ImageNet's are
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0.0, 0.1, layer.moving_mean.shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape).astype(np.float32))
    backbone_file = tmp_path / "backbone.weights.h5"
    source.save_weights(backbone_file)
    source_weights = source.get_weights()

    phases = []  # one entry per fit call: backbone trainable flag, learning rate, snapshots before/after
    fit = TumorClassifier.fit

    def recording_fit(self, *args, **kwargs):
        before = _snapshot(self)
        initial_backbone = self.backbone.get_weights() if not phases else None
        h = fit(self, *args, **kwargs)
        phases.append({"backbone_trainable": self.backbone.trainable,
                       "lr": float(keras.ops.convert_to_numpy(self.optimizer.learning_rate)),
                       "epochs": (kwargs["initial_epoch"], kwargs["epochs"]),
                       "initial_backbone": initial_backbone,
                       "before": before, "after": _snapshot(self)})
        return h

    monkeypatch.setattr(TumorClassifier, "fit", recording_fit)
    config = ClassifierConfig(input_size=75, epochs=2, head_epochs=1, batch_size=8, weights=str(backbone_file),
                              lr_head=1e-3, lr_finetune=1e-4, patience=0, augment=False, seed=0)
    model_path, history = fit_classifier(config, _dataset(8, 0), _dataset(4, 1), CLASSES, [8, 8],
                                         tmp_path / "run", verbose=0)

    assert len(phases) == 2 and len(history["loss"]) == len(history["val_loss"]) == 2
    head, finetune = phases
    assert (head["epochs"], finetune["epochs"]) == ((0, 1), (1, 2))
    assert (head["backbone_trainable"], finetune["backbone_trainable"]) == (False, True)
    assert head["lr"] == pytest.approx(1e-3) and finetune["lr"] == pytest.approx(1e-4)
    # training started from the local backbone file (every variable, BN statistics included)
    assert len(head["initial_backbone"]) == len(source_weights)
    for w, w0 in zip(head["initial_backbone"], source_weights):
        np.testing.assert_array_equal(w, w0)
    initial = head["before"]

    # phase 1: the backbone is frozen, the head learns
    for group in ("conv", "bn_stats", "bn_beta"):
        assert not _changed(head["before"][group], head["after"][group]), group
    assert _changed(head["before"]["head"], head["after"]["head"]) == ["0", "1"]

    # phase 2: convolutions and BN offsets learn, BN moving statistics stay as loaded
    assert not _changed(finetune["before"]["conv"], head["after"]["conv"])  # nothing between the phases
    conv_changed = _changed(finetune["before"]["conv"], finetune["after"]["conv"])
    assert len(conv_changed) == len(finetune["before"]["conv"]), sorted(
        set(finetune["before"]["conv"]) - set(conv_changed))
    assert _changed(finetune["before"]["bn_beta"], finetune["after"]["bn_beta"])
    assert not _changed(initial["bn_stats"], finetune["after"]["bn_stats"])
    assert _changed(finetune["before"]["head"], finetune["after"]["head"])

    # the saved model is the epoch with the lowest validation loss; it loads and predicts finite probabilities
    model = load_classifier(model_path)
    assert model.class_names == CLASSES and model.freeze_batchnorm
    best = phases[int(np.argmin(history["val_loss"]))]["after"]
    loaded = _snapshot(model)
    for group in loaded:
        assert not _changed(loaded[group], best[group]), group
    images = next(iter(_dataset(3, 2).batch(6)))[0]
    _, probs = model.features_and_probs(images)
    probs = probs.numpy()
    assert probs.shape == (6, 2) and np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
