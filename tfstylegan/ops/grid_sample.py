"""Bilinear grid resampling of NHWC images by per-sample affine transforms, reflecting at the borders.

Linear in the images: its gradient is a scatter-add and the gradient of that a gather again, so it is
differentiable to any order and XLA-compilable (TF's ImageProjectiveTransformV3 has neither an XLA
kernel nor an adjoint gradient; see docs/AUGMENT.md).
"""

from __future__ import annotations

import tensorflow as tf


def _reflect(i: tf.Tensor, size: int) -> tf.Tensor:
    """Integer pixel indices folded into [0, size) by periodic 'reflect' (edge not repeated)."""
    if size == 1:
        return tf.zeros_like(i)
    period = 2 * (size - 1)
    i = tf.math.floormod(i, period)
    return tf.where(i >= size, period - i, i)


def resample(images: tf.Tensor, g_inv: tf.Tensor) -> tf.Tensor:
    """Bilinear resampling of `images` by the inverse transforms `g_inv`, reflecting at the borders.

    Output pixel (row i, column j) sits at x = j - (W - 1) / 2, y = i - (H - 1) / 2 (pixel units,
    origin at the image centre); it reads the input at `g_inv @ [x, y, 1]` in the same frame.
    Linear in `images`; differentiable to any order w.r.t. them (not w.r.t. `g_inv`).

    Args:
      images: [N, H, W, C] float.
      g_inv: [N, 3, 3] float32, affine (last row [0, 0, 1]).
    Returns:
      [N, H, W, C], same dtype as `images`.
    """
    n, h, w, c = images.shape
    n = tf.shape(images)[0] if n is None else n
    if h is None or w is None or c is None:
        raise ValueError(f"resample: height, width and channels must be static. Received: shape={images.shape}")
    cx, cy = (w - 1) / 2, (h - 1) / 2
    ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float32) - cy, tf.range(w, dtype=tf.float32) - cx, indexing="ij")
    grid = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1]), tf.ones([h * w])], axis=0)  # [3, H*W]
    src = tf.einsum("nij,jk->nik", tf.cast(g_inv, tf.float32), grid)  # [N, 3, H*W]
    x, y = src[:, 0] + cx, src[:, 1] + cy  # input pixel coordinates, [N, H*W]
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = x - x0, y - y0  # exactly 0 for integer positions: blits copy pixels bit for bit
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    xi = [_reflect(x0, w), _reflect(x0 + 1, w)]
    yi = [_reflect(y0, h), _reflect(y0 + 1, h)]
    wx, wy = [1 - fx, fx], [1 - fy, fy]
    index = tf.stack([yi[a] * w + xi[b] for a in (0, 1) for b in (0, 1)], axis=1)  # [N, 4, H*W]
    weight = tf.stack([wy[a] * wx[b] for a in (0, 1) for b in (0, 1)], axis=1)  # [N, 4, H*W]
    flat = tf.reshape(images, [n, h * w, c])
    corners = tf.gather(flat, tf.reshape(index, [n, 4 * h * w]), batch_dims=1)  # [N, 4*H*W, C]
    corners = tf.reshape(corners, [n, 4, h * w, c])
    out = tf.reduce_sum(corners * tf.cast(weight, images.dtype)[..., None], axis=1)  # [N, H*W, C]
    return tf.reshape(out, [n, h, w, c])
