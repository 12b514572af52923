"""Pad, upsample, FIR-filter and downsample batches of NHWC images (upfirdn2d).

(Over 400 lines on purpose: one op in four implementations, the fast ones checked against 'ref', sharing
the filter, padding and cropping helpers.)

Semantics are those of stylegan2-ada-pytorch `torch_utils/ops/upfirdn2d.py`, with
images laid out `[N, H, W, C]` instead of `[N, C, H, W]`:

1. upsample by inserting `up - 1` zeros after each pixel,
2. pad with zeros (negative padding crops),
3. convolve with the FIR filter `f` (correlate when `flip_filter=True`), keeping only
   outputs whose footprint lies inside the padded image,
4. downsample by keeping every `down`-th pixel.

Implementations (`impl`):

- `'ref'`: exactly the four steps above with plain ops (zero-insertion by reshape,
  pad, crop, `tf.nn.depthwise_conv2d`, strided slice). Obviously right, slow.
- `'conv'`: one depthwise convolution with the downsampling folded into its stride
  (separable filters as their outer product: the CPU depthwise kernel rejects
  unequal strides, and one 2-D pass measured as fast as two 1-D passes eagerly);
  zeros are still inserted for `up`.
- `'taps'`: the filter as a weighted sum of shifted, strided slices (one slice per
  tap; separable filters as two 1-D passes; upsampling polyphase, so no zero is ever
  multiplied). Everything is elementwise, so XLA fuses each pass into one loop.
- `'fast'` (default): `'taps'` while tracing for XLA (`tf.function(jit_compile=True)`),
  `'conv'` otherwise. `'taps'` bakes the filter values into the graph, so it needs
  them at trace time (a `setup_filter` constant, numpy array or list, not a tensor
  passed into the tf.function) and static H and W; otherwise it falls back to `'conv'`.

Why two fast paths: XLA fuses the elementwise taps and is slow on depthwise convolutions, while
without XLA the ranking flips; the measurements behind this are in docs/PERFORMANCE_NOTES.md.

All paths support gradients of any order (R1 needs grad-of-grad through
`downsample2d`) and compile under `jit_compile=True`.
"""

import numpy as np
import tensorflow as tf

_IMPLS = ('ref', 'fast', 'conv', 'taps')


# ----------------------------------------------------------------------------
# Argument parsing.

def _parse_scaling(scaling):
    """`int` or `[x, y]` -> `(sx, sy)`, each an int >= 1."""
    if isinstance(scaling, (int, np.integer)):
        scaling = [int(scaling), int(scaling)]
    if not (isinstance(scaling, (list, tuple)) and len(scaling) == 2
            and all(isinstance(s, (int, np.integer)) and s >= 1 for s in scaling)):
        raise ValueError(f'Scaling factors must be an int >= 1 or a pair [x, y] of them. Received: {scaling!r}')
    return int(scaling[0]), int(scaling[1])


def _parse_padding(padding):
    """`int`, `[x, y]` or `[x0, x1, y0, y1]` -> `(x0, x1, y0, y1)` (negative = crop)."""
    if isinstance(padding, (int, np.integer)):
        padding = [int(padding), int(padding)]
    if not (isinstance(padding, (list, tuple)) and len(padding) in (2, 4)
            and all(isinstance(p, (int, np.integer)) for p in padding)):
        raise ValueError('Padding must be an int, [x, y] or [x_before, x_after, y_before, y_after] of ints. '
                         f'Received: {padding!r}')
    if len(padding) == 2:
        padding = [padding[0], padding[0], padding[1], padding[1]]
    return tuple(int(p) for p in padding)


def _get_filter_size(f):
    """Filter `[fh, fw]`, `[taps]` or None -> `(fw, fh)` (ADA's order)."""
    if f is None:
        return 1, 1
    shape = tuple(f.shape)
    if len(shape) not in (1, 2) or min(shape) < 1:
        raise ValueError(f'The FIR filter must have shape [taps] or [height, width]. Received shape: {shape}')
    return int(shape[-1]), int(shape[0])


def _static_filter(f):
    """Filter values as a float64 numpy array, or None when only known at run time."""
    if f is None:
        return np.ones([1, 1])
    if isinstance(f, (np.ndarray, list, tuple)):
        return np.asarray(f, dtype=np.float64)
    if hasattr(f, 'numpy'):  # an eager tensor, even when referenced while tracing
        return f.numpy().astype(np.float64)
    value = tf.get_static_value(f)
    return None if value is None else np.asarray(value, dtype=np.float64)


def _in_xla_context():
    """True while tracing a function for XLA (`tf.function(jit_compile=True)`)."""
    try:
        # here: a private TensorFlow module that may move; inside the try, its absence takes the safe path
        from tensorflow.python.ops import control_flow_util
        return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    except Exception:  # pylint: disable=broad-except  # internal API; choose the safe path
        return False


# ----------------------------------------------------------------------------
# Public API.

def setup_filter(f, normalize=True, flip_filter=False, gain=1, separable=None):
    """Prepare a 2-D FIR filter for `upfirdn2d` (ADA's `setup_filter`).

    Args:
        f: list, numpy array or tensor of shape `[fh, fw]` (non-separable), `[taps]`
            (separable), `[]` (impulse), or None (identity).
        normalize: divide by the sum so that a constant signal keeps its magnitude.
        flip_filter: flip the filter.
        gain: overall signal gain (applied as `gain ** (ndim / 2)`).
        separable: return a 1-D filter? Default: 1-D input with at least 8 taps.

    Returns:
        float32 constant of shape `[fh, fw]` or `[taps]`.
    """
    if f is None:
        f = 1
    f = np.array(f.numpy() if hasattr(f, 'numpy') else f, dtype=np.float32)
    if f.ndim not in (0, 1, 2) or f.size == 0:
        raise ValueError(f'A FIR filter must be a non-empty scalar, [taps] or [height, width]. '
                         f'Received shape: {f.shape}')
    if f.ndim == 0:
        f = f[np.newaxis]
    if separable is None:
        separable = (f.ndim == 1 and f.size >= 8)
    if f.ndim == 1 and not separable:
        f = np.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f'A 2-D filter cannot be made separable. Received shape: {f.shape}')
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = np.flip(f, axis=tuple(range(f.ndim)))
    f = f * np.float32(gain ** (f.ndim / 2))
    return tf.constant(f, dtype=tf.float32)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl='fast'):
    """Upsample, pad, FIR-filter and downsample a batch of images.

    Args:
        x: float16/32/64 tensor `[N, H, W, C]`.
        f: float32 filter `[fh, fw]` or `[taps]` (from `setup_filter`), or None (identity).
        up: int or `[x, y]` upsampling factor.
        down: int or `[x, y]` downsampling factor.
        padding: int, `[x, y]` or `[x0, x1, y0, y1]`, relative to the upsampled image;
            negative values crop.
        flip_filter: False = convolution, True = correlation.
        gain: overall signal gain.
        impl: 'fast', 'ref', 'conv' or 'taps' (see the module docstring).

    Returns:
        `[N, H', W', C]` with `H' = (H * up_y + y0 + y1 - fh) // down_y + 1`
        (likewise W'), in the dtype of x.
    """
    if impl not in _IMPLS:
        raise ValueError(f'impl must be one of {_IMPLS}. Received: impl={impl!r}')
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 4:
        raise ValueError(f'upfirdn2d expects x of shape [N, H, W, C]. Received shape: {x.shape}')
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    pads = _parse_padding(padding)
    _get_filter_size(f)
    if impl == 'fast':
        impl = 'taps' if _in_xla_context() else 'conv'
    if impl == 'ref':
        return _upfirdn2d_ref(x, f, upx, upy, downx, downy, pads, flip_filter, gain)
    values = _static_filter(f) if impl == 'taps' else None
    if values is not None and None not in x.shape[1:]:
        return _upfirdn2d_taps(x, values, upx, upy, downx, downy, pads, flip_filter, gain)
    return _upfirdn2d_conv(x, f, upx, upy, downx, downy, pads, flip_filter, gain)


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl='fast'):
    """Filter a batch of images; by default the output has the input's size.

    Args:
        x: `[N, H, W, C]`; f: filter as in `upfirdn2d`; padding: extra padding of the
            output (int, `[x, y]` or `[x0, x1, y0, y1]`, negative crops).

    Returns:
        `[N, H + y0 + y1, W + x0 + x1, C]`.
    """
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl='fast'):
    """Upsample a batch of images with the FIR filter f; output is `up` times the input.

    Args:
        x: `[N, H, W, C]`; f: filter as in `upfirdn2d`; up: int or `[x, y]`;
            padding: extra padding of the output (negative crops).

    Returns:
        `[N, H * up_y + y0 + y1, W * up_x + x0 + x1, C]`.
    """
    upx, upy = _parse_scaling(up)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [padx0 + (fw + upx - 1) // 2, padx1 + (fw - upx) // 2,
         pady0 + (fh + upy - 1) // 2, pady1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl='fast'):
    """Downsample a batch of images with the FIR filter f; output is the input / `down`.

    Args:
        x: `[N, H, W, C]`; f: filter as in `upfirdn2d`; down: int or `[x, y]`;
            padding: extra padding of the input (negative crops).

    Returns:
        `[N, (H + y0 + y1) // down_y, (W + x0 + x1) // down_x, C]`.
    """
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [padx0 + (fw - downx + 1) // 2, padx1 + (fw - downx) // 2,
         pady0 + (fh - downy + 1) // 2, pady1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


# ----------------------------------------------------------------------------
# Shared steps.

def _upsample_zeros(x, upx, upy):
    """Insert `up - 1` zeros after each pixel: `[N, H, W, C]` -> `[N, H*upy, W*upx, C]`."""
    if upx == 1 and upy == 1:
        return x
    n = tf.shape(x)[0]
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    h = tf.shape(x)[1] if h is None else h
    w = tf.shape(x)[2] if w is None else w
    x = tf.reshape(x, [n, h, 1, w, 1, c])
    x = tf.pad(x, [[0, 0], [0, 0], [0, upy - 1], [0, 0], [0, upx - 1], [0, 0]])
    return tf.reshape(x, [n, h * upy, w * upx, c])


def _pad_or_crop(x, padx0, padx1, pady0, pady1):
    """Zero-pad positive amounts, crop negative ones, on H (y) and W (x) of `[N, H, W, C]`."""
    x = tf.pad(x, [[0, 0], [max(pady0, 0), max(pady1, 0)], [max(padx0, 0), max(padx1, 0)], [0, 0]])
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    if x.shape[1] is not None:
        h = x.shape[1]
    if x.shape[2] is not None:
        w = x.shape[2]
    return x[:, max(-pady0, 0):h - max(-pady1, 0), max(-padx0, 0):w - max(-padx1, 0), :]


def _depthwise(x, kernel_hw, strides=(1, 1)):
    """Correlate every channel of `[N, H, W, C]` with `kernel_hw` `[kh, kw]`, VALID."""
    c = x.shape[-1]
    k = tf.tile(tf.cast(kernel_hw, x.dtype)[:, :, tf.newaxis, tf.newaxis], [1, 1, c, 1])  # [kh, kw, C, 1]
    return tf.nn.depthwise_conv2d(x, k, [1, strides[0], strides[1], 1], 'VALID')


# ----------------------------------------------------------------------------
# Implementations.

def _upfirdn2d_ref(x, f, upx, upy, downx, downy, pads, flip_filter, gain):
    """The four steps verbatim (ADA's `_upfirdn2d_ref`)."""
    f = tf.ones([1, 1], tf.float32) if f is None else tf.convert_to_tensor(f, tf.float32)
    x = _upsample_zeros(x, upx, upy)
    x = _pad_or_crop(x, *pads)
    f = f * (gain ** (f.shape.rank / 2))
    f = tf.cast(f, x.dtype)
    if not flip_filter:  # convolution = correlation with the flipped filter
        f = tf.reverse(f, axis=list(range(f.shape.rank)))
    if f.shape.rank == 2:
        x = _depthwise(x, f)
    else:
        x = _depthwise(x, f[tf.newaxis, :])  # along W
        x = _depthwise(x, f[:, tf.newaxis])  # along H
    return x[:, ::downy, ::downx, :]


def _correlation_taps(values, flip_filter, gain):
    """Filter values -> correlation taps: `(2-D array,)` or `(taps_y, taps_x)` 1-D arrays.

    A 2-D filter of rank one (e.g. the outer product that `setup_filter([1, 3, 3, 1])`
    returns) is factored so that it can be applied as two 1-D passes.
    """
    values = np.asarray(values, np.float64) * gain ** (values.ndim / 2)
    if not flip_filter:
        values = np.flip(values, axis=tuple(range(values.ndim)))
    if values.ndim == 1:
        return values, values
    u, s, vt = np.linalg.svd(values)
    if s.size > 1 and s[0] > 0 and np.all(s[1:] <= 1e-7 * s[0]):
        return u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])
    return (values,)


def _upfirdn2d_conv(x, f, upx, upy, downx, downy, pads, flip_filter, gain):
    """One depthwise convolution; downsampling folded into its stride."""
    x = _upsample_zeros(x, upx, upy)
    x = _pad_or_crop(x, *pads)
    f = tf.ones([1, 1], tf.float32) if f is None else tf.convert_to_tensor(f, tf.float32)
    f = f * (gain ** (f.shape.rank / 2))
    if not flip_filter:
        f = tf.reverse(f, axis=list(range(f.shape.rank)))
    if f.shape.rank == 1:
        f = f[:, tf.newaxis] * f[tf.newaxis, :]
    if downx == downy:  # the CPU kernel needs equal strides
        return _depthwise(x, f, strides=(downy, downx))
    return _depthwise(x, f)[:, ::downy, ::downx, :]


def _axis_plan(size, taps_len, up, down, pad0, pad1):
    """Plan one axis of upfirdn as shifted slices.

    The output is `out[o] = sum_t g[t] * z[down * o + t]` where z is the zero-inserted,
    padded input. Writing `o = up * m + r` (output phase r) when up > 1, only taps with
    `(o + t - pad0) % up == 0` see a real pixel, namely `x[m + (r + t - pad0) // up]`.

    Returns:
        (phases, stride, count, out_len, before, after): for each phase a list of
        `(tap index, start)`; phase r of the output is
        `sum g[tap] * xpad[start : start + stride * (count - 1) + 1 : stride]`, where
        xpad is x zero-padded by `before`/`after` (negative = crop); the phases are
        interleaved and the result is cut to `out_len`.
    """
    full = size * up + pad0 + pad1 - taps_len + 1
    if full < 1:
        raise ValueError(f'upfirdn2d output would be empty: size {size}, up {up}, padding ({pad0}, {pad1}), '
                         f'filter taps {taps_len}.')
    if up == 1:
        out_len = (full - 1) // down + 1
        phases = [[(t, t) for t in range(taps_len)]]
        return phases, down, out_len, out_len, pad0, pad1
    # Polyphase upsampling; downsampling, if any, is applied afterwards by the caller.
    count = -(-full // up)
    phases = []
    for r in range(up):
        phases.append([(t, (r + t - pad0) // up) for t in range(taps_len) if (r + t - pad0) % up == 0])
    starts = [s for phase in phases for _, s in phase] or [0]
    lo, hi = min(starts), max(starts) + count - 1
    before, after = -lo, hi - (size - 1)
    phases = [[(t, s - lo) for t, s in phase] for phase in phases]
    return phases, 1, count, full, before, after


def _taps_pass_1d(x, taps, axis, up, down, pad0, pad1):
    """Upfirdn along one spatial axis (1 = H, 2 = W) of `[N, H, W, C]` by shifted slices."""
    size = x.shape[axis]
    phases, stride, count, out_len, before, after = _axis_plan(size, len(taps), up, down, pad0, pad1)
    pads = [0, 0, 0, 0]  # x0, x1, y0, y1
    pads[(0 if axis == 2 else 2):(2 if axis == 2 else 4)] = [before, after]
    x = _pad_or_crop(x, *pads)

    def take(start):
        sl = [slice(None)] * 4
        sl[axis] = slice(start, start + stride * (count - 1) + 1, stride)
        return x[tuple(sl)]

    outs = []
    for phase in phases:
        acc = None
        for t, start in phase:
            term = take(start) * float(taps[t])
            acc = term if acc is None else acc + term
        outs.append(acc if acc is not None else tf.zeros_like(take(0)))
    if up == 1:
        return outs[0]
    shape = [tf.shape(outs[0])[0]] + outs[0].shape.as_list()[1:]
    shape[axis] = count * up
    y = tf.stack(outs, axis=axis + 1)  # [N, count, up, W, C] or [N, H, count, up, C]
    y = tf.reshape(y, shape)
    sl = [slice(None)] * 4
    sl[axis] = slice(0, out_len, down)
    return y[tuple(sl)]


def _upfirdn2d_taps(x, values, upx, upy, downx, downy, pads, flip_filter, gain):
    """Weighted sum of shifted slices; separable filters as two 1-D passes."""
    padx0, padx1, pady0, pady1 = pads
    taps = _correlation_taps(values, flip_filter, gain)
    if len(taps) == 2:
        taps_y, taps_x = taps
        x = _taps_pass_1d(x, taps_x, 2, upx, downx, padx0, padx1)
        return _taps_pass_1d(x, taps_y, 1, upy, downy, pady0, pady1)
    g = taps[0]  # [fh, fw] correlation taps
    fh, fw = g.shape
    h, w = x.shape[1], x.shape[2]
    plan_y = _axis_plan(h, fh, upy, downy, pady0, pady1)
    plan_x = _axis_plan(w, fw, upx, downx, padx0, padx1)
    phases_y, stride_y, count_y, out_h, before_y, after_y = plan_y
    phases_x, stride_x, count_x, out_w, before_x, after_x = plan_x
    x = _pad_or_crop(x, before_x, after_x, before_y, after_y)
    rows = []
    for phase_y in phases_y:
        cols = []
        for phase_x in phases_x:
            acc = None
            for ty, sy in phase_y:
                for tx, sx in phase_x:
                    term = x[:, sy:sy + stride_y * (count_y - 1) + 1:stride_y,
                             sx:sx + stride_x * (count_x - 1) + 1:stride_x, :] * float(g[ty, tx])
                    acc = term if acc is None else acc + term
            if acc is None:
                acc = tf.zeros_like(x[:, 0:stride_y * (count_y - 1) + 1:stride_y,
                                      0:stride_x * (count_x - 1) + 1:stride_x, :])
            cols.append(acc)
        rows.append(tf.stack(cols, axis=3) if upx > 1 else cols[0])  # [N, count_y, count_x, upx, C]
    y = tf.stack(rows, axis=2) if upy > 1 else rows[0]  # [N, count_y, upy, count_x, (upx,) C]
    n, c = tf.shape(x)[0], x.shape[-1]
    y = tf.reshape(y, [n, count_y * upy, count_x * upx, c])
    y = y[:, :out_h, :out_w, :]
    if upy > 1 or upx > 1:  # downsampling after polyphase upsampling
        y = y[:, ::(downy if upy > 1 else 1), ::(downx if upx > 1 else 1), :]
    return y
