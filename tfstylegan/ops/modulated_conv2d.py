"""Modulated (and demodulated) convolution, StyleGAN2's synthesis conv (ADA `modulated_conv2d`).

Per sample n the weight is scaled by that sample's styles along its input channels,
`w_n[kh, kw, i, o] = weight[kh, kw, i, o] * styles[n, i]`, and, with demodulation,
each output channel is rescaled to unit norm, `dcoefs[n, o] = rsqrt(sum_{kh,kw,i} w_n^2 + 1e-8)`.

Three implementations, equal up to rounding:

- `fused_modconv=False`: scale the activations by the styles, convolve with the shared
  weight, scale the result by dcoefs (one ordinary convolution for the whole batch).
- `fused_modconv=True`: fold the batch into channels, x `[1, H, W, N*I]`, and run one
  grouped convolution with the per-sample weights `[kh, kw, I, N*O]` (groups = N). For
  up=2, `conv2d_resample` runs the grouped transposed convolution through
  `Conv2DBackpropInput`, which TF 2.21 accepts with grouped filters, eagerly and under
  XLA (`tf.nn.conv2d_transpose` has no groups argument).
  On CPU without XLA, TF 2.21 has no float16 gradients for grouped convolutions, so
  train float16 layers with `fused_modconv=False` there (ADA's own rule fuses only in
  inference and only for float32 or batch 1) or under `jit_compile=True`.
- `impl='ref'`: a Python loop over the batch; each sample gets its own weight and a
  plain `conv2d_resample(..., impl='ref')`.
"""

import numpy as np
import tensorflow as tf

from tfstylegan.ops.conv2d_resample import conv2d_resample


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True, impl='fast'):
    """Modulated convolution with optional up/downsampling and noise.

    Args:
        x: `[N, H, W, I]` activations (float32 or float16; the convolution runs in this dtype).
        weight: `[kh, kw, I, O]` shared weight (float32; modulation and demodulation are float32).
        styles: `[N, I]` modulation coefficients.
        noise: None or a tensor broadcastable to `[N, H', W', O]`, added after the
            convolution (and demodulation).
        up, down: integer resampling factors.
        padding: padding relative to the upsampled image (see `conv2d_resample`).
        resample_filter: FIR filter from `upfirdn2d.setup_filter`, or None.
        demodulate: normalise each output channel of the per-sample weight.
        flip_weight: False = convolution, True = correlation.
        fused_modconv: one grouped convolution with per-sample weights (True) or
            modulate/demodulate the activations around a shared convolution (False).
        impl: 'fast' or 'ref' (per-sample loop; ignores fused_modconv).

    Returns:
        `[N, H', W', O]` in x's dtype.
    """
    if impl not in ('ref', 'fast'):
        raise ValueError(f"impl must be 'ref' or 'fast'. Received: impl={impl!r}")
    x = tf.convert_to_tensor(x)
    weight = tf.convert_to_tensor(weight)
    styles = tf.convert_to_tensor(styles)
    if weight.shape.rank != 4 or x.shape.rank != 4 or styles.shape.rank != 2:
        raise ValueError('Expected x [N, H, W, I], weight [kh, kw, I, O], styles [N, I]. '
                         f'Received: x {x.shape}, weight {weight.shape}, styles {styles.shape}')
    kh, kw, in_channels, out_channels = (int(d) for d in weight.shape)
    if x.shape[-1] != in_channels or styles.shape[-1] != in_channels:
        raise ValueError(f'x {x.shape} and styles {styles.shape} must have the {in_channels} input channels of '
                         f'weight {weight.shape}.')
    # Modulation and demodulation in float32 (float64 stays float64) whatever x's dtype, as the reference:
    # in float16 the demodulation's 1e-8 underflows (a zero weight column gives rsqrt(0) = inf and
    # 0 * inf = NaN) and the coefficients lose precision. Only the convolution runs in x's dtype.
    math_dtype = tf.float64 if weight.dtype == tf.float64 else tf.float32
    weight, styles = tf.cast(weight, math_dtype), tf.cast(styles, math_dtype)

    # Pre-normalise to avoid float16 overflow (ADA); demodulation undoes the scale.
    if x.dtype == tf.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_channels * kh * kw)
                           / tf.reduce_max(tf.abs(weight), axis=[0, 1, 2], keepdims=True))  # max over kh, kw, I
        styles = styles / tf.reduce_max(tf.abs(styles), axis=1, keepdims=True)  # max over I

    conv = dict(f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight)
    if impl == 'ref':
        return _modulated_conv2d_ref(x, weight, styles, noise, demodulate, conv)

    # Demodulation coefficients [N, O] without materialising the per-sample weights:
    # sum_{kh,kw,i} (w[kh,kw,i,o] s[n,i])^2 = sum_i s[n,i]^2 * sum_{kh,kw} w[kh,kw,i,o]^2, a small
    # matmul [N, I] x [I, O] (a third faster than the [N, kh, kw, I, O] tensor, forward and backward).
    dcoefs = None
    if demodulate:
        wsq = tf.reduce_sum(tf.square(weight), axis=[0, 1])  # [I, O]
        dcoefs = tf.math.rsqrt(tf.matmul(tf.square(styles), wsq) + 1e-8)  # [N, O]
    w = None
    if fused_modconv:
        w = weight[tf.newaxis] * styles[:, tf.newaxis, tf.newaxis, :, tf.newaxis]  # [N, kh, kw, I, O]
        if demodulate:
            w = w * dcoefs[:, tf.newaxis, tf.newaxis, tf.newaxis, :]

    if not fused_modconv:
        x = x * tf.cast(styles, x.dtype)[:, tf.newaxis, tf.newaxis, :]
        x = conv2d_resample(x, weight, **conv)
        if demodulate:
            x = x * tf.cast(dcoefs, x.dtype)[:, tf.newaxis, tf.newaxis, :]
        if noise is not None:
            x = x + tf.cast(noise, x.dtype)
        return x

    # Fused: batch folded into channels, one grouped convolution.
    batch_size = x.shape[0]
    if batch_size is None:
        raise ValueError('fused_modconv=True needs a static batch size (x.shape[0] is None); '
                         'use fused_modconv=False or give the batch size.')
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    x = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, batch_size * in_channels])  # [1, H, W, N*I]
    w = tf.reshape(tf.transpose(w, [1, 2, 3, 0, 4]), [kh, kw, in_channels, batch_size * out_channels])  # [kh,kw,I,N*O]
    x = conv2d_resample(x, w, groups=batch_size, **conv)  # [1, H', W', N*O]
    out_h, out_w = tf.shape(x)[1], tf.shape(x)[2]
    x = tf.transpose(tf.reshape(x, [out_h, out_w, batch_size, out_channels]), [2, 0, 1, 3])  # [N, H', W', O]
    if noise is not None:
        x = x + tf.cast(noise, x.dtype)
    return x


def _modulated_conv2d_ref(x, weight, styles, noise, demodulate, conv):
    """One sample at a time: modulate, demodulate, convolve (reference conv2d_resample)."""
    outputs = []
    for n in range(x.shape[0]):
        w = weight * styles[n][tf.newaxis, tf.newaxis, :, tf.newaxis]  # [kh, kw, I, O]
        if demodulate:
            w = w / tf.sqrt(tf.reduce_sum(w * w, axis=[0, 1, 2], keepdims=True) + 1e-8)
        outputs.append(conv2d_resample(x[n:n + 1], tf.cast(w, x.dtype), impl='ref', **conv))
    x = tf.concat(outputs, axis=0)
    if noise is not None:
        x = x + tf.cast(noise, x.dtype)
    return x
