"""Kendall τ-b under bootstrap resamples: against scipy on the expanded resamples, and the expansion against the
exact computation."""

import numpy as np
import pytest
from scipy.stats import kendalltau

from ntkscore.study import kendall


@pytest.mark.parametrize("n", [3, 8, 40, 150])
def test_resampled_tau_equals_scipy_on_expanded_sample(n):
    rng = np.random.default_rng(n)
    x, y = rng.integers(0, 4, n).astype(float), rng.normal(size=n).round(1)  # ties in both
    boot = kendall.Bootstrap(40, seed=n)
    counts = boot.counts(n)
    assert (counts.sum(axis=1) == n).all()
    taus = boot.taus(x, y, counts)
    expected = np.array([kendalltau(np.repeat(x, c), np.repeat(y, c)).statistic for c in counts])
    np.testing.assert_array_equal(np.isnan(taus), np.isnan(expected))
    np.testing.assert_allclose(taus[np.isfinite(taus)], expected[np.isfinite(expected)], atol=1e-12)
    assert kendall.tau_b(x, y) == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)


def test_concordance_against_brute_force_with_ties():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 6, 301).astype(float), rng.integers(0, 9, 301).astype(float)
    brute = (np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :])).sum(axis=1)
    np.testing.assert_array_equal(kendall.concordance(x, y), brute)


@pytest.mark.parametrize("strength", [0.0, 1.0, 3.0])
def test_expansion_above_the_threshold_matches_the_exact_interval(monkeypatch, strength):
    n, rng = 1200, np.random.default_rng(int(strength))
    x = rng.random(n)
    y = (strength * x + rng.random(n)).round(2)
    boot = kendall.Bootstrap(400)
    monkeypatch.setattr(kendall, "EXACT_UP_TO", 10**6)
    exact = np.array(boot.interval(x, y))
    monkeypatch.setattr(kendall, "EXACT_UP_TO", 10)
    expanded = np.array(boot.interval(x, y))
    assert np.abs(expanded - exact).max() < 0.03 * (exact[1] - exact[0])


def test_interval_of_constant_scores_is_undefined():
    assert np.isnan(kendall.Bootstrap(20).interval(np.ones(10), np.arange(10.0))).all()
