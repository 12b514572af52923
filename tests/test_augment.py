"""Tests of tfstylegan.augment: exactness of blits, colour formulas, mask handling, gradients, XLA, ADA."""

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from tfstylegan.augment import AdaController, AugmentPipe
from tfstylegan.ops.grid_sample import resample
from tfstylegan.ops.random import random_normal, random_uniform
from tfstylegan.utils.errors import UserError

SEED = tf.constant([7, 11], tf.int32)


def _images(n=8, size=8, channels=1, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, [n, size, size, channels]), tf.float32)


def _bits(x):
    return np.asarray(x, np.float32).view(np.uint32)


def _reflect(i, size):
    period = 2 * (size - 1)
    i = np.mod(i, period)
    return np.where(i >= size, period - i, i)


# --------------------------------------------------------------------------------------------
# Identity and exact pixel blitting.

def test_p0_is_bitwise_identity_and_p1_changes_every_image():
    x = _images(n=16, channels=2)
    pipe = AugmentPipe.from_spec("bgc", p=0.0)
    y = pipe(x, SEED)
    assert y.shape == x.shape and y.dtype == tf.float32
    np.testing.assert_array_equal(_bits(y), _bits(x))
    pipe.p.assign(1.0)
    y = pipe(x, SEED).numpy()
    assert y.shape == x.shape and y.dtype == np.float32
    assert all(not np.allclose(y[i], x[i]) for i in range(16))
    assert np.isfinite(y).all()


def test_xflip_is_an_exact_mirror():
    x = _images(n=16).numpy()
    y = AugmentPipe(xflip=1, p=1.0)(x, SEED).numpy()
    flipped = [np.array_equal(y[i], x[i, :, ::-1]) for i in range(16)]
    kept = [np.array_equal(y[i], x[i]) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)


def test_rotate90_permutes_pixels_exactly():
    x = _images(n=16, size=6, channels=2).numpy()
    y = AugmentPipe(rotate90=1, p=1.0)(x, SEED).numpy()
    turns = set()
    for i in range(16):
        np.testing.assert_array_equal(np.sort(y[i], axis=None), np.sort(x[i], axis=None))  # a permutation
        k = [k for k in range(4) if np.array_equal(y[i], np.rot90(x[i], k, axes=(0, 1)))]
        assert len(k) == 1, f"sample {i} is not a quarter turn of its input"
        turns.add(k[0])
    assert len(turns) >= 3


def test_integer_translation_copies_reflected_pixels():
    x = _images(n=16, size=8, channels=2)
    pipe = AugmentPipe(xint=1, p=1.0)
    params = pipe.draw_params(16, 8, 8, SEED)
    y = pipe.apply(x, params).numpy()
    g_inv, x = params["g_inv"].numpy(), x.numpy()
    shifts = set()
    for i in range(16):
        np.testing.assert_array_equal(g_inv[i, :2, :2], np.eye(2))
        tx, ty = g_inv[i, 0, 2], g_inv[i, 1, 2]  # output pixel (r, c) reads input (r + ty, c + tx)
        assert tx == round(tx) and ty == round(ty) and max(abs(tx), abs(ty)) <= 1  # 0.125 * 8
        rows = _reflect(np.arange(8) + int(ty), 8)
        cols = _reflect(np.arange(8) + int(tx), 8)
        np.testing.assert_array_equal(y[i], x[i][rows][:, cols])  # no interpolation blur
        assert np.isin(y[i], x[i]).all()
        shifts.add((tx, ty))
    assert len(shifts) >= 3


def test_resample_matches_scipy_bilinear_with_mirror_padding():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, [3, 9, 7, 2]).astype(np.float32)
    g_inv = np.tile(np.eye(3, dtype=np.float32), [3, 1, 1])
    g_inv[:, :2, :] += rng.normal(0, 0.4, [3, 2, 3]).astype(np.float32)
    y = resample(tf.constant(x), tf.constant(g_inv)).numpy()
    h, w = 9, 7
    ys, xs = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    for n in range(3):
        src = np.einsum("ij,jhw->ihw", g_inv[n].astype(np.float64), np.stack([xs, ys, np.ones_like(xs)]))
        coords = [src[1] + (h - 1) / 2, src[0] + (w - 1) / 2]  # (row, col)
        for ch in range(2):
            ref = scipy.ndimage.map_coordinates(x[n, :, :, ch].astype(np.float64), coords, order=1, mode="mirror")
            np.testing.assert_allclose(y[n, :, :, ch], ref, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Colour ops and channels.

def test_brightness_and_contrast_formulas_on_constant_images():
    n = 2048
    x = tf.fill([n, 2, 2, 1], 0.25)
    pipe = AugmentPipe(brightness=1, contrast=1, p=1.0)
    params = pipe.draw_params(n, 2, 2, SEED)
    y = pipe.apply(x, params).numpy()
    b, c = params["brightness"].numpy(), params["contrast"].numpy()
    np.testing.assert_allclose(y, np.broadcast_to(((0.25 + b) * c)[:, None, None, None], y.shape), rtol=1e-6)
    assert abs(np.std(b) - 0.2) < 0.02 and abs(np.mean(b)) < 0.02  # brightness_std
    assert abs(np.std(np.log2(c)) - 0.5) < 0.04 and abs(np.mean(np.log2(c))) < 0.04  # contrast_std (log2)
    np.testing.assert_array_equal(params["g_inv"].numpy(), np.tile(np.eye(3), [n, 1, 1]))  # no geometry
    pipe.p.assign(0.3)
    b = pipe.draw_params(n, 2, 2, SEED)["brightness"].numpy()
    assert abs(np.mean(b != 0) - 0.3) < 0.04  # fires with probability p * multiplier


def test_color_ops_leave_mask_channel_alone_and_hit_all_rgb_channels():
    x = _images(n=8, channels=2)
    y = AugmentPipe(brightness=1, contrast=1, p=1.0)(x, SEED).numpy()
    np.testing.assert_array_equal(_bits(y[..., 1]), _bits(x.numpy()[..., 1]))
    assert not np.allclose(y[..., 0], x.numpy()[..., 0])
    rgb = tf.tile(x[..., :1], [1, 1, 1, 3])
    y3 = AugmentPipe(brightness=1, contrast=1, p=1.0)(rgb, SEED).numpy()
    np.testing.assert_array_equal(y3[..., 1], y3[..., 0])
    np.testing.assert_array_equal(y3[..., 2], y3[..., 0])
    np.testing.assert_allclose(y3[..., 0], y[..., 0], rtol=1e-6)


def test_mask_channel_moves_with_the_image():
    img = _images(n=16, size=8, channels=1, seed=3)
    mask = tf.where(_images(n=16, size=8, channels=1, seed=4) > 0, 1.0, -1.0)
    x = tf.concat([img, mask], axis=-1)
    # Blits keep a binary mask binary, and move it exactly like the image.
    y = AugmentPipe.from_spec("blit", p=1.0)(tf.concat([mask, mask], axis=-1), SEED).numpy()
    assert set(np.unique(y)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(y[..., 0], y[..., 1])
    # Full bgc: the mask is the geometric transform of the input mask, never recoloured.
    pipe = AugmentPipe.from_spec("bgc", p=1.0)
    params = pipe.draw_params(16, 8, 8, SEED)
    y = pipe.apply(x, params).numpy()
    geom_only = resample(mask, params["g_inv"]).numpy()[..., 0]
    identity = np.all(params["g_inv"].numpy() == np.eye(3), axis=(1, 2))
    geom_only[identity] = mask.numpy()[identity, ..., 0]
    np.testing.assert_array_equal(y[..., 1], geom_only)
    assert y[..., 1].min() >= -1 and y[..., 1].max() <= 1


def test_rotation_fires_with_probability_p():
    """ADA's p_rot = 1 - sqrt(1 - p) per rotation makes P(pre or post rotation) = p."""
    pipe = AugmentPipe(rotate=1, p=0.4)
    g_inv = pipe.draw_params(4000, 8, 8, SEED)["g_inv"].numpy()
    rotated = ~np.all(g_inv == np.eye(3), axis=(1, 2))
    assert abs(rotated.mean() - 0.4) < 0.03
    np.testing.assert_allclose(np.linalg.det(g_inv[:, :2, :2]), 1.0, atol=1e-5)  # pure rotations


# --------------------------------------------------------------------------------------------
# Gradients, XLA, reproducibility.

def test_first_and_second_order_gradients_under_xla():
    x = _images(n=4, size=8, channels=2)
    pipe = AugmentPipe.from_spec("bgc", p=1.0)
    w = tf.Variable(tf.random.stateless_normal([3, 3, 2, 4], seed=[1, 2]))

    @tf.function(jit_compile=True)
    def r1(x):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                logits = tf.reduce_sum(tf.nn.softplus(tf.nn.conv2d(pipe(x, SEED), w, 1, "SAME")))
            grad_x = inner.gradient(logits, x)
            penalty = tf.reduce_sum(tf.square(grad_x))
        return grad_x, outer.gradient(penalty, w)

    grad_x, grad_w = r1(x)
    for g in (grad_x, grad_w):
        assert np.isfinite(g.numpy()).all() and np.abs(g.numpy()).sum() > 0
    # The first-order gradient is the true adjoint of the (linear) augmentation.
    v = tf.random.stateless_normal(x.shape, seed=[3, 4])
    with tf.GradientTape() as tape:
        tape.watch(x)
        geometric = AugmentPipe.from_spec("bg", p=1.0)
        inner_product = tf.reduce_sum(geometric(x, SEED) * v)
    np.testing.assert_allclose(float(tf.reduce_sum(x * tape.gradient(inner_product, x))), float(inner_product),
                               rtol=1e-4)


def test_xla_matches_eager_and_seeds_reproduce():
    x = _images(n=8, size=16, channels=2)
    pipe = AugmentPipe.from_spec("bgc", p=0.8)
    eager = pipe(x, SEED).numpy()
    compiled = tf.function(lambda x, s: pipe(x, s), jit_compile=True)(x, SEED).numpy()
    np.testing.assert_allclose(compiled, eager, atol=1e-4)
    np.testing.assert_array_equal(pipe(x, SEED).numpy(), eager)
    assert not np.allclose(pipe(x, tf.constant([7, 12])).numpy(), eager)
    # Random numbers for sample i do not depend on the batch size, and are exactly equal in XLA.
    u = random_uniform(SEED, 8, 5)
    np.testing.assert_array_equal(random_uniform(SEED, 3, 5).numpy(), u.numpy()[:3])
    np.testing.assert_array_equal(tf.function(random_uniform, jit_compile=True)(SEED, 8, 5).numpy(), u.numpy())
    z = random_normal(SEED, 4000, 2).numpy()
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_generator_state_and_p_are_checkpointed(tmp_path):
    x = _images(n=4)
    pipe = AugmentPipe.from_spec("bgc", p=0.7, seed=5)
    ckpt = tf.train.Checkpoint(pipe=pipe)
    path = ckpt.write(str(tmp_path / "ckpt"))
    first = pipe(x).numpy()
    assert not np.array_equal(pipe(x).numpy(), first)  # the generator advances
    pipe.p.assign(0.1)
    ckpt.read(path).assert_consumed()
    assert float(pipe.p) == pytest.approx(0.7)
    np.testing.assert_array_equal(pipe(x).numpy(), first)


def test_changing_p_does_not_retrace():
    x = _images(n=4)
    pipe = AugmentPipe.from_spec("bgc", p=0.0)
    step = tf.function(lambda x: pipe(x, SEED))
    np.testing.assert_array_equal(step(x).numpy(), x.numpy())
    pipe.p.assign(1.0)
    assert not np.allclose(step(x).numpy(), x.numpy())
    assert step.experimental_get_tracing_count() == 1


def test_bad_arguments_raise_user_errors():
    with pytest.raises(UserError, match="bgcfn"):
        AugmentPipe.from_spec("bgcfn")
    with pytest.raises(UserError, match="p must be in"):
        AugmentPipe(p=1.5)
    with pytest.raises(UserError, match="xflip"):
        AugmentPipe(xflip=-1)
    with pytest.raises(UserError, match="batch_size"):
        AdaController(AugmentPipe(), batch_size=0)


# --------------------------------------------------------------------------------------------
# ADA controller.

def test_controller_raises_p_when_d_overfits_and_lowers_it_otherwise():
    pipe = AugmentPipe.from_spec("bgc", p=0.0)
    ada = AdaController(pipe, batch_size=4, target=0.6, ada_interval=4, ada_kimg=0.1)
    step = ada.step_size
    assert step == pytest.approx(4 * 4 / 100)
    confident = tf.constant([[2.0], [1.0], [3.0], [0.5]])
    for i in range(1, 9):
        p = float(ada.update(confident))
        assert p == pytest.approx(step * (i // 4))  # adjusted only every ada_interval steps
    assert float(ada.rt) == pytest.approx(1.0)
    mixed = tf.constant([[1.0], [1.0], [-1.0], [1.0]])  # rt = 0.5 < target: p falls
    for _ in range(4):
        ada.update(mixed)
    assert float(ada.rt) == pytest.approx(0.5)
    assert float(pipe.p) == pytest.approx(step)
    for _ in range(40):
        ada.update(-confident)
        assert 0.0 <= float(pipe.p) <= 1.0
    assert float(pipe.p) == 0.0 and float(ada.rt) == pytest.approx(-1.0)


def test_controller_clips_at_one_inside_a_compiled_step():
    pipe = AugmentPipe.from_spec("bgc", p=0.9)
    ada = AdaController(pipe, batch_size=64, ada_interval=2, ada_kimg=0.1)  # steps of 1.28
    update = tf.function(ada.update, jit_compile=True)
    for _ in range(6):
        p = float(update(tf.ones([8, 1])))
        assert 0.0 <= p <= 1.0
    assert float(pipe.p) == 1.0 and float(ada.steps) == 6
