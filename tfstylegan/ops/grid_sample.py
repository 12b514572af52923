"""Affine sampling grids and bilinear grid sampling of NHWC images, as torch's `affine_grid` and
`grid_sample` (mode 'bilinear', padding 'zeros', align_corners=False), which ADA's geometric
augmentation uses.

Coordinates are normalised: -1 and 1 are the outer edges of the first and last pixels, so pixel j
of a W-wide image has its centre at (2j + 1) / W - 1. Reads outside the image are zeros.

`grid_sample` is linear in the images: its gradient is a scatter-add (the gradient of a gather)
and the gradient of that a gather again, so it is differentiable to any order w.r.t. the images
(R1 through the augmentation needs the second order) and compiles under XLA. It is not
differentiated w.r.t. the grid (ADA never needs that). TF's ImageProjectiveTransformV3 has neither
an XLA kernel nor an adjoint gradient (docs/AUGMENT.md), hence this op.
`impl='ref'` is a per-sample, per-corner loop over `tf.gather_nd` on a zero-padded image, for
tests.
"""

from __future__ import annotations

import tensorflow as tf


def affine_grid(theta: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Sampling grid of per-sample affine maps (torch `affine_grid`, align_corners=False).

    Args:
      theta: [N, 2, 3] float32, output normalised (x, y, 1) -> input normalised (x, y).
      height, width: output size.
    Returns:
      [N, height, width, 2] float32 normalised input coordinates (x, y).
    """
    xs = (2 * tf.range(width, dtype=tf.float32) + 1) / width - 1
    ys = (2 * tf.range(height, dtype=tf.float32) + 1) / height - 1
    yy, xx = tf.meshgrid(ys, xs, indexing="ij")
    base = tf.stack([tf.reshape(xx, [-1]), tf.reshape(yy, [-1]), tf.ones([height * width])], axis=0)  # [3, P]
    grid = tf.einsum("nij,jp->npi", tf.cast(theta, tf.float32), base)  # [N, P, 2]
    return tf.reshape(grid, [-1, height, width, 2])


def grid_sample(images: tf.Tensor, grid: tf.Tensor, impl: str = "fast") -> tf.Tensor:
    """Bilinear sampling with zero padding (torch `grid_sample`, align_corners=False).

    Args:
      images: [N, H, W, C] float (H, W, C static).
      grid: [N, Ho, Wo, 2] float32 normalised (x, y) positions to read.
      impl: 'fast' (batched gathers) or 'ref' (a loop over samples and corners).
    Returns:
      [N, Ho, Wo, C] in the images' dtype.
    """
    if impl not in ("fast", "ref"):
        raise ValueError(f"impl must be 'fast' or 'ref'. Received: impl={impl!r}")
    _, h, w, c = images.shape
    if h is None or w is None or c is None:
        raise ValueError(f"grid_sample: height, width and channels must be static. Received: shape={images.shape}")
    n = tf.shape(images)[0]
    ho, wo = grid.shape[1], grid.shape[2]
    grid = tf.cast(grid, tf.float32)
    px = ((grid[..., 0] + 1) * w - 1) / 2  # input pixel coordinates [N, Ho, Wo]
    py = ((grid[..., 1] + 1) * h - 1) / 2
    x0, y0 = tf.floor(px), tf.floor(py)
    fx, fy = px - x0, py - y0
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    if impl == "ref":
        return _grid_sample_ref(images, x0, y0, fx, fy)
    flat = tf.reshape(images, [n, h * w, c])
    out = None
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            index = tf.clip_by_value(yi, 0, h - 1) * w + tf.clip_by_value(xi, 0, w - 1)  # [N, Ho, Wo]
            values = tf.gather(flat, tf.reshape(index, [n, -1]), batch_dims=1)  # [N, Ho*Wo, C]
            weight = tf.reshape(wx * wy * tf.cast(inside, tf.float32), [n, -1, 1])
            term = values * tf.cast(weight, images.dtype)
            out = term if out is None else out + term
    return tf.reshape(out, [n, ho, wo, c])


def _grid_sample_ref(images, x0, y0, fx, fy):
    """Zero-pad by one pixel on every side, then gather the four neighbours sample by sample."""
    _, h, w, c = images.shape
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    outputs = []
    for i in range(images.shape[0]):
        acc = 0.0
        for dy, wy in ((0, 1 - fy[i]), (1, fy[i])):
            for dx, wx in ((0, 1 - fx[i]), (1, fx[i])):
                # Positions more than one pixel outside read the zero border (clipped there).
                yi = tf.clip_by_value(y0[i] + dy + 1, 0, h + 1)
                xi = tf.clip_by_value(x0[i] + dx + 1, 0, w + 1)
                values = tf.gather_nd(padded[i], tf.stack([yi, xi], axis=-1))  # [Ho, Wo, C]
                acc = acc + values * tf.cast(wx * wy, images.dtype)[..., None]
        outputs.append(acc)
    return tf.stack(outputs)
