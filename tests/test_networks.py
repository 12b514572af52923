"""Networks: fidelity to stylegan2-ada-pytorch (parameter counts), shapes, configs, save/load, fp16."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from tfstylegan.config import get_preset, GeneratorConfig, DiscriminatorConfig
from tfstylegan.networks import (Discriminator, Generator, MinibatchStd, count_params, seed_to_z)


def _paper256(img_channels=1, c_dim=0):
    p = get_preset("paper256").with_data(img_channels=img_channels, c_dim=c_dim)
    return p.generator, p.discriminator


# Numbers printed by stylegan2-ada-pytorch (training/networks.py, cfg 'paper256': z=w=512,
# map=8, channel_base 16384, channel_max 512, 256x256).
@pytest.mark.parametrize("img_channels,c_dim,g_params,d_params", [
    (3, 0, 24_767_458, 24_001_089),
    (1, 0, 24_762_452, 24_000_961),
    (1, 3, 25_026_644, 26_366_400),
])
def test_paper256_parameter_counts_equal_stylegan2_ada_pytorch(img_channels, c_dim, g_params, d_params):
    gc, dc = _paper256(img_channels, c_dim)
    G, D = Generator(gc), Discriminator(dc)
    assert count_params(G) == g_params
    assert count_params(D) == d_params
    if img_channels == 3 and c_dim == 0:
        assert count_params(G.mapping) == 2_101_248
        assert count_params(G.synthesis) == 22_666_210
    # buffers are not trainable: w_avg and one noise_const per SynthesisLayer
    non_trainable = count_params(G, trainable_only=False) - count_params(G)
    noise = sum(r * r for r in gc.block_resolutions) * 2 - 4 * 4
    assert non_trainable == gc.w_dim + noise


def test_tiny_shapes_and_ranges():
    p = get_preset("tiny")
    G, D = Generator(p.generator), Discriminator(p.discriminator)
    z = tf.random.normal([4, p.generator.z_dim], seed=1)
    img = G(z)
    assert img.shape == (4, 16, 16, 1) and img.dtype == tf.float32
    assert np.isfinite(img.numpy()).all()
    logits = D(img)
    assert logits.shape == (4, 1) and logits.dtype == tf.float32
    ws = G.mapping(z)
    assert ws.shape == (4, G.num_ws, p.generator.w_dim)
    assert G.num_ws == p.generator.num_ws == 6


def test_noise_modes_and_seeded_noise():
    G = Generator(get_preset("tiny").generator)
    z = tf.random.normal([2, 32], seed=3)
    for layer in _synthesis_layers(G):
        layer.noise_strength.assign(0.5)
    a = G(z, noise_mode="const").numpy()
    b = G(z, noise_mode="const").numpy()
    np.testing.assert_array_equal(a, b)
    c = G(z, noise_mode="none").numpy()
    assert np.abs(a - c).max() > 1e-4
    seed = tf.constant([1, 2], tf.int32)
    r1, r2 = G(z, noise_seed=seed).numpy(), G(z, noise_seed=seed).numpy()
    np.testing.assert_array_equal(r1, r2)
    r3 = G(z, noise_seed=tf.constant([1, 3], tf.int32)).numpy()
    assert np.abs(r1 - r3).max() > 1e-4
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, noise_mode="bogus")
    # Given noise (one [N, r, r, 1] tensor per layer) replaces the draw: the stored buffers given
    # explicitly reproduce noise_mode='const'.
    ws = G.mapping(z)
    given = [tf.tile(layer.noise_const[None, :, :, None], [2, 1, 1, 1]) for layer in _synthesis_layers(G)]
    assert [g.shape[1] for g in given] == G.synthesis.noise_resolutions
    np.testing.assert_allclose(G.synthesis(ws, noise=given).numpy(), a, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="one tensor per synthesis layer"):
        G.synthesis(ws, noise=given[:-1])


def _synthesis_layers(G):
    for b in G.synthesis.blocks:
        for layer in (b.conv0, b.conv1):
            if layer is not None:
                yield layer


def test_truncation_and_w_avg():
    G = Generator(get_preset("tiny").generator)
    z = tf.random.normal([8, 32], seed=4)
    G.mapping(z, update_emas=True)
    w_avg = G.mapping.w_avg.numpy()
    assert np.abs(w_avg).sum() > 0  # updated
    ws0 = G.mapping(z, truncation_psi=0.0).numpy()
    np.testing.assert_allclose(ws0, np.broadcast_to(w_avg, ws0.shape), rtol=1e-6, atol=1e-6)
    ws1 = G.mapping(z).numpy()
    wsh = G.mapping(z, truncation_psi=0.5).numpy()
    np.testing.assert_allclose(wsh, w_avg + 0.5 * (ws1 - w_avg), rtol=1e-5, atol=1e-6)
    wsc = G.mapping(z, truncation_psi=0.5, truncation_cutoff=2).numpy()
    np.testing.assert_allclose(wsc[:, :2], wsh[:, :2], atol=1e-6)
    np.testing.assert_allclose(wsc[:, 2:], ws1[:, 2:], atol=1e-6)


def test_conditional_generator_and_discriminator():
    p = get_preset("tiny").with_data(c_dim=3)
    G, D = Generator(p.generator), Discriminator(p.discriminator)
    z = tf.random.normal([4, 32], seed=5)
    c = G.one_hot([0, 1, 2, 0])
    img = G(z, c, noise_mode="const")
    assert img.shape == (4, 16, 16, 1)
    logits = D(img, c)
    assert logits.shape == (4, 1)
    # class changes the output
    img2 = G(z, G.one_hot([1, 2, 0, 1]), noise_mode="const")
    assert np.abs(img.numpy() - img2.numpy()).max() > 1e-4
    with pytest.raises(ValueError, match="conditional"):
        G(z)
    with pytest.raises(ValueError, match="conditional"):
        D(img)


def test_minibatch_std_matches_numpy():
    x = np.random.RandomState(0).randn(8, 4, 4, 6).astype(np.float32)
    y = MinibatchStd(group_size=4, num_channels=2)(tf.constant(x)).numpy()
    assert y.shape == (8, 4, 4, 8)
    np.testing.assert_array_equal(y[..., :6], x)
    # reference: sample i belongs to group i % (N/G); std over the group; mean over pixels and channel slice
    n_groups = 2
    for i in range(8):
        members = x[[j for j in range(8) if j % n_groups == i % n_groups]]
        std = np.sqrt(((members - members.mean(0)) ** 2).mean(0) + 1e-8)  # [4, 4, 6]
        for f in range(2):
            expect = std[:, :, f * 3:(f + 1) * 3].mean()
            np.testing.assert_allclose(y[i, :, :, 6 + f], expect, rtol=1e-5)


@pytest.mark.parametrize("res,channels", [(16, 1), (32, 2), (64, 3)])
def test_any_resolution_and_channels(res, channels):
    gc = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=res, img_channels=channels, mapping_layers=1,
                         channel_base=128, channel_max=16)
    dc = DiscriminatorConfig(img_resolution=res, img_channels=channels, channel_base=128, channel_max=16,
                             mbstd_group_size=2)
    G, D = Generator(gc), Discriminator(dc)
    img = G(tf.zeros([2, 16]))
    assert img.shape == (2, res, res, channels)
    assert D(img).shape == (2, 1)


def test_get_config_round_trip_and_save_load(tmp_path):
    p = get_preset("tiny").with_data(c_dim=3)
    G, D = Generator(p.generator), Discriminator(p.discriminator)
    G2 = Generator.from_config(G.get_config())
    D2 = Discriminator.from_config(D.get_config())
    assert G2.config == G.config and D2.config == D.config
    z = tf.random.normal([2, 32], seed=6)
    c = G.one_hot([0, 2])
    img = G(z, c, noise_mode="const").numpy()
    G.save(tmp_path / "G.keras")
    D.save(tmp_path / "D.keras")
    G3 = keras.saving.load_model(tmp_path / "G.keras")
    D3 = keras.saving.load_model(tmp_path / "D.keras")
    np.testing.assert_allclose(G3(z, c, noise_mode="const").numpy(), img, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(D3(tf.constant(img), c).numpy(), D(tf.constant(img), c).numpy(), rtol=1e-5,
                               atol=1e-5)


def test_mixed_float16_runs_top_blocks_in_float16():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    p = get_preset("tiny")
    gc = p.generator.replace(num_fp16_res=2, conv_clamp=256)
    dc = p.discriminator.replace(num_fp16_res=2, conv_clamp=256)
    G, D = Generator(gc), Discriminator(dc)
    keras.mixed_precision.set_dtype_policy("float32")
    assert [b.compute_dtype for b in G.synthesis.blocks] == ["float32", "float16", "float16"]
    assert [b.compute_dtype for b in D.blocks] == ["float16", "float16"]
    assert all(w.dtype == "float32" for w in G.weights)
    img = G(tf.random.normal([4, 32], seed=7))
    assert img.dtype == tf.float32 and np.isfinite(img.numpy()).all()
    logits = D(img)
    assert logits.dtype == tf.float32 and np.isfinite(logits.numpy()).all()
    # same weights in float32 give nearly the same image
    G32 = Generator(gc)
    G32.set_weights(G.get_weights())
    z = tf.constant(np.random.RandomState(7).randn(4, 32).astype(np.float32))
    img32 = G32(z, noise_mode="const")
    img16 = G(z, noise_mode="const")
    assert np.abs(img32.numpy() - img16.numpy()).max() < 0.05


def test_xla_matches_eager():
    p = get_preset("tiny")
    G, D = Generator(p.generator), Discriminator(p.discriminator)
    z = tf.random.normal([4, 32], seed=8)
    eager = D(G(z, noise_mode="const")).numpy()
    xla = tf.function(lambda z: D(G(z, noise_mode="const")), jit_compile=True)(z).numpy()
    np.testing.assert_allclose(xla, eager, rtol=1e-4, atol=1e-4)


def test_fused_and_unfused_modconv_agree():
    G = Generator(get_preset("tiny").generator)
    z = tf.random.normal([3, 32], seed=9)
    a = G(z, noise_mode="const", fused_modconv=True).numpy()
    b = G(z, noise_mode="const", fused_modconv=False).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_freeze_d_blocks():
    D = Discriminator(get_preset("tiny").discriminator)
    total = count_params(D)
    D.freeze_blocks(1)
    assert count_params(D) < total
    D.freeze_blocks(0)
    assert count_params(D) == total


def test_seed_to_z_matches_official_convention():
    z = seed_to_z([0, 7], 512)
    np.testing.assert_array_equal(z[1], np.random.RandomState(7).randn(512).astype(np.float32))
    assert z.shape == (2, 512)
