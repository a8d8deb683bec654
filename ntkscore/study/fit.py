"""Fit a per-cell :class:`ntkscore.scores.formula.Formula` to benchmark accuracies: least squares, cross-validated τ and
forward selection of terms.

With ``T`` the cells × terms matrix of :func:`ntkscore.scores.formula.term` values, each column standardised, and ``r``
the target's rank in [0, 1] (percentile ranks, ties averaged), the weights solve ``min_w ‖r − a − T w‖²``; they are
returned in the terms' raw units (``w_t / σ_t``), so the formula needs no population statistics. Cells where a
magnitude sits at :data:`ntkscore.scores.formula.FLOOR` (a zero kernel) or any term is not finite are left out of the
fit (the formula still scores them: lowest). Selection adds, one at a time, the term that most raises the
``folds``-fold cross-validated Kendall τ between the out-of-fold predictions and the target, and stops when the
gain is below ``min_gain``: choose on a development split only, and report on the rest.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..scores import formula as formula_lib


def term_matrix(table: Mapping[str, Any], terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(T, usable)``: the cells × terms matrix and the mask of cells fit on (finite, no floored magnitude)."""
    columns = [np.asarray(formula_lib.term(table, t), np.float64) for t in terms]
    t = np.column_stack(columns) if columns else np.zeros((len(np.asarray(table[next(iter(table))])), 0))
    floored = np.zeros(t.shape, bool)
    for i, name in enumerate(terms):  # a magnitude at the floor: |log v| ≥ −log FLOOR − 1
        if formula_lib.is_magnitude(name):
            floored[:, i] = np.abs(t[:, i]) >= -np.log(formula_lib.FLOOR) - 1
    return t, np.isfinite(t).all(axis=1) & ~floored.any(axis=1)


def percentile_rank(values) -> np.ndarray:
    return pd.Series(np.asarray(values, np.float64)).rank(pct=True).to_numpy()


def _solve(t: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, float]:
    """Raw-unit weights and intercept of the least-squares fit of ``r`` on the columns of ``t`` (standardised)."""
    mean, scale = t.mean(axis=0), t.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    solution = np.linalg.lstsq(np.column_stack([(t - mean) / scale, np.ones(len(t))]), r, rcond=None)[0]
    weights = solution[:-1] / scale
    return weights, float(solution[-1] - weights @ mean)


def least_squares(table: Mapping[str, Any], terms: Sequence[str], target, name: str = "fitted"
                  ) -> formula_lib.Formula:
    """The :class:`~ntkscore.scores.formula.Formula` over ``terms`` fitted to the rank of ``target`` (one per cell)."""
    t, usable = term_matrix(table, terms)
    r = percentile_rank(np.asarray(target, np.float64)[usable])
    if usable.sum() <= len(terms) + 1:
        raise ValueError(f"{int(usable.sum())} usable cells cannot fit {len(terms)} terms")
    w, _ = _solve(t[usable], r)
    return formula_lib.Formula(name, {term: float(v) for term, v in zip(terms, w)})


def predict(t: np.ndarray, weights: np.ndarray, intercept: float = 0.0) -> np.ndarray:
    """``intercept + t @ weights`` with undefined predictions (a non-finite term) ranked lowest."""
    with np.errstate(invalid="ignore", over="ignore"):
        out = intercept + t @ weights
    return np.nan_to_num(out, nan=-np.inf, posinf=np.inf, neginf=-np.inf)


def cross_validated_tau(table: Mapping[str, Any], terms: Sequence[str], target, folds: int = 5,
                        seed: int = 0) -> float:
    """Kendall τ between the target and the out-of-fold predictions of ``folds`` least-squares fits, over every
    cell (cells assigned to folds by a ``seed``-ed permutation; each fit uses its usable training cells, and
    predicts every held-out cell as the formula would, floored terms included; with its intercept, so that the
    folds' predictions are all on the scale of the target's percentile rank and can be ranked together)."""
    from scipy.stats import kendalltau  # here: scipy.stats takes ~0.5 s to import; scoring needs none

    t, usable = term_matrix(table, terms)
    y = np.asarray(target, np.float64)
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    prediction = np.zeros(len(y))
    for k in range(folds):
        train = (fold != k) & usable
        prediction[fold == k] = predict(t[fold == k], *_solve(t[train], percentile_rank(y[train])))
    return float(kendalltau(prediction, y).statistic)


def forward_selection(table: Mapping[str, Any], pool: Sequence[str], target, max_terms: int = 8,
                      min_gain: float = 0.002, start: Sequence[str] = (), folds: int = 5, seed: int = 0
                      ) -> list[tuple[tuple[str, ...], float]]:
    """Greedy forward selection from ``pool`` (after the fixed ``start`` terms) by :func:`cross_validated_tau`:
    the list of ``(terms, cv τ)`` after each added term; its last entry is the selection."""
    chosen = list(start)
    best = cross_validated_tau(table, chosen, target, folds, seed) if chosen else -np.inf
    steps = [(tuple(chosen), best)] if chosen else []
    while len(chosen) < max_terms:
        trials = [(cross_validated_tau(table, chosen + [c], target, folds, seed), c) for c in pool if c not in chosen]
        if not trials:
            break
        tau, pick = max(trials)
        if tau < best + min_gain:
            break
        chosen.append(pick)
        best = tau
        steps.append((tuple(chosen), tau))
    return steps
