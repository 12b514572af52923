"""Tests for tfstylegan.ops: fast paths vs references, references vs numpy, gradients, XLA."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.ops import bias_act as bias_act_lib
from tfstylegan.ops import upfirdn2d
from tfstylegan.ops.bias_act import bias_act
from tfstylegan.ops.conv2d_resample import conv2d_resample
from tfstylegan.ops.modulated_conv2d import modulated_conv2d

SQRT2 = np.sqrt(2)
FIR = [1, 3, 3, 1]


def _rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------
# Numpy versions of ADA's algorithms, written independently of the TF code.

def np_upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """ADA's upfirdn2d on NHWC numpy arrays: zero-insert, pad/crop, FIR, decimate."""
    upx, upy = (up, up) if np.isscalar(up) else up
    downx, downy = (down, down) if np.isscalar(down) else down
    if np.isscalar(padding):
        padding = [padding] * 4
    x0, x1, y0, y1 = padding
    n, h, w, c = x.shape
    z = np.zeros([n, h * upy, w * upx, c])
    z[:, ::upy, ::upx] = x
    z = np.pad(z, [(0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0)), (0, 0)])
    z = z[:, max(-y0, 0):z.shape[1] - max(-y1, 0), max(-x0, 0):z.shape[2] - max(-x1, 0)]
    f = np.ones([1, 1]) if f is None else np.asarray(f, np.float64)
    f = f * gain ** (f.ndim / 2)
    if f.ndim == 1:
        f = np.outer(f, f)
    if not flip_filter:
        f = f[::-1, ::-1]
    fh, fw = f.shape
    out_h, out_w = z.shape[1] - fh + 1, z.shape[2] - fw + 1
    if out_h < 1 or out_w < 1:
        return np.zeros([n, 0, 0, c])
    y = np.zeros([n, out_h, out_w, c])
    for i in range(fh):
        for j in range(fw):
            y += f[i, j] * z[:, i:i + out_h, j:j + out_w]
    return y[:, ::downy, ::downx]


def np_correlate(x, w, groups=1):
    """VALID grouped correlation of x [N, H, W, I] with w [kh, kw, I/groups, O]."""
    kh, kw, ipg, out = w.shape
    opg = out // groups
    n, h, wd, _ = x.shape
    y = np.zeros([n, h - kh + 1, wd - kw + 1, out])
    for g in range(groups):
        xg = x[..., g * ipg:(g + 1) * ipg]
        for a in range(kh):
            for b in range(kw):
                y[..., g * opg:(g + 1) * opg] += np.einsum(
                    'nhwi,io->nhwo', xg[:, a:a + y.shape[1], b:b + y.shape[2]], w[a, b, :, g * opg:(g + 1) * opg])
    return y


def np_conv2d_resample(x, w, f, up, down, pad, groups=1, flip_weight=True):
    """ADA's generic algorithm: zero-insert + FIR + pad -> correlation -> FIR + decimate."""
    fh, fw = np.asarray(f).shape
    p0 = p1 = pad
    if up > 1:
        p0, p1 = p0 + (fw + up - 1) // 2, p1 + (fw - up) // 2
    if down > 1:
        p0, p1 = p0 + (fw - down + 1) // 2, p1 + (fw - down) // 2
    x = np_upfirdn2d(x, f if up > 1 else None, up=up, padding=[p0, p1, p0, p1], gain=up ** 2)
    x = np_correlate(x, w if flip_weight else w[::-1, ::-1], groups)
    if down > 1:
        x = np_upfirdn2d(x, f, down=down)
    return x


def _grad(fn, *args):
    """Gradient of sum(fn(*args) * fixed random weights) with respect to every argument."""
    args = [tf.convert_to_tensor(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(args)
        y = fn(*args)
        probe = tf.constant(_rng(7).standard_normal(y.shape.as_list()), y.dtype)
        loss = tf.reduce_sum(y * probe)
    return [g.numpy() for g in tape.gradient(loss, args)]


# ----------------------------------------------------------------------------
# upfirdn2d

def test_setup_filter():
    f = upfirdn2d.setup_filter(FIR).numpy()
    np.testing.assert_allclose(f, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64, rtol=1e-6)
    assert f.dtype == np.float32 and f.shape == (4, 4)
    assert upfirdn2d.setup_filter(np.arange(1, 9)).shape == (8,)  # >= 8 taps: separable
    np.testing.assert_allclose(upfirdn2d.setup_filter([1, 2], gain=4, separable=True).numpy(), [2 / 3, 4 / 3])
    np.testing.assert_allclose(upfirdn2d.setup_filter([[1, 2], [3, 4]], normalize=False, flip_filter=True).numpy(),
                               [[4, 3], [2, 1]])
    np.testing.assert_array_equal(upfirdn2d.setup_filter(None).numpy(), [[1]])


def test_upsample_downsample_hand_computed():
    """Box filter [1, 1]: upsample2d is nearest-neighbour, downsample2d is 2x2 averaging."""
    img = np.array([[1., 2.], [3., 4.]])[None, :, :, None]
    box = upfirdn2d.setup_filter([1, 1])
    expect_up = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]], np.float64)
    big = np.arange(16.).reshape(1, 4, 4, 1)
    expect_down = np.array([[(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4],
                            [(8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]])
    for impl in ['ref', 'fast', 'conv', 'taps']:
        np.testing.assert_allclose(upfirdn2d.upsample2d(img, box, impl=impl).numpy()[0, :, :, 0], expect_up, rtol=1e-6)
        np.testing.assert_allclose(upfirdn2d.downsample2d(big, box, impl=impl).numpy()[0, :, :, 0], expect_down,
                                   rtol=1e-6)
    # filter2d keeps the size; [1, 2, 1] x [1, 2, 1] / 16 of an impulse is the filter itself.
    impulse = np.zeros([1, 5, 5, 1])
    impulse[0, 2, 2, 0] = 1
    out = upfirdn2d.filter2d(impulse, upfirdn2d.setup_filter([1, 2, 1]), impl='ref').numpy()[0, :, :, 0]
    expect = np.zeros([5, 5])
    expect[1:4, 1:4] = np.outer([1, 2, 1], [1, 2, 1]) / 16
    np.testing.assert_allclose(out, expect, atol=1e-7)


FILTERS = {
    'fir4': lambda: upfirdn2d.setup_filter(FIR),
    'box2': lambda: upfirdn2d.setup_filter([1, 1]),
    'random2d': lambda: upfirdn2d.setup_filter(_rng(3).standard_normal([3, 2]), normalize=False),
    'separable8': lambda: upfirdn2d.setup_filter(np.arange(1, 9)),
}
PADDINGS = [0, [1, -1, 2, 0], [-1, 3, 0, -2]]


@pytest.mark.parametrize('name', sorted(FILTERS))
@pytest.mark.parametrize('up,down', [(1, 1), (2, 1), (1, 2), (2, 2), ([2, 1], [1, 2]), ([1, 2], [2, 1])])
def test_upfirdn2d_ref_vs_numpy_and_fast_vs_ref(name, up, down):
    f = FILTERS[name]()
    x = _rng(1).standard_normal([2, 8, 9, 3]).astype(np.float32)
    checked = 0
    for padding, (flip_filter, gain) in itertools.product(PADDINGS, [(False, 1), (True, 2.5)]):
        expect = np_upfirdn2d(x, f.numpy(), up, down, padding, flip_filter, gain)
        if min(expect.shape[1:3]) < 1:
            continue
        args = dict(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
        ref = upfirdn2d.upfirdn2d(x, f, impl='ref', **args).numpy()
        np.testing.assert_allclose(ref, expect, rtol=1e-4, atol=1e-5)
        grad_ref = _grad(lambda t: upfirdn2d.upfirdn2d(t, f, impl='ref', **args), x)[0]
        for impl in ['fast', 'conv', 'taps']:
            out = upfirdn2d.upfirdn2d(x, f, impl=impl, **args).numpy()
            np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5, err_msg=f'{impl} {args}')
            grad = _grad(lambda t, impl=impl: upfirdn2d.upfirdn2d(t, f, impl=impl, **args), x)[0]
            np.testing.assert_allclose(grad, grad_ref, rtol=1e-4, atol=1e-5, err_msg=f'{impl} {args}')
        checked += 1
    assert checked >= 4


def test_upfirdn2d_xla_equals_eager():
    f = upfirdn2d.setup_filter(FIR)
    x = tf.constant(_rng(2).standard_normal([2, 8, 8, 4]), tf.float32)
    for fn in [lambda t: upfirdn2d.upsample2d(t, f),
               lambda t: upfirdn2d.downsample2d(t, f),
               lambda t: upfirdn2d.filter2d(t, f, padding=[1, 0, -1, 2], flip_filter=True, gain=3),
               lambda t: upfirdn2d.upfirdn2d(t, f, up=2, down=2, padding=[2, 1, 0, 3])]:
        eager = fn(x).numpy()
        compiled = tf.function(fn, jit_compile=True)(x).numpy()
        np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)


def test_upfirdn2d_float16_and_dynamic_batch():
    f = upfirdn2d.setup_filter(FIR)
    x = _rng(3).standard_normal([2, 6, 6, 2])
    out = upfirdn2d.upsample2d(tf.constant(x, tf.float16), f)
    assert out.dtype == tf.float16
    np.testing.assert_allclose(out.numpy(), upfirdn2d.upsample2d(x.astype(np.float32), f).numpy(), atol=2e-2)
    fn = tf.function(lambda t: upfirdn2d.downsample2d(t, f),
                     input_signature=[tf.TensorSpec([None, 6, 6, 2], tf.float32)], jit_compile=True)
    np.testing.assert_allclose(fn(x.astype(np.float32)).numpy(),
                               upfirdn2d.downsample2d(x.astype(np.float32), f, impl='ref').numpy(), atol=1e-6)


def test_upfirdn2d_bad_arguments():
    x = np.zeros([1, 4, 4, 1], np.float32)
    with pytest.raises(ValueError, match='impl'):
        upfirdn2d.upfirdn2d(x, None, impl='cuda')
    with pytest.raises(ValueError, match='Padding'):
        upfirdn2d.upfirdn2d(x, None, padding=[1, 2, 3])
    with pytest.raises(ValueError, match='Scaling'):
        upfirdn2d.upfirdn2d(x, None, up=0)


# ----------------------------------------------------------------------------
# Second-order gradients (R1 through a discriminator-like stack)

def _r1_like(x, w1, w2, f, impl):
    """grad_w of sum(grad_x(D(x))^2), D = conv down2 -> lrelu -> 1x1 conv down2 -> downsample2d."""
    with tf.GradientTape() as outer:
        outer.watch([w1, w2])
        with tf.GradientTape() as inner:
            inner.watch(x)
            h = conv2d_resample(x, w1, f, down=2, padding=1, impl=impl)
            h = bias_act(h, act='lrelu', impl=impl)
            h = conv2d_resample(h, w2, f, down=2, impl=impl)
            h = upfirdn2d.downsample2d(h, f, impl=impl)
            score = tf.reduce_sum(tf.sin(h))
        g = inner.gradient(score, x)
        penalty = tf.reduce_sum(tf.square(g))
    return [penalty] + outer.gradient(penalty, [w1, w2])


def test_second_order_gradient_ref_vs_fast_vs_xla():
    rng = _rng(4)
    f = upfirdn2d.setup_filter(FIR)
    x = tf.constant(rng.standard_normal([2, 16, 16, 3]), tf.float32)
    w1 = tf.constant(rng.standard_normal([3, 3, 3, 4]) / 3, tf.float32)
    w2 = tf.constant(rng.standard_normal([1, 1, 4, 2]) / 2, tf.float32)
    ref = _r1_like(x, w1, w2, f, 'ref')
    fast = _r1_like(x, w1, w2, f, 'fast')
    compiled = tf.function(lambda *a: _r1_like(*a, f, 'fast'), jit_compile=True)(x, w1, w2)
    for r, a, c in zip(ref, fast, compiled):
        assert np.all(np.isfinite(r.numpy()))
        assert np.abs(r.numpy()).max() > 0
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(c.numpy(), r.numpy(), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------
# bias_act

ACTS = {
    'linear': lambda x: x,
    'relu': lambda x: np.maximum(x, 0),
    'lrelu': lambda x: np.where(x > 0, x, 0.2 * x),
    'tanh': np.tanh,
    'sigmoid': lambda x: 1 / (1 + np.exp(-x)),
    'elu': lambda x: np.where(x > 0, x, np.expm1(x)),
    'selu': lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    'softplus': lambda x: np.log1p(np.exp(x)),
    'swish': lambda x: x / (1 + np.exp(-x)),
}


def test_bias_act_golden_values():
    for impl in ['ref', 'fast']:
        out = bias_act(tf.constant([-1., 2.]), act='lrelu', impl=impl).numpy()
        np.testing.assert_allclose(out, [-0.2 * SQRT2, 2 * SQRT2], rtol=1e-6)
        out = bias_act(tf.constant([-1., 2.]), act='lrelu', clamp=1.5, impl=impl).numpy()
        np.testing.assert_allclose(out, [-0.2 * SQRT2, 1.5], rtol=1e-6)
        out = bias_act(tf.constant([-10., 2.]), act='linear', gain=3, clamp=4, impl=impl).numpy()
        np.testing.assert_allclose(out, [-4, 4])
        out = bias_act(tf.constant([[1., 2.], [3., 4.]]), b=[10., 20.], dim=0, act='relu', gain=1, impl=impl).numpy()
        np.testing.assert_allclose(out, [[11, 12], [23, 24]])


@pytest.mark.parametrize('act', sorted(ACTS))
def test_bias_act_matches_numpy(act):
    rng = _rng(5)
    x = rng.standard_normal([2, 3, 3, 4]).astype(np.float32) * 3
    b = rng.standard_normal([4]).astype(np.float32)
    spec = bias_act_lib.activation_funcs[act]
    expect = ACTS[act](x.astype(np.float64) + b) * spec.def_gain
    grads = []
    for impl in ['ref', 'fast']:
        out = bias_act(x, b, act=act, impl=impl).numpy()
        np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)
        out = bias_act(x, b, act=act, clamp=0.5, impl=impl).numpy()
        np.testing.assert_allclose(out, np.clip(expect, -0.5, 0.5), rtol=1e-5, atol=1e-5)
        grads.append(_grad(lambda t, c, impl=impl: bias_act(t, c, act=act, impl=impl), x, b))
        half = bias_act(tf.constant(x, tf.float16), b, act=act, impl=impl)
        assert half.dtype == tf.float16
        np.testing.assert_allclose(half.numpy(), expect, rtol=1e-2, atol=2e-2)
    for g_ref, g_fast in zip(*grads):
        np.testing.assert_allclose(g_fast, g_ref, rtol=1e-5, atol=1e-5)


def test_bias_act_bad_arguments():
    with pytest.raises(ValueError, match='Unknown activation'):
        bias_act(tf.zeros([2]), act='gelu')
    with pytest.raises(ValueError, match='Bias must have shape'):
        bias_act(tf.zeros([2, 3]), b=tf.zeros([2]))


# ----------------------------------------------------------------------------
# conv2d_resample

@pytest.mark.parametrize('up,down', [(1, 1), (2, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize('k', [1, 3])
def test_conv2d_resample_vs_numpy(up, down, k):
    rng = _rng(6)
    f = upfirdn2d.setup_filter(FIR)
    x = rng.standard_normal([2, 6, 6, 4]).astype(np.float32)
    for groups, flip_weight, pad in itertools.product([1, 2], [True, False], [k // 2, 0]):
        w = rng.standard_normal([k, k, 4 // groups, 6]).astype(np.float32)
        expect = np_conv2d_resample(x, w, f.numpy(), up, down, pad, groups, flip_weight)
        for impl in ['fast', 'ref']:
            out = conv2d_resample(x, w, f, up=up, down=down, padding=pad, groups=groups, flip_weight=flip_weight,
                                  impl=impl).numpy()
            np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-4, err_msg=f'{impl} {groups} {flip_weight}')
        grads = [_grad(lambda a, b, impl=impl: conv2d_resample(a, b, f, up=up, down=down, padding=pad, groups=groups,
                                                               flip_weight=flip_weight, impl=impl), x, w)
                 for impl in ['fast', 'ref']]
        for g_fast, g_ref in zip(*grads):
            np.testing.assert_allclose(g_fast, g_ref, rtol=1e-4, atol=1e-4)
    if k == 3 and up == 1 and down == 1:  # asymmetric / negative padding takes the generic branch
        w = rng.standard_normal([3, 3, 4, 5]).astype(np.float32)
        out = conv2d_resample(x, w, padding=[2, 0, -1, 1]).numpy()
        expect = np_correlate(np_upfirdn2d(x, None, padding=[2, 0, -1, 1]), w)
        np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-4)


def test_grouped_transposed_conv_zero_insertion_matches_backprop_input():
    """The float16/float64 CPU route (zeros + grouped conv2d) equals the float32 Conv2DBackpropInput route."""
    from tfstylegan.ops.conv2d_resample import _conv_transpose2d
    rng = _rng(14)
    x = rng.standard_normal([2, 4, 5, 6])
    for k, flip_weight in itertools.product([1, 3, 4], [True, False]):
        w = rng.standard_normal([k, k, 3, 4])
        fast = _conv_transpose2d(tf.constant(x, tf.float32), tf.constant(w, tf.float32), 2, 2, flip_weight)
        zeros = _conv_transpose2d(tf.constant(x, tf.float64), tf.constant(w, tf.float64), 2, 2, flip_weight)
        assert fast.shape == zeros.shape == (2, 3 * 2 + k, 4 * 2 + k, 4)
        np.testing.assert_allclose(fast.numpy(), zeros.numpy(), rtol=1e-5, atol=1e-5)


def test_conv2d_resample_xla_equals_eager():
    rng = _rng(8)
    f = upfirdn2d.setup_filter(FIR)
    x = tf.constant(rng.standard_normal([2, 5, 5, 4]), tf.float32)
    w = tf.constant(rng.standard_normal([3, 3, 2, 6]), tf.float32)
    for up, down in [(2, 1), (1, 2), (2, 2)]:
        fn = lambda t, up=up, down=down: conv2d_resample(t, w, f, up=up, down=down, padding=1, groups=2)  # noqa: E731
        np.testing.assert_allclose(tf.function(fn, jit_compile=True)(x).numpy(), fn(x).numpy(), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------
# modulated_conv2d

def _modconv_inputs(seed=9, n=2, h=5, i=4, o=3, k=3):
    rng = _rng(seed)
    x = rng.standard_normal([n, h, h, i]).astype(np.float32)
    weight = rng.standard_normal([k, k, i, o]).astype(np.float32)
    styles = (rng.standard_normal([n, i]) + 1).astype(np.float32)
    return x, weight, styles


@pytest.mark.parametrize('up', [1, 2])
@pytest.mark.parametrize('demodulate', [True, False])
def test_modulated_conv2d_fused_vs_nonfused_vs_ref(up, demodulate):
    x, weight, styles = _modconv_inputs()
    f = upfirdn2d.setup_filter(FIR)
    out_size = 5 * up
    noise = _rng(10).standard_normal([2, out_size, out_size, 1]).astype(np.float32)
    for flip_weight in [True, False]:
        args = dict(up=up, padding=1, resample_filter=f, demodulate=demodulate, flip_weight=flip_weight)

        def run(a, b, c, **kw):
            return modulated_conv2d(a, b, c, noise=noise, **args, **kw)

        ref = run(x, weight, styles, impl='ref').numpy()
        assert ref.shape == (2, out_size, out_size, 3)
        grads_ref = _grad(lambda a, b, c: run(a, b, c, impl='ref'), x, weight, styles)
        for fused in [True, False]:
            out = run(x, weight, styles, fused_modconv=fused).numpy()
            np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4, err_msg=f'fused={fused}')
            grads = _grad(lambda a, b, c, fused=fused: run(a, b, c, fused_modconv=fused), x, weight, styles)
            for g, g_ref in zip(grads, grads_ref):
                np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4, err_msg=f'fused={fused}')
            compiled = tf.function(lambda a, fused=fused: run(a, weight, styles, fused_modconv=fused),
                                   jit_compile=True)(x).numpy()
            np.testing.assert_allclose(compiled, ref, rtol=1e-4, atol=1e-4)


def test_modulated_conv2d_ref_is_per_sample_numpy():
    """ref == modulate, demodulate and correlate each sample with numpy (no resampling)."""
    x, weight, styles = _modconv_inputs(seed=11)
    out = modulated_conv2d(x, weight, styles, padding=1, impl='ref').numpy()
    for n in range(2):
        w = weight * styles[n][None, None, :, None]
        w = w / np.sqrt((w.astype(np.float64) ** 2).sum(axis=(0, 1, 2), keepdims=True) + 1e-8)
        expect = np_correlate(np.pad(x[n:n + 1], [(0, 0), (1, 1), (1, 1), (0, 0)]), w)
        np.testing.assert_allclose(out[n:n + 1], expect, rtol=1e-4, atol=1e-5)


def test_modulated_conv2d_float16_finite():
    x, weight, styles = _modconv_inputs(seed=12)
    f = upfirdn2d.setup_filter(FIR)
    big_weight, big_styles = weight * 300, styles * 300  # would overflow float16 without pre-normalisation
    for up, fused in itertools.product([1, 2], [True, False]):
        half = modulated_conv2d(tf.constant(x * 100, tf.float16), big_weight, big_styles, up=up, padding=1,
                                resample_filter=f, fused_modconv=fused)
        assert half.dtype == tf.float16
        assert np.all(np.isfinite(half.numpy()))
        full = modulated_conv2d(x * 100, big_weight, big_styles, up=up, padding=1, resample_filter=f,
                                fused_modconv=fused).numpy()
        np.testing.assert_allclose(half.numpy().astype(np.float32), full, rtol=2e-2, atol=0.5)


def test_modulated_conv2d_demodulation_normalises_output():
    """Unit-variance iid input -> unit-variance output (interior pixels) with demodulation."""
    rng = _rng(13)
    x = rng.standard_normal([4, 18, 18, 64]).astype(np.float32)
    weight = (rng.standard_normal([3, 3, 64, 32]) * 3).astype(np.float32)
    styles = (rng.standard_normal([4, 64]) * 2 + 1).astype(np.float32)
    demod = modulated_conv2d(x, weight, styles, padding=1).numpy()[:, 1:-1, 1:-1]
    assert abs(demod.std() - 1) < 0.05
    np.testing.assert_allclose(demod.std(axis=(0, 1, 2)), 1, atol=0.15)  # every output channel
    plain = modulated_conv2d(x, weight, styles, padding=1, demodulate=False).numpy()[:, 1:-1, 1:-1]
    assert plain.std() > 5


def test_modulated_conv2d_bad_shapes():
    x, weight, styles = _modconv_inputs()
    with pytest.raises(ValueError, match='input channels'):
        modulated_conv2d(x, weight, styles[:, :3])
