"""Counter-based random numbers that are identical eagerly and under XLA.

TF's stateless ops (Philox included) give different numbers under XLA than in the CPU kernels
(measured on TF 2.21), so a compiled train step would draw differently from the same step run
eagerly. These come from a 32-bit integer hash (lowbias32, Wellons' hash-prospector) of
(seed, sample, column) in int64 arithmetic, which is exact in both; the number for sample i does
not depend on the batch size. Used by the augmentation, style mixing and the training phases.
"""

from __future__ import annotations

import math

import tensorflow as tf

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _c(value: int) -> tf.Tensor:
    return tf.constant(value, tf.int64)


def _mulmod32(x: tf.Tensor, k: int) -> tf.Tensor:
    """(x * k) mod 2^32 for 0 <= x < 2^32, with every product below 2^49 (no int64 overflow)."""
    lo = x * _c(k & 0xFFFF)
    hi = tf.bitwise.left_shift(tf.bitwise.bitwise_and(x * _c(k >> 16), _c(0xFFFF)), _c(16))
    return tf.bitwise.bitwise_and(lo + hi, _c(_MASK32))


def _mix32(x: tf.Tensor) -> tf.Tensor:
    """lowbias32 integer hash of int64 values in [0, 2^32)."""
    def xorshift(v, s):
        return tf.bitwise.bitwise_xor(v, tf.bitwise.right_shift(v, _c(s)))
    return xorshift(_mulmod32(xorshift(_mulmod32(xorshift(x, 16), 0x7FEB352D), 15), 0x846CA68B), 16)


def _random_bits(seed: tf.Tensor, batch_size, columns: int, stream: int) -> tf.Tensor:
    """[N, columns] int64 hash values in [0, 2^32) for `seed` (int [2]) and a stream id."""
    seed = tf.cast(tf.reshape(seed, [2]), tf.int64)
    words = [tf.bitwise.bitwise_and(tf.bitwise.right_shift(seed[i], _c(shift)), _c(_MASK32))
             for i in (0, 1) for shift in (0, 32)]
    key = _c(_GOLDEN * (stream + 1) & _MASK32)
    for word in words:
        key = _mix32(tf.bitwise.bitwise_xor(key, word))
    counter = tf.reshape(tf.range(tf.cast(batch_size, tf.int64) * columns, dtype=tf.int64), [-1, columns])
    bits = _mix32(tf.bitwise.bitwise_and(counter + key, _c(_MASK32)))
    return _mix32(tf.bitwise.bitwise_xor(bits, _mix32(tf.bitwise.bitwise_and(key + _c(_GOLDEN), _c(_MASK32)))))


def _to_unit(bits: tf.Tensor, offset: float = 0.0) -> tf.Tensor:
    """Top 24 bits as float32 (bits + offset) / 2^24: exact, in [0, 1) for offset 0, (0, 1] for 1."""
    return (tf.cast(tf.bitwise.right_shift(bits, _c(8)), tf.float32) + offset) * (2.0 ** -24)


def random_uniform(seed: tf.Tensor, batch_size, columns: int) -> tf.Tensor:
    """[N, columns] float32 uniform in [0, 1), identical eagerly and under XLA."""
    return _to_unit(_random_bits(seed, batch_size, columns, stream=0))


def random_normal(seed: tf.Tensor, batch_size, columns: int) -> tf.Tensor:
    """[N, columns] float32 standard normal (Box-Muller); eager and XLA agree to float rounding."""
    u1 = _to_unit(_random_bits(seed, batch_size, columns, stream=1), offset=1.0)  # (0, 1]: log is finite
    u2 = _to_unit(_random_bits(seed, batch_size, columns, stream=2))
    return tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * math.pi * u2)
