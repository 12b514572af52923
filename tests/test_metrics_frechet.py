"""FID and KID against closed forms and plain numpy references."""

import numpy as np
import pytest

from tfstylegan.metrics.frechet import (feature_statistics, fid_from_features, frechet_distance,
                                        kernel_inception_distance, polynomial_mmd2)
from tfstylegan.utils.errors import UserError


def _features(n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + rng.normal(size=d)


def test_feature_statistics_match_explicit_formulas():
    x = _features(50, 4)
    mu, sigma = feature_statistics(x)
    centered = x - x.sum(axis=0) / 50
    assert np.allclose(mu, x.sum(axis=0) / 50)
    assert np.allclose(sigma, centered.T @ centered / 49)


def test_fid_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = rng.uniform(0.1, 3.0, size=8), rng.uniform(0.1, 3.0, size=8)
    # Diagonal case: |mu1 - mu2|^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2.
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_fid_one_dimensional_gaussians():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s.
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_fid_of_a_set_with_itself_is_zero():
    x = _features()
    assert abs(fid_from_features(x, x)) < 1e-8


def test_fid_grows_with_a_shift_as_squared_norm():
    x = _features()
    values = [fid_from_features(x, x + s) for s in (0.1, 0.5, 1.0)]
    assert values[0] < values[1] < values[2]
    # Shifting every feature by s leaves the covariance unchanged: FID = D * s^2.
    assert values == pytest.approx([16 * 0.01, 16 * 0.25, 16 * 1.0], rel=1e-6)


def test_fid_same_distribution_small_and_other_distribution_large():
    same = fid_from_features(_features(seed=1), _features(seed=2))
    other = fid_from_features(_features(seed=1), 2 * _features(seed=2))
    assert same < other


def _fid_by_eigenvalues(x, y):
    """Tr sqrt(S1 S2) = sum sqrt(eig(S1 S2)): S1 S2 is similar to a PSD matrix, so its eigenvalues are >= 0."""
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2).real
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.maximum(eig, 0)))


def test_fid_general_covariances_match_eigenvalue_formula():
    x, y = _features(200, 10, seed=7), _features(150, 10, seed=8)
    assert fid_from_features(x, y) == pytest.approx(_fid_by_eigenvalues(x, y), rel=1e-8)


def test_fid_singular_covariances_stay_finite_and_correct():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 12)), rng.normal(size=(6, 12))  # N < D: rank-deficient covariances
    value = fid_from_features(x, y)
    assert np.isfinite(value)
    assert value == pytest.approx(_fid_by_eigenvalues(x, y), rel=1e-4)


def test_fid_large_imaginary_part_is_an_error():
    # Not a covariance, but it makes sqrtm(sigma1 @ sigma2) genuinely complex.
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_fid_shape_checks():
    with pytest.raises(ValueError, match="Received"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="same dimension"):
        fid_from_features(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(UserError, match="at least 2"):
        fid_from_features(np.zeros((1, 3)), np.zeros((4, 3)))


def _mmd2_double_loop(x, y):
    m, d = x.shape
    k = lambda a, b: (float(np.dot(a, b)) / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_polynomial_mmd2_matches_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(7, 5)) + 0.5
    assert polynomial_mmd2(x, y) == pytest.approx(_mmd2_double_loop(x, y), rel=1e-12)


def test_kid_with_full_subsets_equals_mmd_of_all_points():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(9, 4)), rng.normal(size=(12, 4)) * 1.5
    # subset size = min(9, 12, 100) = 9: every real point each time, 9 of the 12 fake points.
    mean, std = kernel_inception_distance(real, fake[:9], num_subsets=3, subset_size=100)
    assert mean == pytest.approx(_mmd2_double_loop(fake[:9], real), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)  # the unbiased MMD^2 ignores the order of points


def test_kid_reference_loop_of_stylegan2_ada():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(60, 8)), rng.normal(size=(50, 8)) + 0.3
    mean, _ = kernel_inception_distance(real, fake, num_subsets=5, subset_size=20, seed=7)
    # stylegan2-ada-pytorch compute_kid with the same subset draws.
    draw = np.random.default_rng(7)
    n, m, t = real.shape[1], 20, 0.0
    for _ in range(5):
        x = fake[draw.choice(fake.shape[0], m, replace=False)]
        y = real[draw.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    assert mean == pytest.approx(t / 5 / m, rel=1e-10)


def test_kid_near_zero_for_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))  # one distribution
    same, same_std = kernel_inception_distance(real, fake, num_subsets=20, subset_size=200)
    shifted = [kernel_inception_distance(real, fake + s, num_subsets=20, subset_size=200)[0] for s in (0.3, 1.0)]
    assert abs(same) < 0.1 * shifted[0]
    assert shifted[0] < shifted[1]
    assert same_std > 0


def test_kid_seed_determinism():
    real, fake = _features(200, 8, seed=5), _features(200, 8, seed=6) + 0.2
    a = kernel_inception_distance(real, fake, num_subsets=10, subset_size=50, seed=3)
    b = kernel_inception_distance(real, fake, num_subsets=10, subset_size=50, seed=3)
    c = kernel_inception_distance(real, fake, num_subsets=10, subset_size=50, seed=4)
    assert a == b
    assert a != c


def test_kid_argument_checks():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(x, x, subset_size=1)
    with pytest.raises(ValueError, match="same dimension"):
        kernel_inception_distance(x, np.zeros((5, 2)))


def test_fid_retries_with_a_diagonal_offset_when_sqrtm_fails(monkeypatch):
    import scipy.linalg

    real_sqrtm, calls = scipy.linalg.sqrtm, []

    def failing_first(a):  # scipy can return inf/NaN for a numerically singular product
        calls.append(a)
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(scipy.linalg, "sqrtm", failing_first)
    rng = np.random.default_rng(0)
    s1, s2 = np.diag(rng.uniform(0, 1, size=4)), np.diag(rng.uniform(0, 1, size=4))
    value = frechet_distance(np.zeros(4), s1, np.ones(4), s2, eps=0.5)
    assert len(calls) == 2 and np.allclose(calls[1], (s1 + 0.5 * np.eye(4)) @ (s2 + 0.5 * np.eye(4)))
    # Only the cross term uses the offset covariances.
    expected = 4.0 + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt((np.diag(s1) + 0.5) * (np.diag(s2) + 0.5)))
    assert value == pytest.approx(expected, rel=1e-10)


def _fid_reference(f1, f2):
    """FID with Tr sqrtm(S1 S2) from the eigenvalues of S1 S2 (exact for PSD S1, S2)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2 * np.sum(np.sqrt(np.clip(eig.real, 0, None))))


def test_low_rank_fid_matches_the_exact_value():
    rng = np.random.default_rng(0)
    f1 = rng.standard_normal((12, 40))
    f2 = rng.standard_normal((15, 40)) * 1.5 + 0.3
    np.testing.assert_allclose(fid_from_features(f1, f2), _fid_reference(f1, f2), rtol=1e-6)
    assert fid_from_features(f1, f1) == pytest.approx(0.0, abs=1e-8)
    # more samples than dimensions: the sqrtm computation
    g1, g2 = rng.standard_normal((60, 8)), rng.standard_normal((70, 8)) + 1
    assert fid_from_features(g1, g2) == pytest.approx(_fid_reference(g1, g2), rel=1e-6)
