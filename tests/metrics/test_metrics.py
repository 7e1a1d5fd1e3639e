"""Numerical checks of the evaluation metrics against closed forms and brute-force references."""

import math

import numpy as np
import pytest

from engine.metrics.frechet import feature_stats, frechet_against, frechet_distance, frechet_from_stats
from engine.metrics.kid import KID, kernel_inception_distance
from engine.metrics.prdc import prdc


def _random_spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T + (0.0 if rank else 0.1) * np.eye(d)


# ---------------------------------------------------------------- Fréchet distance


def test_feature_stats_matches_definition():
    x = np.random.default_rng(0).normal(size=(50, 4))
    mu, sigma = feature_stats(x)
    centred = x - x.mean(axis=0)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.mean(axis=0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(sigma, centred.T @ centred / 49, rtol=1e-13, atol=1e-15)


def test_fd_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 3.5]), np.array([1.0, -1.0, 0.5, 3.0])
    s1, s2 = np.array([1.0, 4.0, 0.25, 9.0]), np.array([2.0, 1.0, 0.5, 16.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    got = frechet_from_stats(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-6)


def test_fd_2x2_non_commuting_closed_form():
    # For 2x2 M = S1 S2 (similar to a PSD matrix): tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)).
    s1 = np.array([[2.0, 0.9], [0.9, 1.0]])
    s2 = np.array([[1.0, -0.7], [-0.7, 3.0]])
    assert not np.allclose(s1 @ s2, s2 @ s1)
    mu1, mu2 = np.array([0.3, -1.2]), np.array([1.1, 0.4])
    tr_sqrt = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)


def _denman_beavers_sqrt(a, iters=60):
    y, z = a.copy(), np.eye(len(a))
    for _ in range(iters):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


@pytest.mark.parametrize("d", [3, 8, 20])
def test_fd_full_covariances_against_independent_routes(d):
    rng = np.random.default_rng(d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    base = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
    # Route 1: eigenvalues of the (non-symmetric) product S1 S2 are those of S1^½ S2 S1^½.
    tr_eig = np.sum(np.sqrt(np.linalg.eigvals(s1 @ s2).real))
    # Route 2: Denman-Beavers iteration for sqrt(S1 S2).
    tr_db = np.trace(_denman_beavers_sqrt(s1 @ s2))
    got = frechet_from_stats(mu1, s1, mu2, s2)
    assert got == pytest.approx(base - 2 * tr_eig, rel=1e-6)
    assert got == pytest.approx(base - 2 * tr_db, rel=1e-6)


def test_fd_scaled_covariance():
    s = _random_spd(np.random.default_rng(1), 6)
    mu = np.zeros(6)
    # S2 = c S1 -> tr sqrt = sqrt(c) tr S1, FD = (1 - sqrt(c))^2 tr S1.
    assert frechet_from_stats(mu, s, mu, 4.0 * s) == pytest.approx(np.trace(s), rel=1e-6)


def test_fd_self_is_zero_and_symmetric():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(200, 16)), rng.normal(0.5, 1.2, size=(150, 16))
    self_fd = frechet_distance(a, a)
    assert 0.0 <= self_fd < 1e-6
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, b) > 0.1


def test_fd_never_negative_for_equal_stats():
    rng = np.random.default_rng(3)
    for d in (1, 5, 64):
        mu, s = rng.normal(size=d), _random_spd(rng, d, rank=max(1, d // 2))
        fd = frechet_from_stats(mu, s, mu.copy(), s.copy())
        assert fd >= 0.0 and fd < 1e-6


def test_fd_rank_deficient_is_finite():
    rng = np.random.default_rng(4)
    wide_a, wide_b = rng.normal(size=(10, 40)), rng.normal(size=(12, 40))  # D > N
    fd = frechet_distance(wide_a, wide_b)
    assert math.isfinite(fd) and fd >= 0.0
    const_a = rng.normal(size=(100, 8))
    const_b = rng.normal(size=(100, 8))
    const_a[:, 3] = 2.0  # dead channel: zero variance
    const_b[:, 3] = 2.0
    fd = frechet_distance(const_a, const_b)
    assert math.isfinite(fd) and fd >= 0.0
    assert 0.0 <= frechet_distance(const_a, const_a) < 1e-6
    assert 0.0 <= frechet_distance(wide_a, wide_a) < 1e-6


def test_fd_against_a_fixed_reference_matches_the_two_sided_formula():
    rng = np.random.default_rng(5)
    reference = feature_stats(rng.normal(size=(300, 16)))
    to_reference = frechet_against(*reference)
    for scale in (0.5, 1.0, 3.0):
        other = feature_stats(rng.normal(0.2, scale, size=(200, 16)) @ rng.normal(size=(16, 16)))
        assert to_reference(*other) == pytest.approx(frechet_from_stats(*other, *reference), rel=1e-9)
    assert to_reference(*reference) < 1e-6
    with pytest.raises(ValueError):
        to_reference(np.zeros(3), np.eye(3))


def test_fd_rejects_bad_shapes():
    with pytest.raises(ValueError):
        frechet_from_stats(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((5, 2)), np.array([[np.nan, 0.0], [1.0, 1.0]]))


# ---------------------------------------------------------------- KID


def _mmd2_loop(x, y):
    m, d = x.shape
    k = lambda p, q: (p @ q / d + 1.0) ** 3  # noqa: E731
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return kxx + kyy - 2 * kxy


def test_kid_matches_loop_estimator_on_full_sets():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(25, 6)), rng.normal(0.3, 1.0, size=(30, 6))
    # subset_size >= len(real): every subset holds all real rows (MMD^2 ignores order), so
    # compare with the same 25 fake rows the first draw picks.
    kid = kernel_inception_distance(real, fake, subsets=1, subset_size=1000, seed=7)
    pick = np.random.default_rng(7).choice(30, 25, replace=False)
    assert kid.mean == pytest.approx(_mmd2_loop(fake[pick], real), rel=1e-10, abs=1e-12)
    assert kid.std == 0.0


def test_kid_identical_sets_near_zero_and_shift_positive():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(1000, 32))
    same = kernel_inception_distance(real, real, subsets=10, subset_size=500)
    assert isinstance(same, KID)
    # Literally identical arrays: subsets share rows, whose large self-kernel k(x, x) lands in
    # the cross term only, so the estimate is slightly negative, O(1/N) (about -14/N here).
    assert abs(same.mean) < 0.03
    fresh = kernel_inception_distance(real, rng.normal(size=(1000, 32)), subsets=10, subset_size=500)
    assert abs(fresh.mean) < 3 * fresh.std + 1e-3  # independent draws of one law: ~0
    shifted = kernel_inception_distance(real, real + 1.0, subsets=10, subset_size=500)
    assert shifted.mean > 1.0 and shifted.mean > 10 * shifted.std
    assert abs(same.mean) < 0.01 * shifted.mean


def test_kid_deterministic_for_seed():
    rng = np.random.default_rng(8)
    real, fake = rng.normal(size=(300, 16)), rng.normal(0.1, 1.0, size=(250, 16))
    a = kernel_inception_distance(real, fake, subsets=10, subset_size=100, seed=3)
    b = kernel_inception_distance(real, fake, subsets=10, subset_size=100, seed=3)
    c = kernel_inception_distance(real, fake, subsets=10, subset_size=100, seed=4)
    assert a == b
    assert a != c


def test_kid_rejects_mismatched_dims():
    with pytest.raises(ValueError):
        kernel_inception_distance(np.zeros((10, 3)), np.zeros((10, 4)))


# ---------------------------------------------------------------- PRDC


def _prdc_loop(real, fake, k):
    dist = lambda p, q: math.sqrt(sum((a - b) ** 2 for a, b in zip(p, q)))  # noqa: E731
    r_real = [sorted(dist(p, q) for q in real)[k] for p in real]
    r_fake = [sorted(dist(p, q) for q in fake)[k] for p in fake]
    d = [[dist(p, q) for q in fake] for p in real]
    nr, nf = len(real), len(fake)
    precision = sum(any(d[i][j] < r_real[i] for i in range(nr)) for j in range(nf)) / nf
    recall = sum(any(d[i][j] < r_fake[j] for j in range(nf)) for i in range(nr)) / nr
    density = sum(d[i][j] < r_real[i] for i in range(nr) for j in range(nf)) / (k * nf)
    coverage = sum(min(d[i]) < r_real[i] for i in range(nr)) / nr
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prdc_matches_brute_force(k, seed):
    rng = np.random.default_rng(seed)
    real, fake = rng.normal(size=(40, 5)), rng.normal(0.8, 0.7, size=(30, 5))
    got, ref = prdc(real, fake, k=k), _prdc_loop(real.tolist(), fake.tolist(), k)
    assert got.keys() == ref.keys()
    for key in ref:
        assert got[key] == pytest.approx(ref[key], abs=1e-12), key
    assert 0 < min(got.values()) and min(got["precision"], got["recall"]) < 1  # not trivial


def test_prdc_identical_sets():
    real = np.random.default_rng(9).normal(size=(60, 8))
    got = prdc(real, real.copy(), k=5)
    assert got["precision"] == got["recall"] == got["coverage"] == 1.0
    assert got["density"] > 0


def test_prdc_chunking_is_identical():
    rng = np.random.default_rng(10)
    real, fake = rng.normal(size=(300, 12)), rng.normal(0.2, 1.0, size=(257, 12))
    full = prdc(real, fake, k=4, chunk_size=10_000)
    for chunk in (1, 7, 64, 299):
        assert prdc(real, fake, k=4, chunk_size=chunk) == full


def test_prdc_rejects_bad_k():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError):
        prdc(x, x, k=5)
