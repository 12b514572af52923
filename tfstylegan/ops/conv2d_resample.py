"""2-D convolution with optional FIR up/downsampling (stylegan2-ada-pytorch `conv2d_resample`).

NHWC images and TF-layout weights `[kh, kw, in_channels // groups, out_channels]`
(a torch weight `[out, in, kh, kw]` transposed with `(2, 3, 1, 0)`). The weight acts
exactly as torch's `conv2d` would use the torch weight: a correlation kernel when
`flip_weight=True`, a convolution kernel when `flip_weight=False`.

Branch structure as in ADA (padding is applied once, at the start):

- 1x1 kernel, down only: FIR-downsample, then the 1x1 conv.
- 1x1 kernel, up only: the 1x1 conv, then FIR-upsample.
- down only: FIR-filter (with the padding), then a strided conv.
- up (and maybe down): a strided transposed conv, then the FIR filter, then FIR-down.
- neither, non-negative padding: one conv with explicit padding.
- otherwise: FIR-upsample and pad, conv, FIR-downsample.

TensorFlow has no grouped `conv2d_transpose`, but its kernel, `Conv2DBackpropInput`
(the input gradient of a grouped conv2d), accepts grouped filters under XLA and, on
CPU, for float32; `_conv_transpose2d` calls it directly, so grouped transposed
convolution (what the fused modulated conv needs for up=2) multiplies no zeros.
Elsewhere (float16 on CPU without XLA) it inserts zeros and runs a grouped conv2d.
Explicit asymmetric conv padding is done with `tf.pad`: on CPU the gradients of
`padding='EXPLICIT'` reject grouped filters.

`impl='ref'` always takes the last, generic branch with the reference upfirdn2d;
`impl='fast'` takes ADA's branches with the fast upfirdn2d.
"""

import tensorflow as tf

from tfstylegan.ops.upfirdn2d import (_get_filter_size, _in_xla_context, _pad_or_crop, _parse_padding,
                                      _upsample_zeros, upfirdn2d)


def _check_weight(x, w, groups):
    """Validate `[kh, kw, I // groups, O]` against x `[N, H, W, I]`; returns (kh, kw, in/g, out)."""
    if x.shape.rank != 4 or w.shape.rank != 4:
        raise ValueError(f'Expected x [N, H, W, I] and w [kh, kw, I // groups, O]. Received: x {x.shape}, w {w.shape}')
    kh, kw, in_per_group, out_channels = (int(d) for d in w.shape)
    if not isinstance(groups, int) or groups < 1 or out_channels % groups:
        raise ValueError(f'groups must be an int >= 1 dividing the {out_channels} output channels. '
                         f'Received: {groups!r}')
    if x.shape[-1] is not None and x.shape[-1] != in_per_group * groups:
        raise ValueError(f'x has {x.shape[-1]} channels but w {w.shape} with groups={groups} expects '
                         f'{in_per_group * groups}.')
    return kh, kw, in_per_group, out_channels


def _conv2d(x, w, stride=1, padding=(0, 0, 0, 0), flip_weight=True):
    """Grouped conv2d of `[N, H, W, I]` with w `[kh, kw, I // groups, O]`; padding (x0, x1, y0, y1) >= 0."""
    if not flip_weight:  # tf.nn.conv2d correlates; a convolution uses the flipped kernel
        w = tf.reverse(w, axis=[0, 1])
    px0, px1, py0, py1 = padding
    kh, kw = int(w.shape[0]), int(w.shape[1])
    same = (px0, px1, py0, py1) == ((kw - 1) // 2,) * 2 + ((kh - 1) // 2,) * 2
    if stride == 1 and kh % 2 == 1 and kw % 2 == 1 and same:
        pad = 'SAME'
    else:
        # Not padding='EXPLICIT': on CPU its gradients reject grouped filters (TF 2.21).
        pad = 'VALID'
        if max(padding) > 0:
            x = tf.pad(x, [[0, 0], [py0, py1], [px0, px1], [0, 0]])
    return tf.nn.conv2d(x, w, strides=[1, stride, stride, 1], padding=pad)


def _conv_transpose2d(x, w, stride, groups, flip_weight):
    """Transposed conv (torch `conv_transpose2d` with `w` transposed as ADA does), VALID.

    Args:
        x: `[N, H, W, I]`; w: the forward weight `[kh, kw, I // groups, O]`.

    Returns:
        `[N, (H - 1) * stride + kh, (W - 1) * stride + kw, O]`.
    """
    kh, kw, in_per_group, out_channels = (int(d) for d in w.shape)
    if groups > 1 and x.dtype != tf.float32 and not _in_xla_context():
        # TF's CPU kernel takes grouped filters in Conv2DBackpropInput for float32 only:
        # insert zeros and run a grouped forward conv with the kernel flipped back.
        x = _upsample_zeros(x, stride, stride)
        x = _pad_or_crop(x, kw - 1, kw - stride, kh - 1, kh - stride)
        return tf.nn.conv2d(x, w if flip_weight else tf.reverse(w, axis=[0, 1]), strides=1, padding='VALID')
    # Transposed-conv filter [kh, kw, O // groups, I]: input channel g*I/g + i of group g
    # feeds output channel g*O/g + o through w[:, :, i, g*O/g + o].
    w = tf.reshape(w, [kh, kw, in_per_group, groups, out_channels // groups])
    w = tf.transpose(w, [0, 1, 4, 3, 2])  # [kh, kw, O/g, g, I/g]
    w = tf.reshape(w, [kh, kw, out_channels // groups, groups * in_per_group])
    if flip_weight:  # ADA runs conv_transpose2d with flip_weight=(not flip_weight)
        w = tf.reverse(w, axis=[0, 1])
    shape = tf.shape(x)
    out_h = (x.shape[1] - 1) * stride + kh if x.shape[1] is not None else (shape[1] - 1) * stride + kh
    out_w = (x.shape[2] - 1) * stride + kw if x.shape[2] is not None else (shape[2] - 1) * stride + kw
    if groups == 1:
        return tf.nn.conv2d_transpose(x, w, tf.stack([shape[0], out_h, out_w, out_channels]),
                                      strides=[1, stride, stride, 1], padding='VALID')
    y = tf.raw_ops.Conv2DBackpropInput(
        input_sizes=tf.stack([shape[0], out_h, out_w, out_channels]), filter=w, out_backprop=x,
        strides=[1, stride, stride, 1], padding='VALID')
    return tf.ensure_shape(y, [x.shape[0], x.shape[1] and out_h, x.shape[2] and out_w, out_channels])


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False,
                    impl='fast'):
    """2-D convolution with optional up/downsampling; padding is applied once, at the start.

    Args:
        x: `[N, H, W, I]`.
        w: `[kh, kw, I // groups, O]`, cast to x's dtype.
        f: FIR filter from `upfirdn2d.setup_filter`, or None (identity).
        up: int upsampling factor.
        down: int downsampling factor.
        padding: int, `[x, y]` or `[x0, x1, y0, y1]`, relative to the upsampled image.
        groups: split the input channels into this many groups.
        flip_weight: False = convolution, True = correlation (torch conv2d).
        flip_filter: False = convolution, True = correlation, for f.
        impl: 'fast' (ADA's branches) or 'ref' (the generic branch, reference upfirdn2d).

    Returns:
        `[N, H', W', O]`, e.g. `H' = H * up // down` for `padding = kh // 2` and odd kh.
    """
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f'up and down must be ints >= 1. Received: up={up!r}, down={down!r}')
    if impl not in ('ref', 'fast'):
        raise ValueError(f"impl must be 'ref' or 'fast'. Received: impl={impl!r}")
    x = tf.convert_to_tensor(x)
    w = tf.cast(w, x.dtype)
    kh, kw, _, _ = _check_weight(x, w, groups)
    fw, fh = _get_filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Adjust padding to account for up/downsampling.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    pads = [px0, px1, py0, py1]
    fir = upfirdn2d

    if impl == 'fast':
        # 1x1 kernel with downsampling only: downsample first, then convolve.
        if kw == 1 and kh == 1 and down > 1 and up == 1:
            x = fir(x, f, down=down, padding=pads, flip_filter=flip_filter, impl=impl)
            return _conv2d(x, w, flip_weight=flip_weight)

        # 1x1 kernel with upsampling only: convolve first, then upsample.
        if kw == 1 and kh == 1 and up > 1 and down == 1:
            x = _conv2d(x, w, flip_weight=flip_weight)
            return fir(x, f, up=up, padding=pads, gain=up ** 2, flip_filter=flip_filter, impl=impl)

        # Downsampling only: filter (with all the padding), then a strided convolution.
        if down > 1 and up == 1:
            x = fir(x, f, padding=pads, flip_filter=flip_filter, impl=impl)
            return _conv2d(x, w, stride=down, flip_weight=flip_weight)

        # Upsampling (maybe with downsampling): transposed strided convolution, then filter.
        if up > 1:
            x = _conv_transpose2d(x, w, stride=up, groups=groups, flip_weight=flip_weight)
            # ADA crops the transposed conv by (pxt, pyt) and pads that back; we keep it whole.
            pads = [px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)]
            x = fir(x, f, padding=pads, gain=up ** 2, flip_filter=flip_filter, impl=impl)
            if down > 1:
                x = fir(x, f, down=down, flip_filter=flip_filter, impl=impl)
            return x

        # No resampling, padding the convolution can do itself.
        if min(pads) >= 0:
            return _conv2d(x, w, padding=pads, flip_weight=flip_weight)

    # Generic: upsample and pad, convolve, downsample.
    x = fir(x, f if up > 1 else None, up=up, padding=pads, gain=up ** 2, flip_filter=flip_filter, impl=impl)
    x = _conv2d(x, w, flip_weight=flip_weight)
    if down > 1:
        x = fir(x, f, down=down, flip_filter=flip_filter, impl=impl)
    return x
