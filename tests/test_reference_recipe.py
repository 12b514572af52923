"""The parts of stylegan2-ada-pytorch's training recipe that are behaviours and settings rather than numbers
to compare with a golden (tests/test_golden_reference.py has those)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.config import get_preset, resolve_preset
from tfstylegan.data.classes import ClassLayout
from tfstylegan.networks.synthesis import SynthesisLayer
from tfstylegan.training.phases import nan_to_num
from tfstylegan.training.trainer import build_trainer

REPO = Path(__file__).resolve().parents[1]
MANIFEST = {"resolution": 32, "has_mask": False}
LAYOUT = ClassLayout(("glioma",), 0, ())


def _tiny_trainer(**train_changes):
    preset = resolve_preset("tiny", {"resolution": 16, "has_mask": False}, LAYOUT, False, train_changes)
    return build_trainer(preset, LAYOUT, tf.distribute.get_strategy())


@pytest.fixture
def restore_tf32():
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    yield
    tf.config.experimental.enable_tensor_float_32_execution(before)


def test_tf32_is_off_unless_allowed(restore_tf32):
    tf.config.experimental.enable_tensor_float_32_execution(True)  # TF's own default
    _tiny_trainer()
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
    _tiny_trainer(allow_tf32=True)
    assert tf.config.experimental.tensor_float_32_execution_enabled()


def test_mixed_precision_defaults_to_on_with_a_gpu_for_the_reference_presets():
    for name in ("auto", "stylegan2", "paper256", "paper512", "paper1024", "cifar"):
        on = resolve_preset(name, MANIFEST, LAYOUT, False, has_gpu=True)
        assert on.train.mixed_precision is True
        assert (on.generator.num_fp16_res, on.generator.conv_clamp) == (4, 256)
        assert (on.discriminator.num_fp16_res, on.discriminator.conv_clamp) == (4, 256)
        off = resolve_preset(name, MANIFEST, LAYOUT, False, has_gpu=False)  # CPU: the reference's --fp32
        assert off.train.mixed_precision is False
        assert (off.generator.num_fp16_res, off.generator.conv_clamp) == (0, None)
        assert (off.discriminator.num_fp16_res, off.discriminator.conv_clamp) == (0, None)
        forced_off = resolve_preset(name, MANIFEST, LAYOUT, False, {"mixed_precision": False}, has_gpu=True)
        assert forced_off.train.mixed_precision is False and forced_off.generator.num_fp16_res == 0
    for name in ("tiny", "demo", "bench32"):  # CPU presets: off even with a GPU, unless asked for
        assert resolve_preset(name, MANIFEST, LAYOUT, False, has_gpu=True).train.mixed_precision is False
        asked = resolve_preset(name, MANIFEST, LAYOUT, False, {"mixed_precision": True}, has_gpu=False)
        assert asked.train.mixed_precision is True and asked.generator.num_fp16_res == 4
    assert get_preset("auto").train.mixed_precision is None  # decided when the run starts


def test_lazy_regularisation_correction_applies_with_zero_weights():
    """The reference builds Greg/Dreg phases (and corrects Adam: lr * c, beta ** c, c = k / (k + 1))
    whether or not gamma or pl_weight is 0."""
    trainer = _tiny_trainer(r1_gamma=0.0, pl_weight=0.0, pl_interval=4, r1_interval=16)
    assert float(trainer.opt_G.learning_rate) == pytest.approx(0.0025 * 4 / 5)
    assert float(trainer.opt_D.learning_rate) == pytest.approx(0.0025 * 16 / 17)
    assert trainer.opt_D.beta_2 == pytest.approx(0.99 ** (16 / 17))


def test_gradients_are_sanitised_as_torch_nan_to_num():
    g = tf.constant([np.nan, np.inf, -np.inf, 3e6, -2.0, 0.0], tf.float32)
    np.testing.assert_array_equal(nan_to_num(g).numpy(), [0.0, 1e5, -1e5, 3e6, -2.0, 0.0])


def test_a_nonfinite_gradient_does_not_poison_adam():
    """A phase whose loss gradient is NaN/inf for some weights still steps every finite weight, and
    leaves finite weights and optimizer slots (the reference's nan_to_num before each step)."""
    trainer = _tiny_trainer()
    variables = trainer.D.trainable_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(variables[0]) * tf.constant(np.inf) + tf.reduce_sum((variables[1] + 1) ** 2)
    grads = trainer._grads(tape, loss, variables)
    assert np.isfinite(grads[0].numpy()).all() and np.abs(grads[0].numpy()).max() == 1e5
    before = [v.numpy().copy() for v in variables[:2]]
    trainer.opt_D.apply(grads, variables)
    for v, b in zip(variables[:2], before):
        assert np.isfinite(v.numpy()).all() and not np.array_equal(v.numpy(), b)
    assert all(np.isfinite(s.numpy()).all() for s in trainer.opt_D.variables)


def test_modulation_is_float32_under_mixed_precision():
    """Styles whose products with the (pre-normalised) weights square below float16's smallest number:
    in float16 the demodulation is rsqrt(0) = inf; the reference computes it in float32 and casts only
    for the convolution, and so does SynthesisLayer under the mixed_float16 policy."""
    rng = np.random.default_rng(0)
    in_ch, out_ch = 64, 4
    weight = (rng.standard_normal([3, 3, in_ch, out_ch]) * 1e-3).astype(np.float32)
    weight[1, 1, 0, :] = 1.0  # the largest weight of every column sits on input channel 0 ...
    styles = np.ones([in_ch], np.float32)
    styles[0] = 1e-3  # ... whose style is small: every term s^2 w^2 of the demodulation is ~2e-9
    x = rng.standard_normal([2, 8, 8, in_ch]).astype(np.float32)
    w = tf.random.normal([2, 8])

    def layer_output(policy):
        keras.mixed_precision.set_dtype_policy(policy)  # the autouse fixture restores float32
        layer = SynthesisLayer(in_ch, out_ch, w_dim=8, resolution=8)
        layer.weight.assign(weight)
        layer.affine.weight.assign(tf.zeros_like(layer.affine.weight))  # styles = the affine's bias
        layer.affine.bias.assign(styles)
        assert layer.weight.dtype == "float32"
        return layer(tf.constant(x, layer.compute_dtype), w, noise_mode="none").numpy().astype(np.float32)

    full, half = layer_output("float32"), layer_output("mixed_float16")
    assert np.isfinite(half).all()
    np.testing.assert_allclose(half, full, rtol=0, atol=2e-2 * np.abs(full).max())
    # What float16 (de)modulation would have given (pre-normalised as ADA, then demodulated):
    w16 = tf.cast(weight / np.abs(weight).max(axis=(0, 1, 2), keepdims=True) / np.sqrt(9 * in_ch), tf.float16)
    s16 = tf.cast(styles[None] / styles.max(), tf.float16)
    dcoefs16 = tf.math.rsqrt(tf.matmul(tf.square(s16), tf.reduce_sum(tf.square(w16), axis=[0, 1])) + 1e-8)
    assert not np.isfinite(dcoefs16.numpy()).all()


def test_evaluation_draws_random_synthesis_noise_by_default():
    """What the model samples, as the reference's metrics; 'const' stays an option."""
    from tfstylegan.apps.evaluation.run import EvaluationConfig

    assert EvaluationConfig().noise_mode == "random"
    assert EvaluationConfig(noise_mode="const").noise_mode == "const"
    code = "from absl import flags; import launchers.evaluate; print(flags.FLAGS['noise_mode'].default)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))  # its own process: absl flags are global
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "random"
