"""Perceptual path length with toy mapping/synthesis callables whose answer is known."""

import numpy as np
import pytest

from tfstylegan.metrics.ppl import filtered_mean, perceptual_path_length
from tfstylegan.utils.errors import UserError

Z_DIM = 16


class Recorder:
    """Identity mapping (float64) that remembers every z and c it was given."""

    def __init__(self):
        self.z, self.c = [], []

    def __call__(self, z, c):
        self.z.append(np.array(z))
        self.c.append(None if c is None else np.array(c))
        return np.asarray(z, dtype=np.float64)


def squared_distance(a, b):
    return np.sum((a.reshape(len(a), -1) - b.reshape(len(b), -1)) ** 2, axis=1)


def _hand_filtered_mean(values):
    """numpy 'lower' 1st and 'higher' 99th percentile by explicit index arithmetic."""
    s = np.sort(values)
    n = len(s)
    lo = s[int(np.floor(0.01 * (n - 1)))]
    hi = s[int(np.ceil(0.99 * (n - 1)))]
    kept = [v for v in values if lo <= v <= hi]
    return sum(kept) / len(kept)


def test_filtered_mean_matches_hand_computation():
    values = np.random.default_rng(0).exponential(size=537)
    assert filtered_mean(values) == pytest.approx(_hand_filtered_mean(values), rel=1e-12)
    assert filtered_mean(np.arange(101.0)) == pytest.approx(50.0)  # drops 0 and 100 symmetrically


def test_linear_synthesis_gives_exact_per_sample_lengths():
    a = np.random.default_rng(1).normal(size=(Z_DIM, 24))
    mapping = Recorder()
    ppl = perceptual_path_length(mapping, lambda ws: ws @ a, squared_distance, num_samples=203,
                                 batch_size=20, seed=5, z_dim=Z_DIM)
    # For a linear g the length does not depend on t: |(z1 - z0) A|^2 for each sample.
    expected = []
    for z in mapping.z:
        b = len(z) // 2
        expected.extend(np.sum(((z[b:] - z[:b]) @ a) ** 2, axis=1))
    assert len(expected) == 203
    assert ppl == pytest.approx(_hand_filtered_mean(np.array(expected)), rel=1e-6)


def test_scaled_identity_matches_the_analytic_expectation():
    # g(w) = s w, z ~ N(0, I): E|s (z1 - z0)|^2 = 2 s^2 z_dim.
    ppl = perceptual_path_length(lambda z, c: np.asarray(z, np.float64), lambda ws: 3.0 * ws, squared_distance,
                                 num_samples=2000, batch_size=500, seed=0, z_dim=64)
    assert ppl == pytest.approx(2 * 9.0 * 64, rel=0.03)


def test_endpoints_lie_on_the_segment_at_t_and_t_plus_epsilon():
    mapping, seen = Recorder(), []

    def synthesis(ws):
        seen.append(np.array(ws))
        return ws

    perceptual_path_length(mapping, synthesis, squared_distance, num_samples=12, batch_size=12, seed=0,
                           z_dim=Z_DIM, epsilon=1e-2)
    z, ws = mapping.z[0], seen[0]
    w0, w1, wt0, wt1 = z[:12], z[12:], ws[:12], ws[12:]
    t = (wt0 - w0) / (w1 - w0)  # one t per sample, shared by every coordinate
    assert np.allclose(t, t[:, :1], atol=1e-9)
    assert np.all((t[:, 0] >= 0) & (t[:, 0] < 1))
    assert len(np.unique(np.round(t[:, 0], 6))) == 12  # t differs between samples
    assert np.allclose(wt1 - wt0, 1e-2 * (w1 - w0), atol=1e-9)


def test_ws_with_num_ws_axis_and_float32_networks():
    a = np.random.default_rng(2).normal(size=(Z_DIM, 8))
    kwargs = dict(num_samples=100, batch_size=32, seed=1, z_dim=Z_DIM)
    flat = perceptual_path_length(lambda z, c: np.asarray(z, np.float64), lambda ws: ws @ a, squared_distance,
                                  **kwargs)
    broadcast = perceptual_path_length(
        lambda z, c: np.repeat(np.asarray(z, np.float64)[:, None], 5, axis=1),  # ws [N, 5, w_dim]
        lambda ws: ws.mean(axis=1) @ a, squared_distance, **kwargs)
    assert broadcast == pytest.approx(flat, rel=1e-8)
    # float32 end to end, as the networks are: same value up to float32 rounding at eps = 1e-4.
    f32 = perceptual_path_length(lambda z, c: z, lambda ws: ws @ a.astype(np.float32), squared_distance, **kwargs)
    assert f32 == pytest.approx(flat, rel=0.01)


def test_seed_determinism():
    run = lambda seed: perceptual_path_length(  # noqa: E731
        lambda z, c: np.tanh(np.asarray(z, np.float64)), lambda ws: ws ** 2, squared_distance,
        num_samples=64, batch_size=16, seed=seed, z_dim=Z_DIM)
    assert run(3) == run(3)
    assert run(3) != run(4)


def test_labels_are_drawn_from_c_and_shared_by_both_endpoints():
    mapping = Recorder()
    labels = np.eye(3, dtype=np.float32)
    perceptual_path_length(mapping, lambda ws: ws, squared_distance, num_samples=40, batch_size=20, seed=0,
                           z_dim=Z_DIM, c=labels)
    for c in mapping.c:
        assert c.shape == (40, 3)
        assert np.array_equal(c[:20], c[20:])
        assert all(any(np.array_equal(row, label) for label in labels) for row in c)
    assert len({tuple(row) for c in mapping.c for row in c}) == 3


def test_bad_callables_and_arguments():
    ident = lambda z, c: z  # noqa: E731
    with pytest.raises(ValueError, match="one distance per pair"):
        perceptual_path_length(ident, lambda ws: ws, lambda a, b: np.zeros(1), num_samples=8, batch_size=4,
                               z_dim=Z_DIM)
    with pytest.raises(ValueError, match="mapping_fn must return"):
        perceptual_path_length(lambda z, c: z[:2], lambda ws: ws, squared_distance, num_samples=8,
                               batch_size=4, z_dim=Z_DIM)
    with pytest.raises(ValueError, match="NaN or inf"):
        perceptual_path_length(ident, lambda ws: ws * np.nan, squared_distance, num_samples=8, batch_size=4,
                               z_dim=Z_DIM)
    with pytest.raises(UserError, match="at least 2 samples"):
        perceptual_path_length(ident, lambda ws: ws, squared_distance, num_samples=1, z_dim=Z_DIM)
