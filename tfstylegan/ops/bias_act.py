"""Fused bias + activation + gain + clamp (stylegan2-ada-pytorch `bias_act`), NHWC.

`bias_act(x, b, act='lrelu')` computes `clamp(act(x + b) * gain, -clamp, clamp)`,
each step optional. The default gain of each activation is ADA's `def_gain`
(sqrt(2) for relu, lrelu and swish, 1 otherwise), which keeps the signal's
magnitude under equalized learning rate.

Implementations: `'ref'` spells the piecewise activations out with elementary ops
(`tf.where`, `exp`, `log1p`); `'fast'` uses TensorFlow's fused kernels
(`tf.nn.leaky_relu`, `tf.nn.elu`, ...) and skips steps that are identities. Both
have gradients of any order and compute in the dtype of x (float16 included).
"""

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class ActivationSpec:
    """One entry of `activation_funcs`: default shape parameter and output gain."""
    def_alpha: float
    def_gain: float


activation_funcs = {
    'linear': ActivationSpec(def_alpha=0.0, def_gain=1.0),
    'relu': ActivationSpec(def_alpha=0.0, def_gain=float(np.sqrt(2))),
    'lrelu': ActivationSpec(def_alpha=0.2, def_gain=float(np.sqrt(2))),
    'tanh': ActivationSpec(def_alpha=0.0, def_gain=1.0),
    'sigmoid': ActivationSpec(def_alpha=0.0, def_gain=1.0),
    'elu': ActivationSpec(def_alpha=0.0, def_gain=1.0),
    'selu': ActivationSpec(def_alpha=0.0, def_gain=1.0),
    'softplus': ActivationSpec(def_alpha=0.0, def_gain=1.0),
    'swish': ActivationSpec(def_alpha=0.0, def_gain=float(np.sqrt(2))),
}

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _act_ref(x, act, alpha):
    """Activations from elementary ops (torch.nn.functional semantics)."""
    zero = tf.zeros_like(x)
    if act == 'linear':
        return x
    if act == 'relu':
        return tf.where(x > 0, x, zero)
    if act == 'lrelu':
        return tf.where(x > 0, x, x * alpha)
    if act == 'tanh':
        return tf.tanh(x)
    if act == 'sigmoid':
        return tf.sigmoid(x)
    if act == 'elu':
        return tf.where(x > 0, x, tf.exp(tf.minimum(x, zero)) - 1)
    if act == 'selu':
        return _SELU_SCALE * tf.where(x > 0, x, _SELU_ALPHA * (tf.exp(tf.minimum(x, zero)) - 1))
    if act == 'softplus':  # log(1 + exp(x)), evaluated without overflow
        return tf.maximum(x, zero) + tf.math.log1p(tf.exp(-tf.abs(x)))
    if act == 'swish':
        return x * tf.sigmoid(x)
    raise AssertionError(act)


def _act_fast(x, act, alpha):
    """Activations via TensorFlow's fused kernels."""
    if act == 'linear':
        return x
    if act == 'relu':
        return tf.nn.relu(x)
    if act == 'lrelu':
        return tf.nn.leaky_relu(x, alpha=alpha)
    if act == 'tanh':
        return tf.tanh(x)
    if act == 'sigmoid':
        return tf.sigmoid(x)
    if act == 'elu':
        return tf.nn.elu(x)
    if act == 'selu':
        return tf.nn.selu(x)
    if act == 'softplus':
        return tf.nn.softplus(x)
    if act == 'swish':
        return tf.sigmoid(x) * x
    raise AssertionError(act)


def bias_act(x, b=None, dim=-1, act='linear', alpha=None, gain=None, clamp=None, impl='fast'):
    """Add bias, apply an activation, scale by gain, clamp.

    Args:
        x: tensor of any shape, e.g. `[N, H, W, C]` or `[N, C]`.
        b: bias `[x.shape[dim]]` or None; cast to x's dtype.
        dim: axis of x that b runs along (default: the last, channels in NHWC).
        act: one of `activation_funcs` ('linear', 'relu', 'lrelu', 'tanh', 'sigmoid',
            'elu', 'selu', 'softplus', 'swish').
        alpha: shape parameter (lrelu slope), None = the activation's default (0.2).
        gain: output scale, None = the activation's default gain.
        clamp: clamp the output to `[-clamp, clamp]` after the gain, None = no clamp.
        impl: 'fast' or 'ref'.

    Returns:
        Tensor of x's shape and dtype.
    """
    if act not in activation_funcs:
        raise ValueError(f'Unknown activation; use one of {sorted(activation_funcs)}. Received: act={act!r}')
    if impl not in ('ref', 'fast'):
        raise ValueError(f"impl must be 'ref' or 'fast'. Received: impl={impl!r}")
    if clamp is not None and clamp < 0:
        raise ValueError(f'clamp must be None or >= 0. Received: clamp={clamp!r}')
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    x = tf.convert_to_tensor(x)

    if b is not None:
        b = tf.cast(b, x.dtype)
        rank = x.shape.rank
        axis = dim % rank
        if b.shape.rank != 1 or (x.shape[axis] is not None and b.shape[0] != x.shape[axis]):
            raise ValueError(f'Bias must have shape [{x.shape[axis]}] to match x {x.shape} on axis {dim}. '
                             f'Received shape: {b.shape}')
        x = x + tf.reshape(b, [-1 if i == axis else 1 for i in range(rank)])

    x = (_act_ref if impl == 'ref' else _act_fast)(x, act, alpha)
    if gain != 1 or impl == 'ref':
        x = x * tf.cast(gain, x.dtype)
    if clamp is not None:
        x = tf.clip_by_value(x, tf.cast(-clamp, x.dtype), tf.cast(clamp, x.dtype))
    return x
