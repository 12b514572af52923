"""Losses: golden values on fixed inputs (TF-GAN losses_impl_test style) and analytic regularisers."""

import numpy as np
import tensorflow as tf

from tfstylegan import losses


def test_nonsaturating_generator_loss_golden():
    logits = tf.constant([[-2.0], [0.0], [3.0]])
    got = losses.nonsaturating_generator_loss(logits).numpy()[:, 0]
    expect = [np.log1p(np.exp(2.0)), np.log(2.0), np.log1p(np.exp(-3.0))]
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    np.testing.assert_allclose(got, [2.126928, 0.693147, 0.048587], atol=1e-6)


def test_logistic_discriminator_loss_golden():
    real = tf.constant([[1.0], [-1.0]])
    fake = tf.constant([[0.5], [-2.0]])
    got = losses.logistic_discriminator_loss(real, fake).numpy()[:, 0]
    expect = [np.log1p(np.exp(0.5)) + np.log1p(np.exp(-1.0)), np.log1p(np.exp(-2.0)) + np.log1p(np.exp(1.0))]
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    np.testing.assert_allclose(losses.logistic_discriminator_loss(real, None).numpy()[:, 0],
                               np.log1p(np.exp(-np.array([1.0, -1.0]))), rtol=1e-6)


def test_r1_penalty_of_linear_and_quadratic_discriminators():
    rng = np.random.RandomState(0)
    a = tf.constant(rng.randn(1, 4, 4, 2).astype(np.float32))
    x = tf.constant(rng.randn(3, 4, 4, 2).astype(np.float32))
    # D(x) = sum(a * x): grad = a, penalty = sum(a^2) for every sample
    pen, logits = losses.r1_penalty(lambda img: tf.reduce_sum(a * img, axis=[1, 2, 3])[:, None], x)
    np.testing.assert_allclose(pen.numpy(), np.full(3, np.sum(a.numpy() ** 2)), rtol=1e-5)
    assert logits.shape == (3, 1)
    # D(x) = 0.5 * sum(x^2): grad = x, penalty = sum(x^2)
    pen, _ = losses.r1_penalty(lambda img: 0.5 * tf.reduce_sum(img ** 2, axis=[1, 2, 3])[:, None], x)
    np.testing.assert_allclose(pen.numpy(), np.sum(x.numpy() ** 2, axis=(1, 2, 3)), rtol=1e-5)


def test_r1_penalty_second_order_gradient():
    w = tf.Variable(2.0)
    x = tf.constant(np.random.RandomState(1).randn(2, 4, 4, 1).astype(np.float32))
    with tf.GradientTape() as tape:
        pen, _ = losses.r1_penalty(lambda img: w * tf.reduce_sum(img ** 2, axis=[1, 2, 3])[:, None], x)
        total = tf.reduce_sum(pen)
    # grad_x = 2 w x -> penalty = 4 w^2 sum(x^2) -> d/dw = 8 w sum(x^2)
    np.testing.assert_allclose(tape.gradient(total, w).numpy(), 8 * 2.0 * np.sum(x.numpy() ** 2), rtol=1e-4)


def test_path_length_penalty_analytic_linear_synthesis():
    rng = np.random.RandomState(2)
    n, num_ws, w_dim, h = 4, 3, 5, 2
    m = rng.randn(num_ws, w_dim, h * h).astype(np.float32)
    ws = tf.constant(rng.randn(n, num_ws, w_dim).astype(np.float32))
    y = rng.randn(n, h, h, 1).astype(np.float32)

    def synth(ws):
        return tf.reshape(tf.einsum("nkd,kdp->np", ws, m), [-1, h, h, 1])

    pen, new_mean, lengths = losses.path_length_penalty(synth, ws, pl_mean=tf.constant(1.0), pl_decay=0.01,
                                                        noise=tf.constant(y))
    # J^T y for sample i, w k: m[k] @ y_i -> [w_dim]
    jty = np.einsum("kdp,np->nkd", m, y.reshape(n, -1))
    expect_len = np.sqrt((jty ** 2).sum(2).mean(1))
    np.testing.assert_allclose(lengths.numpy(), expect_len, rtol=1e-5)
    expect_mean = 1.0 + 0.01 * (expect_len.mean() - 1.0)
    np.testing.assert_allclose(new_mean.numpy(), expect_mean, rtol=1e-6)
    np.testing.assert_allclose(pen.numpy(), (expect_len - expect_mean) ** 2, rtol=1e-4)


def test_style_mix_crossover():
    ws = tf.zeros([2, 6, 3])
    other = tf.ones([2, 6, 3])
    always = losses.style_mix(ws, other, prob=1.0, seed=tf.constant([0, 5])).numpy()
    col = always[0, :, 0]
    cutoff = int(np.argmax(col))
    assert 1 <= cutoff < 6 and (col[:cutoff] == 0).all() and (col[cutoff:] == 1).all()
    np.testing.assert_array_equal(always[0], always[1])  # one cutoff per batch
    never = losses.style_mix(ws, other, prob=0.0, seed=tf.constant([0, 5])).numpy()
    assert (never == 0).all()
    # over many seeds, p=0.9 mixes about 90% of batches
    mixed = [losses.style_mix(ws, other, 0.9, tf.constant([s, 1])).numpy().max() > 0 for s in range(200)]
    assert 0.8 < np.mean(mixed) < 0.97
