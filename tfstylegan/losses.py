"""StyleGAN2 losses and regularisers as pure functions (per-sample values; the caller reduces).

Names follow TF-GAN `losses_impl.py` and the StyleGAN2 paper:
- `nonsaturating_generator_loss`: softplus(-D(G(z)))  (Goodfellow et al. 2014, non-saturating)
- `logistic_discriminator_loss`: softplus(D(G(z))) + softplus(-D(x))
- `r1_penalty`: ||grad_x D(x)||^2 on reals (Mescheder et al. 2018); the loss is gamma/2 * penalty
- `path_length_penalty`: (||J_w^T y||_2 - a)^2 with y ~ N(0, I)/sqrt(H*W) (StyleGAN2 eq. 4)
- `style_mix` (`style_mixing_cutoff`, `mix_styles`): mixing regularisation, one crossover point per
  batch with probability p

Lazy regularisation multiplies the regulariser by its interval (the caller passes `gain`).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from tfstylegan.ops.random import random_uniform


def nonsaturating_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """fake_logits [N, 1] -> per-sample loss [N, 1] = softplus(-fake_logits)."""
    return tf.nn.softplus(-tf.cast(fake_logits, tf.float32))


def logistic_discriminator_loss(real_logits: tf.Tensor | None, fake_logits: tf.Tensor | None) -> tf.Tensor:
    """Per-sample D loss: softplus(fake) + softplus(-real). Either side may be None (split passes)."""
    loss = 0.0
    if fake_logits is not None:
        loss = loss + tf.nn.softplus(tf.cast(fake_logits, tf.float32))
    if real_logits is not None:
        loss = loss + tf.nn.softplus(-tf.cast(real_logits, tf.float32))
    return loss


def r1_penalty(discriminator_fn: Callable[[tf.Tensor], tf.Tensor], real_img: tf.Tensor
               ) -> tuple[tf.Tensor, tf.Tensor]:
    """R1: squared gradient norm of D's real logits w.r.t. the real images.

    Args:
      discriminator_fn: img [N, H, W, C] -> logits [N, 1] (augmentation, if any, inside it).
      real_img: [N, H, W, C] float32.
    Returns:
      (penalty [N], real_logits [N, 1]). The penalty stays differentiable w.r.t. D's weights
      when called under an outer `tf.GradientTape` (second-order gradient).
    """
    real_img = tf.cast(real_img, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(real_img)
        real_logits = tf.cast(discriminator_fn(real_img), tf.float32)
        total = tf.reduce_sum(real_logits)
    grads = tape.gradient(total, real_img)
    penalty = tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])
    return penalty, real_logits


def path_length_penalty(synthesis_fn: Callable[[tf.Tensor], tf.Tensor], ws: tf.Tensor, pl_mean: tf.Tensor,
                        pl_decay: float = 0.01, noise: tf.Tensor | None = None, seed=None
                        ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Path-length regulariser (StyleGAN2 sec. 3.2).

    Args:
      synthesis_fn: ws [N, num_ws, w_dim] -> img [N, H, W, C].
      ws: [N, num_ws, w_dim].
      pl_mean: scalar running mean `a` of the path lengths.
      pl_decay: `a <- a + decay * (mean(lengths) - a)`.
      noise: optional y [N, H, W, C]; default N(0, 1)/sqrt(H*W) (stateless from `seed` if given).
    Returns:
      (penalty [N] = (lengths - a_new)^2, a_new scalar (no gradient: the value to store), lengths [N])
      where lengths = sqrt(mean_over_ws(sum_over_w_dim((J^T y)^2))). As in stylegan2-ada-pytorch, the
      target a_new inside the penalty keeps its gradient (through decay * mean(lengths)).
    """
    ws = tf.cast(ws, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(ws)
        img = tf.cast(synthesis_fn(ws), tf.float32)
        if noise is None:
            shape = tf.shape(img)
            scale = tf.math.rsqrt(tf.cast(shape[1] * shape[2], tf.float32))
            if seed is not None:
                noise = tf.random.stateless_normal(shape, seed=seed) * scale
            else:
                noise = tf.random.normal(shape) * scale
        total = tf.reduce_sum(img * noise)
    grads = tape.gradient(total, ws)  # [N, num_ws, w_dim]
    lengths = tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=2), axis=1))
    new_mean = pl_mean + pl_decay * (tf.reduce_mean(lengths) - pl_mean)
    penalty = tf.square(lengths - new_mean)
    return penalty, tf.stop_gradient(new_mean), lengths


def style_mixing_cutoff(num_ws: int, prob: float, seed) -> tf.Tensor:
    """The style-mixing crossover of one batch: int32 scalar, uniform in [1, num_ws) with probability
    `prob`, else num_ws (no mixing), as stylegan2-ada-pytorch `run_G`.

    The draws are the counter-based uniforms of `tfstylegan.ops.random` (TF's stateless ops give
    other numbers under XLA), so every replica and every compile mode picks the same cutoff.
    """
    if prob <= 0 or num_ws < 2:
        return tf.constant(num_ws, tf.int32)
    u = random_uniform(seed, 1, 2)[0]  # [2]
    cutoff = 1 + tf.cast(tf.floor(u[0] * (num_ws - 1)), tf.int32)
    return tf.where(u[1] < prob, cutoff, num_ws)


def mix_styles(ws: tf.Tensor, ws_other: tf.Tensor, cutoff) -> tf.Tensor:
    """ws[:, cutoff:] replaced by ws_other[:, cutoff:]. ws, ws_other: [N, num_ws, w_dim]; cutoff: int scalar."""
    take_other = tf.cast(tf.range(ws.shape[1]) >= tf.cast(cutoff, tf.int32), ws.dtype)[None, :, None]
    return ws * (1 - take_other) + ws_other * take_other


def style_mix(ws: tf.Tensor, ws_other: tf.Tensor, prob: float, seed) -> tf.Tensor:
    """Mixing regularisation: with probability `prob`, ws[:, cutoff:] come from `ws_other`, one cutoff per
    batch (`style_mixing_cutoff`). ws, ws_other: [N, num_ws, w_dim]; seed: int [2]."""
    num_ws = ws.shape[1]
    if prob <= 0 or num_ws is None or num_ws < 2:
        return ws
    return mix_styles(ws, ws_other, style_mixing_cutoff(num_ws, prob, seed))
