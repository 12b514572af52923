"""Classifier training: config checks, class weights, and a phantom run that must beat chance on held-out patients."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from classifier.model import load_classifier
from classifier.training import ClassifierConfig, class_weights, make_augmentation, train_classifier
from tfstylegan.utils.errors import UserError


def test_config_validation_and_round_trip():
    c = ClassifierConfig(input_size=75, epochs=3, head_epochs=1, weights="none")
    assert ClassifierConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(UserError, match="head_epochs"):
        ClassifierConfig(epochs=3, head_epochs=4)
    with pytest.raises(UserError, match="input_size >= 75"):
        ClassifierConfig(input_size=32)
    with pytest.raises(UserError, match="unknown fields"):
        ClassifierConfig.from_dict({"lr": 1.0})


def test_class_weights_by_hand():
    # Figshare: 708 meningioma, 1426 glioma, 930 pituitary; w_k = 3064 / (3 * n_k).
    w = class_weights([708, 1426, 930])
    np.testing.assert_allclose(w, [3064 / 2124, 3064 / 4278, 3064 / 2790], rtol=1e-6)
    np.testing.assert_allclose(np.dot(w, [708, 1426, 930]), 3064, rtol=1e-6)  # mean weight 1 per example
    np.testing.assert_allclose(class_weights([4, 0, 2]), [6 / 8, 0, 6 / 4], rtol=1e-6)


def test_augmentation_keeps_shape_and_range():
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    y = make_augmentation(0)(x, training=True).numpy()
    assert y.shape == x.shape and y.min() >= -1.0 - 1e-5 and y.max() <= 1.0 + 1e-5
    assert not np.allclose(x, y)


@pytest.fixture(scope="module")
def phantom_data(tmp_path_factory):
    """8 phantom patients per class x 3 slices at 64x64, split by patient 4/2/2 per class."""
    from tfstylegan.data.phantom import write_phantom_dataset
    from tfstylegan.data.prepare import prepare

    root = tmp_path_factory.mktemp("phantom")
    write_phantom_dataset(root / "src", num_patients_per_class=8, slices_per_patient=3, size=128, progress=False)
    prepare(root / "src", root / "data", resolution=64, split=(0.5, 0.25, 0.25), progress=False)
    return root / "data"


@pytest.mark.slow
def test_train_on_phantoms_beats_chance(phantom_data, tmp_path):
    manifest = json.loads((phantom_data / "manifest.json").read_text())
    train_ids, test_ids = set(manifest["patients"]["train"]), set(manifest["patients"]["test"])
    assert train_ids and test_ids and not train_ids & test_ids  # a held-out patient split
    config = ClassifierConfig(input_size=75, epochs=4, head_epochs=0, batch_size=12, weights="none",
                              patience=0, seed=0)
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("an earlier run")  # --overwrite replaces it when the new run completes
    start = time.perf_counter()
    run = train_classifier(config, phantom_data, out, verbose=0, overwrite=True)
    seconds = time.perf_counter() - start
    assert run.model_path == out / "classifier.keras" and not (out / "old.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary folder left
    assert f"--out={out}" in json.loads((out / "config.json").read_text())["command"]  # the final name
    for name in ("classifier.keras", "metrics.json", "confusion_matrix.png", "config.json"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_examples"] == 18
    assert np.sum(metrics["confusion_matrix"]) == 18
    # Chance is 1/3 on three balanced classes.
    assert metrics["accuracy"] >= 0.6, (metrics, run.history, seconds)
    model = load_classifier(out / "classifier.keras")
    assert model.class_names == ("meningioma", "glioma", "pituitary")
    with pytest.raises(UserError, match="not empty.*--overwrite"):
        train_classifier(config, phantom_data, out)


def test_overwrite_keeps_the_old_folder_when_the_new_run_fails(phantom_data, tmp_path, monkeypatch):
    import classifier.training as training

    out = tmp_path / "judge"
    out.mkdir()
    (out / "old.txt").write_text("the previous run")
    config = ClassifierConfig(input_size=75, epochs=1, head_epochs=0, batch_size=12, weights="none", patience=0)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "fit_classifier", killed)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config, phantom_data, out, verbose=0, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["judge"] and [p.name for p in out.iterdir()] == ["old.txt"]


def test_launcher_reports_user_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "launchers.train_classifier", f"--data={tmp_path / 'nothing'}",
                           f"--out={tmp_path / 'out'}", "--weights=none", "--input_size=75"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "error:" in proc.stderr and "nothing" in proc.stderr and "Traceback" not in proc.stderr


# --- training on mixtures (real + extra datasets) ----------------------------------------------------------------

def test_training_mixture_validation_and_counts():
    from classifier.training import TrainingMixture

    assert TrainingMixture().to_dict() == {"extra_data": [], "extra_ratio": 0.0, "extra_per_class": 0,
                                           "real_train": True}
    with pytest.raises(UserError, match="not both"):
        TrainingMixture(extra_data=("s",), extra_ratio=1.0, extra_per_class=5)
    with pytest.raises(UserError, match="need --extra_data"):
        TrainingMixture(extra_ratio=0.5)
    with pytest.raises(UserError, match="nothing to train on"):
        TrainingMixture(real_train=False)
    with pytest.raises(UserError, match="finite"):
        TrainingMixture(extra_data=("s",), extra_ratio=float("inf"))
    with pytest.raises(UserError, match="twice"):
        TrainingMixture(extra_data=("s", "s"))
    assert TrainingMixture(extra_data=("s",), extra_ratio=1.5).extra_count(real_count=7, available=100) == 10
    assert TrainingMixture(extra_data=("s",), extra_per_class=4).extra_count(real_count=7, available=100) == 4
    assert TrainingMixture(extra_data=("s",)).extra_count(real_count=7, available=100) == 100


def test_command_line_names_the_launcher_flags():
    from classifier.training import TrainingMixture, command_line

    config = ClassifierConfig(input_size=80, epochs=3, head_epochs=1, batch_size=12, weights="none", augment=False,
                              seed=4)
    argv = command_line(config, "data", "out", TrainingMixture(extra_data=("a", "b"), extra_ratio=0.5,
                                                               real_train=False))
    assert argv[:5] == ["python", "-m", "launchers.train_classifier", "--data=data", "--out=out"]
    for flag in ("--input_size=80", "--epochs=3", "--head_epochs=1", "--batch=12", "--weights=none", "--noaugment",
                 "--class_weights", "--seed=4", "--extra_data=a,b", "--extra_ratio=0.5", "--noreal_train"):
        assert flag in argv, flag
    # every flag is one the launcher defines (a boolean's --noflag included)
    source = (Path(__file__).resolve().parents[1] / "launchers" / "train_classifier.py").read_text(encoding="utf-8")
    for arg in argv[3:]:
        name = arg[2:].split("=")[0]
        assert f'("{name}"' in source or (name.startswith("no") and f'_boolean("{name[2:]}"' in source), arg


def test_mixture_errors_before_training(phantom_data, tmp_path):
    import shutil

    from classifier.training import TrainingMixture

    config = ClassifierConfig(input_size=75, epochs=1, head_epochs=0, weights="none")
    with pytest.raises(UserError, match="is the real --data itself"):
        train_classifier(config, phantom_data, tmp_path / "a", mixture=TrainingMixture(extra_data=(str(phantom_data),)))
    other = tmp_path / "other"
    shutil.copytree(phantom_data, other)
    with pytest.raises(UserError, match="has 12 training slices of 'meningioma'; 13 were asked for"):
        train_classifier(config, phantom_data, tmp_path / "b",
                         mixture=TrainingMixture(extra_data=(str(other),), extra_per_class=13))
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["resolution"] = 32
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="is 32x32"):
        train_classifier(config, phantom_data, tmp_path / "c", mixture=TrainingMixture(extra_data=(str(other),)))
    assert not any((tmp_path / d).exists() for d in "abc")


@pytest.mark.slow
def test_train_on_real_plus_extra_data_validates_and_tests_on_real(phantom_data, tmp_path):
    """A second prepared dataset as extra training data: counts per source, real val/test, labels intact."""
    import shutil

    from classifier.training import TrainingMixture

    extra = tmp_path / "extra"
    shutil.copytree(phantom_data, extra)
    config = ClassifierConfig(input_size=75, epochs=1, head_epochs=0, batch_size=16, weights="none", patience=0)
    mixture = TrainingMixture(extra_data=(str(extra),), extra_ratio=0.5)
    run = train_classifier(config, phantom_data, tmp_path / "run", verbose=0, mixture=mixture)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train_sources"][1]["counts"] == {"meningioma": 6, "glioma": 6, "pituitary": 6}
    assert saved["train_counts"] == {"meningioma": 18, "glioma": 18, "pituitary": 18}
    assert run.metrics["num_train"] == 54 and run.metrics["split"] == "test" and run.metrics["num_examples"] == 18
    assert saved["command"][2] == "launchers.train_classifier" and "--extra_ratio=0.5" in saved["command"]


def test_augmented_training_batches_are_the_same_on_every_run():
    """The same seed gives the same augmented batches, epoch after epoch (the judge's losses repeat)."""
    import tensorflow as tf

    from classifier.training import make_train_dataset

    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (48, 32, 32, 1)).astype(np.float32)
    labels = rng.integers(0, 3, 48).astype(np.int32)
    config = ClassifierConfig(batch_size=4, seed=5)

    def epochs():
        ds = make_train_dataset(tf.data.Dataset.from_tensor_slices((images, labels)), config, None, 48)
        return [np.concatenate([x.numpy().ravel() for x, _, _ in ds]) for _ in range(3)]

    first, second = epochs(), epochs()
    assert not np.array_equal(first[0], first[1])  # augmented afresh each epoch
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
