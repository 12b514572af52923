"""Improved precision/recall: golden cases and the blockwise distances against brute force."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from tfstylegan.metrics.precision_recall import (inside_manifold, kth_neighbour_radii, pairwise_distances,
                                                 precision_recall)
from tfstylegan.utils.errors import UserError


def _clusters(centers, n_per, seed, scale=0.1):
    rng = np.random.default_rng(seed)
    return np.concatenate([c + scale * rng.normal(size=(n_per, len(c))) for c in centers])


CENTERS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])  # four separated modes in 2-D


def test_pairwise_distances_match_cdist():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(13, 6)), rng.normal(size=(9, 6))
    assert np.allclose(pairwise_distances(a, b), cdist(a, b), atol=1e-10)


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_kth_neighbour_radii_match_brute_force(batch_size):
    x = np.random.default_rng(1).normal(size=(40, 5))
    expected = np.sort(cdist(x, x), axis=1)[:, 3]  # index 0 is the point itself
    assert np.allclose(kth_neighbour_radii(x, k=3, batch_size=batch_size), expected, atol=1e-10)


def test_inside_manifold_matches_brute_force():
    rng = np.random.default_rng(2)
    manifold, probes = rng.normal(size=(30, 4)), 1.5 * rng.normal(size=(25, 4))
    radii = kth_neighbour_radii(manifold, k=3)
    expected = np.any(cdist(probes, manifold) <= radii[None, :], axis=1)
    got = inside_manifold(probes, manifold, radii, batch_size=6)
    assert np.array_equal(got, expected)
    assert 0 < got.sum() < len(got)  # the case says something


def test_one_dimensional_golden_values():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # k=1 radii: 1 each
    fake = np.array([[0.5], [10.0], [4.0]])  # k=1 radii: 3.5, 6, 3.5
    # 0.5 is inside, 10 is outside, 4 lies exactly on the ball of 3 (radius 1): inside, as `<=`.
    assert precision_recall(real, fake, k=1) == {"precision": 2 / 3, "recall": 1.0}


def test_identical_sets_give_one():
    x = _clusters(CENTERS, 50, seed=0)
    assert precision_recall(x, x.copy(), k=3, batch_size=64) == {"precision": 1.0, "recall": 1.0}


def test_disjoint_far_apart_sets_give_zero():
    real = _clusters(CENTERS, 50, seed=0)
    fake = _clusters(CENTERS + 100.0, 50, seed=1)
    assert precision_recall(real, fake) == {"precision": 0.0, "recall": 0.0}


def test_fake_covering_half_the_modes():
    real = _clusters(CENTERS, 200, seed=0)
    fake = _clusters(CENTERS[:2], 400, seed=1)
    result = precision_recall(real, fake, k=3, batch_size=256)
    assert result["recall"] == pytest.approx(0.5, abs=0.03)
    assert result["precision"] >= 0.95


def test_block_size_does_not_change_the_result():
    real = _clusters(CENTERS, 60, seed=3, scale=2.0)
    fake = _clusters(CENTERS, 50, seed=4, scale=3.0)
    small = precision_recall(real, fake, batch_size=17)
    large = precision_recall(real, fake, batch_size=10_000)
    assert small == large
    assert 0 < small["precision"] < 1 and 0 < small["recall"] < 1


def test_images_are_flattened_and_float32_accepted():
    rng = np.random.default_rng(5)
    imgs = rng.uniform(-1, 1, size=(20, 4, 4, 1)).astype(np.float32)
    assert precision_recall(imgs, imgs) == {"precision": 1.0, "recall": 1.0}


def test_argument_checks():
    with pytest.raises(UserError, match="more points than k"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
    with pytest.raises(ValueError, match="same dimension"):
        precision_recall(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="Received: shape="):
        precision_recall(np.zeros(10), np.zeros((10, 1)))
