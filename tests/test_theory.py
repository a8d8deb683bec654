import numpy as np
import pytest

from ntkscore.kernels import theory


def _psd(n, seed, rank=None):
    a = np.random.default_rng(seed).normal(size=(n, rank or n))
    return a @ a.T


def test_mixed_kernel_formula_and_limits():
    k, kr, kc = _psd(5, 0), _psd(5, 1), np.random.default_rng(2).normal(size=(5, 5))
    np.testing.assert_allclose(theory.mixed_kernel(k, kc, kr, 0.0), k)
    np.testing.assert_allclose(theory.mixed_kernel(k, kc, kr, 1.0), kr)
    half = theory.clean_accuracy_kernel(k, kc, kr, 0.5)
    np.testing.assert_allclose(half, 0.25 * k + 0.25 * (kc + kc.T) + 0.25 * kr)
    # it is the NTK of the mixed output (1−β) f(x) + β f(A(x)) when K̄ is the cross kernel of the same Jacobians
    j, ja = np.random.default_rng(3).normal(size=(2, 4, 9))
    beta = 0.3
    mixed = (1 - beta) * j + beta * ja
    np.testing.assert_allclose(theory.mixed_kernel(j @ j.T, j @ ja.T, ja @ ja.T, beta), mixed @ mixed.T, atol=1e-12)
    with pytest.raises(ValueError, match="beta must be in"):
        theory.mixed_kernel(k, kc, kr, 1.5)


def test_spectral_scores_against_numpy():
    k = _psd(6, 4)
    y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    s = theory.spectral_scores(k, y)
    eig = np.linalg.eigvalsh(k)
    assert s["lambda_min"] == pytest.approx(eig[0]) and s["lambda_max"] == pytest.approx(eig[-1])
    assert s["trace"] == pytest.approx(np.trace(k))
    assert s["condition"] == pytest.approx(eig[-1] / eig[0], rel=1e-4)  # up to the ridge δ
    assert s["bound"] == pytest.approx(np.sqrt(np.trace(y.T @ np.linalg.solve(k, y)) / 6), rel=1e-5)  # ridge δ_max
    assert theory.min_eigenvalue(k) == pytest.approx(eig[0])
    assert 1.0 <= s["effective_rank"] <= 6.0
    assert theory.spectral_scores(np.eye(4))["effective_rank"] == pytest.approx(4.0)


def test_zero_and_singular_kernels_stay_finite():
    for k in (np.zeros((4, 4)), _psd(4, 5, rank=1)):
        s = theory.spectral_scores(k, np.eye(4))
        assert all(np.isfinite(v) for v in s.values()), s


def test_rank_deficient_float32_kernel_ranks_worst():
    """A kernel with a null space (eigenvalues ±rounding in float32) has a large bound, not the clamped 0 of a
    negative quadratic form: built from known eigenvectors, so the expected bound is Σ (u_iᵀy)²/(λ_i⁺ + δ_max)."""
    n = 6
    u = np.linalg.qr(np.random.default_rng(7).normal(size=(n, n)))[0]
    y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    full = np.array([0.5, 0.8, 1.0, 2.0, 3.0, 4.0])
    deficient = np.array([-3e-7, 2e-9, 1.0, 2.0, 3.0, 4.0])  # a rank-4 kernel after float32 rounding
    scores = {}
    for name, lam in (("full", full), ("deficient", deficient)):
        k = (u * lam) @ u.T
        scores[name] = theory.spectral_scores(k.astype(np.float32), y)
        delta = theory.JITTER * lam.max() + theory.TINY
        expected = np.sqrt(np.sum((u.T @ y) ** 2 / (np.clip(lam, 0, None) + delta)[:, None]) / n)
        assert scores[name]["bound"] == pytest.approx(expected, rel=1e-3 if name == "full" else 0.5)
    assert scores["deficient"]["bound"] > 100 * scores["full"]["bound"]
    assert -np.log(scores["deficient"]["bound"]) < -np.log(scores["full"]["bound"])  # ranks worst as a score
    assert scores["deficient"]["condition"] > 1e6 * scores["full"]["condition"]


def test_targets_for_full_kernels_and_errors():
    assert theory.one_hot_targets([0, 2], 3, 2).shape == (2, 3)
    assert theory.one_hot_targets([0, 2], 3, 6).shape == (6, 1)
    with pytest.raises(ValueError, match="matches neither"):
        theory.one_hot_targets([0, 2], 3, 5)
    with pytest.raises(ValueError, match="square matrix"):
        theory.spectral_scores(np.zeros((2, 3)))
