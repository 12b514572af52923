"""Memorization report: copies are flagged, independent samples are not."""

import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from tfstylegan.metrics.memorization import closest_pairs_figure, memorization_report, nearest_neighbours
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import write_json


def _images(n, seed, size=8):
    """Smooth random 'images' [n, size, size, 1] in [-1, 1] from one distribution."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, size=(n, size // 2, size // 2, 1))
    return np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)


@pytest.mark.parametrize("batch_size", [1, 5, 1000])
def test_nearest_neighbours_match_brute_force(batch_size):
    rng = np.random.default_rng(0)
    query, reference = rng.normal(size=(17, 6)), rng.normal(size=(23, 6))
    full = cdist(query, reference)
    indices, distances = nearest_neighbours(query, reference, batch_size=batch_size)
    assert np.array_equal(indices, np.argmin(full, axis=1))
    assert np.allclose(distances, np.min(full, axis=1), atol=1e-12)
    assert indices.dtype == np.int64 and distances.dtype == np.float64


def test_exact_copies_have_distance_exactly_zero_even_in_uint8():
    train = (_images(30, 1) * 127.5 + 128).astype(np.uint8)
    picks = np.array([3, 17, 29, 0, 3])
    indices, distances = nearest_neighbours(train[picks], train, batch_size=7)
    assert np.array_equal(indices, picks)
    assert np.all(distances == 0.0)


def test_copying_generator_is_flagged():
    train, heldout = _images(200, 1), _images(100, 2)
    picks = np.random.default_rng(3).integers(0, 200, size=80)
    report = memorization_report(train[picks], train, heldout, batch_size=64)
    assert report.suspicious_fraction == 1.0
    assert np.all(report.gen_distances == 0.0)
    assert np.array_equal(report.gen_indices, picks)
    assert report.median_ratio == 0.0
    assert report.mannwhitney_p < 1e-10
    assert report.ks_p < 1e-10
    summary = report.to_dict()
    assert summary["num_suspicious"] == 80 and summary["gen_to_train"]["median"] == 0.0


def test_near_copies_are_flagged_too():
    train, heldout = _images(200, 1), _images(100, 2)
    noise = 0.01 * np.random.default_rng(4).normal(size=(60,) + train.shape[1:])
    report = memorization_report(train[:60] + noise, train, heldout)
    assert report.suspicious_fraction == 1.0
    assert report.median_ratio < 0.1


def test_independent_sample_is_not_flagged():
    train, heldout, generated = _images(300, 1), _images(150, 2), _images(150, 3)
    report = memorization_report(generated, train, heldout, percentile=1.0)
    assert report.suspicious_fraction < 0.05
    assert report.median_ratio == pytest.approx(1.0, abs=0.1)
    assert report.mannwhitney_p > 0.01
    assert report.ks_p > 0.01
    assert report.threshold == pytest.approx(np.percentile(report.heldout_distances, 1.0))
    assert report.suspicious_fraction == np.mean(report.gen_distances < report.threshold)


def test_percentile_sets_the_threshold():
    train, heldout, generated = _images(300, 1), _images(150, 2), _images(150, 3)
    low = memorization_report(generated, train, heldout, percentile=1.0)
    high = memorization_report(generated, train, heldout, percentile=50.0)
    assert high.threshold == pytest.approx(np.median(high.heldout_distances))
    assert high.suspicious_fraction > low.suspicious_fraction


def test_report_dict_is_valid_json(tmp_path):
    train = _images(40, 1)
    report = memorization_report(train[:10], train, train[:5])  # held-out copies too: median 0
    summary = report.to_dict()
    assert summary["median_ratio"] is None  # 0 / 0 has no value; JSON has no NaN
    # Held-out duplicates of train set the threshold to 0: copies are no closer than that baseline.
    assert summary["threshold"] == 0.0 and summary["suspicious_fraction"] == 0.0
    write_json(tmp_path / "memorization.json", summary)
    loaded = json.loads((tmp_path / "memorization.json").read_text())
    assert loaded["num_generated"] == 10 and loaded["num_train"] == 40 and loaded["num_heldout"] == 5
    assert set(loaded["gen_to_train"]) >= {"min", "mean", "median", "p01", "p99"}


def test_argument_checks():
    x = _images(10, 1)
    with pytest.raises(ValueError, match="percentile"):
        memorization_report(x, x, x, percentile=0)
    with pytest.raises(UserError, match="at least 2 held-out"):
        memorization_report(x, x, x[:1])
    with pytest.raises(ValueError, match="same size"):
        nearest_neighbours(x, _images(10, 1, size=4))


def test_closest_pairs_figure_puts_the_closest_pair_first():
    train = _images(20, 1)
    gen = train[[5, 6, 7]] + np.array([0.3, 0.0, 0.1])[:, None, None, None]
    indices, distances = nearest_neighbours(gen, train)
    figure = closest_pairs_figure(gen, train, indices, distances, n=2, padding=2)
    assert figure.dtype == np.uint8
    assert figure.shape == (2 * 8 + 2, 2 * 8 + 2, 1)
    from tfstylegan.utils.images import to_uint8
    assert np.array_equal(figure[:8, :8], to_uint8(gen[1]))  # distance 0 first
    assert np.array_equal(figure[:8, 10:], to_uint8(train[6]))
    assert np.array_equal(figure[10:, :8], to_uint8(gen[2]))  # then distance 0.1 * sqrt(64)
    assert np.array_equal(figure[10:, 10:], to_uint8(train[7]))
    assert np.all(figure[8:10] == 255)
    with pytest.raises(ValueError, match="one entry per generated image"):
        closest_pairs_figure(gen, train, indices[:2], distances[:2])
