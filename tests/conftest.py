"""Test setup shared by every test module.

Two logical CPU devices are configured before TensorFlow initialises so that
MirroredStrategy can be tested without GPUs (REFERENCE.md: TF 2.21 facts).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
except RuntimeError:  # already initialised by an earlier import; single device then
    pass


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends under the float32 policy, whatever it changed."""
    import keras

    keras.mixed_precision.set_dtype_policy("float32")
    yield
    keras.mixed_precision.set_dtype_policy("float32")


# --- shared assets (session-scoped: built once, read-only for every test that uses them) ---------------------

TUMOR_CLASSES = ("meningioma", "glioma", "pituitary")


@pytest.fixture(scope="session")
def phantom_data(tmp_path_factory):
    """A prepared 16x16 phantom dataset with masks (4 patients x 2 slices per class, split 60/20/20 by patient)."""
    from pathlib import Path

    from _train_worker import make_tiny_dataset

    return Path(make_tiny_dataset(tmp_path_factory.mktemp("phantom16")))


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """Randomly initialised `tiny` checkpoints: per-class 'meningioma' and 'glioma', 'mask' (glioma, image +
    mask), and 'cond' (conditional over the three classes)."""
    from _checkpoints import save_tiny

    from tfstylegan.config import get_preset

    root = tmp_path_factory.mktemp("tiny_checkpoints")
    tiny = get_preset("tiny")
    return {
        "meningioma": save_tiny(root / "meningioma", tiny, ["meningioma"], "meningioma", False),
        "glioma": save_tiny(root / "glioma", tiny, ["glioma"], "glioma", False),
        "mask": save_tiny(root / "mask", tiny.with_data(img_channels=2), ["glioma"], "glioma", False, True),
        "cond": save_tiny(root / "cond", tiny.with_data(c_dim=3), list(TUMOR_CLASSES), None, True),
    }


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory):
    """A randomly initialised InceptionV3 judge for the three classes at 75 px, saved as .keras."""
    from classifier.model import build_classifier, save_classifier

    path = tmp_path_factory.mktemp("tiny_judge") / "judge.keras"
    save_classifier(build_classifier(list(TUMOR_CLASSES), input_size=75, freeze_batchnorm=False), path)
    return path
