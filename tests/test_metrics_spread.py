"""Pixel spread: golden values, the slow reference, and bad input."""

import numpy as np
import pytest

from tfstylegan.metrics.spread import pixel_spread, pixel_spread_reference
from tfstylegan.utils.errors import UserError


def test_golden_values():
    same = np.ones((6, 4, 4, 1))
    assert pixel_spread(same) == 0.0  # a collapsed generator: every image the same
    two = np.stack([-np.ones((4, 4, 1)), np.ones((4, 4, 1))])
    assert pixel_spread(two) == pytest.approx(1.0)  # population std of {-1, 1}
    half = np.zeros((2, 2, 2, 1))
    half[1, 0, 0, 0] = 2.0  # one pixel of four varies (std 1): mean 0.25
    assert pixel_spread(half) == pytest.approx(0.25)


def test_matches_the_slow_reference():
    x = np.random.default_rng(0).normal(0.3, 0.7, size=(9, 5, 5, 1)).astype(np.float32)
    assert pixel_spread(x) == pytest.approx(pixel_spread_reference(x), rel=1e-12)


def test_more_varied_sets_spread_more():
    rng = np.random.default_rng(1)
    base = rng.uniform(-1, 1, size=(1, 8, 8, 1))
    narrow = base + 0.05 * rng.normal(size=(16, 8, 8, 1))
    wide = base + 0.5 * rng.normal(size=(16, 8, 8, 1))
    assert pixel_spread(narrow) < 0.1 < 0.3 < pixel_spread(wide)


def test_bad_input():
    with pytest.raises(UserError, match="at least 2 images"):
        pixel_spread(np.zeros((1, 4, 4, 1)))
    with pytest.raises(UserError, match="NaN"):
        pixel_spread(np.array([[0.0, np.nan], [1.0, 2.0]]))
