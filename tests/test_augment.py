"""Tests of tfstylegan.augment: transforms, the reference's geometric path, colour on gray and RGB,
channels, gradients, XLA, randomness, ADA. Agreement with stylegan2-ada-pytorch itself (fixed draws,
outputs and gradients) is tests/test_golden_reference.py."""

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from tfstylegan.augment import (DRAWS, AdaController, AugmentPipe, draw_random, geometric_transform,
                                upsample2x, SYM6)
from tfstylegan.ops import upfirdn2d
from tfstylegan.ops.grid_sample import affine_grid, grid_sample
from tfstylegan.ops.random import random_normal, random_uniform
from tfstylegan.utils.errors import UserError

SEED = tf.constant([7, 11], tf.int32)


def _images(n=8, size=8, channels=1, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, [n, size, size, channels]), tf.float32)


def _smooth(n=8, size=16, channels=1, seed=0):
    """Low-frequency images (a few random Gaussian blobs): the 2x sym6 filtering passes them unchanged."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.zeros([n, size, size, channels], np.float32)
    for i in range(n):
        for c in range(channels):
            for _ in range(3):
                cy, cx, s = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.25, 0.4)
                out[i, :, :, c] += rng.uniform(-1, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return tf.constant(out)


def _bits(x):
    return np.asarray(x, np.float32).view(np.uint32)


def _reflect(i, size):
    period = 2 * (size - 1)
    i = np.mod(i, period)
    return np.where(i >= size, period - i, i)


# --------------------------------------------------------------------------------------------
# The ops of the geometric path.

def test_grid_sample_matches_scipy_bilinear_with_zero_padding_and_its_reference():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, [3, 9, 7, 2]).astype(np.float32)
    grid = rng.uniform(-1.3, 1.3, [3, 5, 6, 2]).astype(np.float32)  # some reads fall outside
    y = grid_sample(tf.constant(x), tf.constant(grid)).numpy()
    np.testing.assert_array_equal(grid_sample(tf.constant(x), tf.constant(grid), impl="ref").numpy(), y)
    h, w = 9, 7
    rows, cols = ((grid[..., 1] + 1) * h - 1) / 2, ((grid[..., 0] + 1) * w - 1) / 2  # align_corners=False
    for n in range(3):
        for ch in range(2):
            ref = scipy.ndimage.map_coordinates(x[n, :, :, ch].astype(np.float64), [rows[n], cols[n]], order=1,
                                                mode="grid-constant", cval=0.0)
            np.testing.assert_allclose(y[n, :, :, ch], ref, atol=1e-5)
    # The identity grid reads every pixel centre exactly.
    theta = tf.constant(np.tile([[[1, 0, 0], [0, 1, 0]]], [3, 1, 1]), tf.float32)
    np.testing.assert_allclose(grid_sample(tf.constant(x), affine_grid(theta, 9, 7)).numpy(), x, atol=1e-6)


def test_polyphase_upsample_equals_upfirdn2d():
    x = _images(n=3, size=10, channels=2, seed=5)
    for taps in (list(SYM6), [1, 3, 3, 1], [1, 2, 1]):
        f = upfirdn2d.setup_filter(taps, separable=True)
        np.testing.assert_allclose(upsample2x(x, taps).numpy(), upfirdn2d.upsample2d(x, f, up=2, impl="ref").numpy(),
                                   atol=2e-6)


def test_shrinking_does_not_alias():
    """The reason for the reference's 2x sym6 path: a Nyquist checkerboard shrunk 2x becomes flat gray
    (plain bilinear sampling at native resolution would return the checkerboard itself)."""
    x = (np.indices([32, 32]).sum(0) % 2 * 2 - 1.0).astype(np.float32)[None, :, :, None]
    shrink = tf.constant([[[2, 0, 0], [0, 2, 0], [0, 0, 1]]], tf.float32)  # output reads input at 2x
    y = geometric_transform(tf.constant(x), shrink).numpy()[0, 8:24, 8:24, 0]
    assert np.abs(y).max() < 1e-4


# --------------------------------------------------------------------------------------------
# Identity and pixel blitting (executed, as in the reference, through the filtered path).

def test_p0_is_the_identity_and_p1_changes_every_image():
    x = _images(n=16, channels=2)
    pipe = AugmentPipe.from_spec("bgc", p=0.0)
    y = pipe(x, SEED)
    assert y.shape == x.shape and y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=2e-5)  # sym6 down(up(x)) = x (orthogonal wavelet)
    pipe.p.assign(1.0)
    y = pipe(x, SEED).numpy()
    assert all(not np.allclose(y[i], x[i], atol=1e-2) for i in range(16))
    assert np.isfinite(y).all()


def test_xflip_mirrors():
    """A mirror up to a sub-pixel shift: the reference flips at 2x between the asymmetric sym6 up- and
    down-sampling filters, whose phases no longer cancel (tests/test_golden_reference.py checks the
    exact values)."""
    x = _smooth(n=16).numpy()
    y = AugmentPipe(xflip=1, p=1.0)(x, SEED).numpy()
    flipped = [np.allclose(y[i], x[i, :, ::-1], atol=0.05 * np.abs(x[i]).max()) for i in range(16)]
    kept = [np.allclose(y[i], x[i], atol=2e-5) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)


def test_rotate90_turns_by_quarters():
    """Quarter turns, up to a sub-pixel shift (as xflip: odd turns mirror one axis at 2x)."""
    x = _smooth(n=16, channels=2).numpy()
    y = AugmentPipe(rotate90=1, p=1.0)(x, SEED).numpy()
    turns = set()
    for i in range(16):
        scale = np.abs(x[i]).max()
        k = [k for k in range(4) if np.allclose(y[i], np.rot90(x[i], k, axes=(0, 1)), atol=0.05 * scale)]
        assert len(k) == 1, f"sample {i} is not a quarter turn of its input"
        turns.add(k[0])
    assert len(turns) >= 3


def test_integer_translation_reads_reflected_pixels():
    x = _smooth(n=16, size=16, channels=2, seed=2)
    pipe = AugmentPipe(xint=1, p=1.0)
    params = pipe.draw_params(16, 16, 16, SEED)
    y = pipe.apply(x, params).numpy()
    g_inv, x = params["g_inv"].numpy(), x.numpy()
    shifts = set()
    for i in range(16):
        np.testing.assert_array_equal(g_inv[i, :2, :2], np.eye(2))
        tx, ty = g_inv[i, 0, 2], g_inv[i, 1, 2]  # output pixel (r, c) reads input (r + ty, c + tx)
        assert tx == round(tx) and ty == round(ty) and max(abs(tx), abs(ty)) <= 2  # 0.125 * 16
        rows, cols = _reflect(np.arange(16) + int(ty), 16), _reflect(np.arange(16) + int(tx), 16)
        np.testing.assert_allclose(y[i], x[i][rows][:, cols], atol=2e-3)
        shifts.add((tx, ty))
    assert len(shifts) >= 3


def test_rotation_fires_with_probability_p():
    """ADA's p_rot = 1 - sqrt(1 - p) per rotation makes P(pre or post rotation) = p."""
    pipe = AugmentPipe(rotate=1, p=0.4)
    g_inv = pipe.draw_params(4000, 8, 8, SEED)["g_inv"].numpy()
    rotated = ~np.all(g_inv == np.eye(3), axis=(1, 2))
    assert abs(rotated.mean() - 0.4) < 0.03
    np.testing.assert_allclose(np.linalg.det(g_inv[:, :2, :2]), 1.0, atol=1e-5)  # pure rotations


# --------------------------------------------------------------------------------------------
# Colour ops and channels.

def test_brightness_contrast_and_luma_flip_on_one_channel():
    """On gray, the reference's colour matrix averaged over R, G, B is out = (1 - 2i) * c * (x + b):
    the luma flip (Householder reflection about the luma axis) is an intensity negation."""
    n = 2048
    x = tf.fill([n, 2, 2, 1], 0.25)
    pipe = AugmentPipe(brightness=1, contrast=1, lumaflip=1, p=1.0)
    draws = draw_random(SEED, n)
    y = pipe.apply(x, pipe.params_from_draws(draws, 2, 2)).numpy()
    b = draws["brightness"].numpy() * 0.2
    c = 2.0 ** (draws["contrast"].numpy() * 0.5)
    i = np.floor(draws["lumaflip"].numpy() * 2)
    expected = (1 - 2 * i) * c * (0.25 + b)
    np.testing.assert_allclose(y, np.broadcast_to(expected[:, None, None, None], y.shape), rtol=1e-5, atol=1e-6)
    assert abs(np.std(b) - 0.2) < 0.02 and abs(np.mean(b)) < 0.02  # brightness_std
    assert abs(np.std(np.log2(c)) - 0.5) < 0.04  # contrast_std (log2)
    assert 0.45 < i.mean() < 0.55  # half of the fired flips negate
    pipe.p.assign(0.3)
    params = pipe.draw_params(n, 2, 2, SEED)
    offset = params["color"].numpy()[:, 0, 3]
    assert abs(np.mean(offset != 0) - 0.3) < 0.04  # brightness fires with probability p * multiplier


def test_hue_and_saturation_act_on_rgb_only():
    pipe = AugmentPipe(hue=1, saturation=1, p=1.0)
    gray = _images(n=8, channels=1)
    np.testing.assert_array_equal(pipe(gray, SEED).numpy(), gray.numpy())  # skipped on one channel
    rgb = _images(n=8, channels=3, seed=1)
    y = pipe(rgb, SEED).numpy()
    assert all(not np.allclose(y[i], rgb.numpy()[i], atol=1e-3) for i in range(8))
    # Both keep the luma axis: gray RGB pixels stay gray.
    gray_rgb = tf.tile(gray, [1, 1, 1, 3])
    np.testing.assert_allclose(pipe(gray_rgb, SEED).numpy(), gray_rgb.numpy(), atol=1e-5)


def test_color_ops_leave_mask_channel_alone_and_hit_all_rgb_channels():
    x = _images(n=8, channels=2)
    y = AugmentPipe(brightness=1, contrast=1, p=1.0)(x, SEED).numpy()
    np.testing.assert_array_equal(_bits(y[..., 1]), _bits(x.numpy()[..., 1]))
    assert not np.allclose(y[..., 0], x.numpy()[..., 0])
    rgb = tf.tile(x[..., :1], [1, 1, 1, 3])
    y3 = AugmentPipe(brightness=1, contrast=1, p=1.0)(rgb, SEED).numpy()
    np.testing.assert_allclose(y3[..., 1], y3[..., 0], rtol=1e-6)
    np.testing.assert_allclose(y3[..., 2], y3[..., 0], rtol=1e-6)
    np.testing.assert_allclose(y3[..., 0], y[..., 0], rtol=1e-5, atol=1e-6)


def test_mask_channel_moves_with_the_image_and_is_never_recoloured():
    img = _images(n=16, size=8, channels=1, seed=3)
    mask = tf.where(_images(n=16, size=8, channels=1, seed=4) > 0, 1.0, -1.0)
    x = tf.concat([img, mask], axis=-1)
    pipe = AugmentPipe.from_spec("bgc", p=1.0)
    params = pipe.draw_params(16, 8, 8, SEED)
    y = pipe.apply(x, params).numpy()
    moved = geometric_transform(x, params["g_inv"]).numpy()
    np.testing.assert_array_equal(y[..., 1], moved[..., 1])
    np.testing.assert_array_equal(geometric_transform(mask, params["g_inv"]).numpy()[..., 0], moved[..., 1])


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


def test_draws_are_named_independent_columns():
    draws = draw_random(SEED, 4000)
    assert list(draws) == [name for name, _, _ in DRAWS]
    for name, kind, cols in DRAWS:
        v = draws[name].numpy()
        assert v.shape == ((4000, cols) if cols > 1 else (4000,))
        if kind == "uniform":
            assert v.min() >= 0 and v.max() < 1 and abs(v.mean() - 0.5) < 0.02
        else:
            assert abs(v.mean()) < 0.05 and abs(v.std() - 1) < 0.05
    flat = np.concatenate([draws[name].numpy().reshape(4000, -1) for name, _, _ in DRAWS], axis=1)
    corr = np.corrcoef(flat, rowvar=False)
    assert np.abs(corr - np.eye(len(corr))).max() < 0.1  # no two draws share a stream


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
    np.testing.assert_allclose(step(x).numpy(), x.numpy(), atol=2e-5)
    pipe.p.assign(1.0)
    assert not np.allclose(step(x).numpy(), x.numpy(), atol=1e-2)
    assert step.experimental_get_tracing_count() == 1


def test_bad_arguments_raise_user_errors():
    with pytest.raises(UserError, match="bgcfn"):
        AugmentPipe.from_spec("bgcfn")
    with pytest.raises(UserError, match="p must be in"):
        AugmentPipe(p=1.5)
    with pytest.raises(UserError, match="xflip"):
        AugmentPipe(xflip=-1)
    with pytest.raises(UserError, match="color_channels"):
        AugmentPipe(color_channels=2)
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
        ada.accumulate(confident)
        p = float(ada.update())
        assert p == pytest.approx(step * (i // 4))  # adjusted only every ada_interval iterations
    assert float(ada.rt) == pytest.approx(1.0)
    for _ in range(4):  # rt = 0.5 < target: p falls
        ada.accumulate(tf.constant([[1.0], [1.0], [-1.0], [1.0]]))
        ada.update()
    assert float(ada.rt) == pytest.approx(0.5)
    assert float(pipe.p) == pytest.approx(step)
    for _ in range(40):
        ada.accumulate(-confident)
        ada.update()
        assert float(pipe.p) >= 0.0
    assert float(pipe.p) == 0.0 and float(ada.rt) == pytest.approx(-1.0)


def test_controller_counts_every_accumulated_sign():
    """The statistic is the mean over every real logit since the last adjustment, from however many phases
    (the reference counts Dmain's and Dreg's): 4 + 4 + 4 signs, 10 positive -> rt = (10 - 2) / 12."""
    pipe = AugmentPipe.from_spec("bgc", p=0.2)
    ada = AdaController(pipe, batch_size=4, target=0.6, ada_interval=2, ada_kimg=0.1)
    ada.accumulate(tf.constant([1.0, 1.0, 1.0, 1.0]))  # iteration 1: Dmain
    ada.accumulate(tf.constant([1.0, 1.0, -1.0, 1.0]))  # iteration 1: Dreg
    ada.update()
    ada.accumulate(tf.constant([1.0, -1.0, 1.0, 1.0]))  # iteration 2: Dmain only
    p = float(ada.update())
    assert float(ada.rt) == pytest.approx(8 / 12)
    assert p == pytest.approx(0.2 + 4 * 2 / 100)


def test_controller_clamps_only_below_inside_a_compiled_step():
    """As the reference: p >= 0 only; above 1 every op fires with probability 1 and p keeps its history."""
    pipe = AugmentPipe.from_spec("bgc", p=0.9)
    ada = AdaController(pipe, batch_size=64, ada_interval=2, ada_kimg=0.1)  # steps of 1.28

    @tf.function(jit_compile=True)
    def iteration(logits):
        ada.accumulate(logits)
        return ada.update()

    for _ in range(6):
        iteration(tf.ones([8, 1]))
    assert float(pipe.p) == pytest.approx(0.9 + 3 * 1.28) and float(ada.steps) == 6
    for _ in range(8):
        p = float(iteration(-tf.ones([8, 1])))
        assert p >= 0.0
    assert float(pipe.p) == 0.0
