"""Inception Score: golden values, the reference formula and input validation."""

import math

import numpy as np
import pytest

from tfstylegan.metrics.inception_score import inception_score
from tfstylegan.utils.errors import UserError


def _reference_inception_score(preds, splits):
    """openai/improved-gan inception_score.py, for strictly positive predictions."""
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits):((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        kl = np.mean(np.sum(kl, 1))
        scores.append(np.exp(kl))
    return np.mean(scores), np.std(scores)


def test_uniform_predictions_give_one():
    mean, std = inception_score(np.full((50, 3), 1 / 3), num_splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_confident_balanced_predictions_give_num_classes():
    probs = np.eye(3)[np.arange(30) % 3]  # every split of 3 rows holds each class once
    mean, std = inception_score(probs, num_splits=10)
    assert mean == pytest.approx(3.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    mean4, _ = inception_score(np.eye(4)[np.arange(40) % 4], num_splits=10)
    assert mean4 == pytest.approx(4.0, abs=1e-12)


def test_hand_computed_value():
    probs = np.array([[1.0, 0.0, 0.0],
                      [0.5, 0.5, 0.0],
                      [0.0, 0.0, 1.0],
                      [0.0, 1.0, 0.0]])
    # Split 1: p(y) = (0.75, 0.25, 0); KL rows: ln(1/0.75) and 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25).
    kl1 = (math.log(1 / 0.75) + 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)) / 2
    s1 = math.exp(kl1)  # = (4/3) ** 0.75
    # Split 2: p(y) = (0, 0.5, 0.5); each row has KL = ln(1 / 0.5).
    s2 = math.exp(math.log(2.0))
    mean, std = inception_score(probs, num_splits=2)
    assert s1 == pytest.approx((4 / 3) ** 0.75)
    assert mean == pytest.approx((s1 + s2) / 2, rel=1e-12)
    assert std == pytest.approx(abs(s1 - s2) / 2, rel=1e-12)
    # One split: p(y) = (0.375, 0.375, 0.25).
    py = (0.375, 0.375, 0.25)
    kl = (math.log(1 / py[0]) + 0.5 * math.log(0.5 / py[0]) + 0.5 * math.log(0.5 / py[1])
          + math.log(1 / py[2]) + math.log(1 / py[1])) / 4
    assert inception_score(probs, num_splits=1) == pytest.approx((math.exp(kl), 0.0), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_code_and_lies_in_range(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([0.3, 0.5, 0.8], size=157)  # uneven splits: 157 rows into 10 parts
    mean, std = inception_score(probs, num_splits=10)
    ref_mean, ref_std = _reference_inception_score(probs, 10)
    assert mean == pytest.approx(ref_mean, rel=1e-12)
    assert std == pytest.approx(ref_std, rel=1e-10)
    assert 1.0 <= mean <= 3.0


def test_more_confident_predictions_score_higher():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    soft = 0.6 * np.eye(3)[labels] + 0.4 / 3
    sharp = 0.95 * np.eye(3)[labels] + 0.05 / 3
    assert inception_score(sharp)[0] > inception_score(soft)[0] > 1.0


@pytest.mark.parametrize("probs, match", [
    (np.full(9, 1 / 3), "2-D"),
    (np.full((10, 3), np.nan), "NaN"),
    (np.full((10, 3), 0.5), "sum to 1"),
    (np.array([[2.0, -1.0, 0.0]] * 10), r"\[0, 1\]"),
])
def test_invalid_input_raises(probs, match):
    with pytest.raises(ValueError, match=match) as info:
        inception_score(probs, num_splits=2)
    assert "Received: shape=" in str(info.value)


def test_too_few_rows_for_splits_is_a_user_error():
    with pytest.raises(UserError, match="at least one image per split"):
        inception_score(np.full((5, 3), 1 / 3), num_splits=10)
