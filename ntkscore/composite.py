"""Candidate robustness scores from one cell's theory quantities with fixed equal weights, and rank aggregates.

Each candidate maps a cell's metrics (a :class:`ntkscore.score.Score`'s ``metrics``, a dict, or a pandas row or
table of such columns) to one number, larger = predicted more robust. Products of positive quantities are taken in
log space, so a candidate's ranking does not change when any factor is rescaled (units, batch size, width):

* ``paper``            ``λ_min(K̃_all(β=1))`` — Wu et al.'s robust score (``K̃_all(1) = K̃_2ε``);
* ``robust_lambda_min`` ``λ_min(K̃_ε)`` — the robust NTK's smallest eigenvalue (Theorem 1's kernel for β = 1);
* ``robust_condition``  ``−log κ(K̃_ε)`` — scale-free conditioning, ``κ = λ_max/λ_min``;
* ``robust_bound``      ``−log sqrt(yᵀ K̃_ε⁻¹ y / n)`` — the label-aware data term of the Cao & Gu bound;
* ``robust_lambda_min+params``, ``robust_bound+params``: the same ``+ log #params`` (the bounds of Cao & Gu and of
  Wu et al. hold for over-parameterised networks, and their width-dependent terms shrink as #params grows);
* ``robust_lambda_min/trace``, ``robust_lambda_min/trace+params``: λ_min of the trace-normalised kernel (the trace
  ``Σ_i ‖∂f(x_i)/∂θ‖²`` is the kernel's overall scale, which training's learning rate absorbs);
* ``robust_bound/trace+params`` ``−log bound(K̃_ε / tr K̃_ε) + log #params`` (``bound(K/c) = sqrt(c)·bound(K)``),
  the ``ntk`` term of the aggregates;
* ``cells_lambda_min``, ``cells_lambda_min/trace+params``, ``cells_bound/trace+params``: the same on the *cell
  kernel* ``K̃_ε,cells``, the part of K̃_ε from the searched cells' own parameters (``K_rob/cells.*``).

The rank aggregates (:data:`AGGREGATES`, :func:`aggregate_scores`) need a population of cells: with ``r_t(a) ∈
[1, N]`` the rank of cell ``a`` among ``N`` cells under term ``t`` (1 = worst, ties averaged), AZ-NAS (Lee & Ham,
CVPR 2024) scores ``Σ_t log(r_t(a)/N)``, so a cell must be good under every term to score well. The terms
(:data:`TERMS`) are the theory quantities above and the zero-cost terms of :mod:`ntkscore.proxies`: ``pattern``
(NASWOT), ``jacobian`` (jacob_cov), ``paths`` (log synflow) and ``correlation`` (``zc.meco``).
:func:`aggregate_controls` gives, for each aggregate with an NTK term, the same without it and with log #params in
its place. For a single cell, :mod:`ntkscore.reference` ranks it within a stored reference sample. The per-cell
scores a user gets by default are :mod:`ntkscore.formula`'s, not these.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

FLOOR = 1e-30
"""Quantities are clipped to ``≥ FLOOR`` before a log: a zero kernel (dead cell) scores lowest, not NaN."""


def _log(value):
    return np.log(np.maximum(np.asarray(value, np.float64), FLOOR))


def _unless_zero(value, trace):
    """``value`` where the kernel's trace is positive, else the lowest score ``log FLOOR`` (a zero kernel — e.g. the
    cell kernel of a parameter-free cell — has no shape to normalise, and must not tie with a good one)."""
    return np.where(np.asarray(trace, np.float64) > FLOOR, value, np.log(FLOOR))


CANDIDATES: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "paper": lambda m: np.asarray(m["K_rob_all@1.lambda_min"], np.float64),
    "robust_lambda_min": lambda m: np.asarray(m["K_rob.lambda_min"], np.float64),
    "robust_condition": lambda m: -_log(m["K_rob.condition"]),
    "robust_bound": lambda m: -_log(m["K_rob.bound"]),
    "robust_lambda_min+params": lambda m: _log(m["K_rob.lambda_min"]) + _log(m["params"]),
    "robust_bound+params": lambda m: -_log(m["K_rob.bound"]) + _log(m["params"]),
    "robust_lambda_min/trace": lambda m: _log(m["K_rob.lambda_min"]) - _log(m["K_rob.trace"]),
    "robust_lambda_min/trace+params": lambda m: _log(m["K_rob.lambda_min"]) - _log(m["K_rob.trace"])
    + _log(m["params"]),
    "robust_bound/trace+params": lambda m: -_log(m["K_rob.bound"]) - 0.5 * _log(m["K_rob.trace"]) + _log(m["params"]),
    "cells_lambda_min": lambda m: _log(m["K_rob/cells.lambda_min"]),
    "cells_lambda_min/trace+params": lambda m: _unless_zero(
        _log(m["K_rob/cells.lambda_min"]) - _log(m["K_rob/cells.trace"]) + _log(m["params"]), m["K_rob/cells.trace"]),
    "cells_bound/trace+params": lambda m: _unless_zero(
        -_log(m["K_rob/cells.bound"]) - 0.5 * _log(m["K_rob/cells.trace"]) + _log(m["params"]), m["K_rob/cells.trace"]),
}
PREFIX = "composite."
AGGREGATE_PREFIX = "aggregate."
NTK_SCORE = "robust_bound/trace+params"
"""The per-cell NTK candidate used as the ``ntk`` term of the aggregates."""

TERMS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "trainability": lambda m: _log(m["K_rob.lambda_min"]),
    "generalisation": lambda m: -_log(m["K_rob.bound"]),
    "conditioning": lambda m: -_log(m["K_rob.condition"]),
    "complexity": lambda m: _log(m["params"]),
    "ntk": lambda m: CANDIDATES[NTK_SCORE](m),
    "pattern": lambda m: np.asarray(m["zc.naswot"], np.float64),
    "jacobian": lambda m: np.asarray(m["zc.jacov"], np.float64),
    "paths": lambda m: np.asarray(m["zc.synflow"], np.float64),
    "correlation": lambda m: np.asarray(m["zc.meco"], np.float64),
}
"""Oriented terms (larger = better) of the rank aggregates: ``λ_min(K̃_ε)``, ``−bound(K̃_ε)``, ``−κ(K̃_ε)``,
``#params``, the NTK score ``robust_bound/trace+params``, and the zero-cost terms of :mod:`ntkscore.proxies`:
the activation-pattern kernel's log-determinant (NASWOT), the input-Jacobian decorrelation (jacov), the path norm
(log synflow) and the layers' feature-correlation λ_min (``zc.meco``)."""
AGGREGATES: dict[str, tuple[str, ...]] = {
    "rank(trainability,complexity)": ("trainability", "complexity"),
    "rank(trainability,generalisation,complexity)": ("trainability", "generalisation", "complexity"),
    "rank(trainability,conditioning,generalisation,complexity)": ("trainability", "conditioning", "generalisation",
                                                                   "complexity"),
    "rank(ntk,pattern)": ("ntk", "pattern"),
    "rank(ntk,pattern,jacobian)": ("ntk", "pattern", "jacobian"),
    "rank(ntk,pattern,paths)": ("ntk", "pattern", "paths"),
    "rank(ntk,pattern,jacobian,paths)": ("ntk", "pattern", "jacobian", "paths"),
    "rank(pattern,jacobian,paths)": ("pattern", "jacobian", "paths"),
    "rank(ntk,correlation)": ("ntk", "correlation"),
    "rank(ntk,pattern,correlation)": ("ntk", "pattern", "correlation"),
    "rank(ntk,jacobian,correlation)": ("ntk", "jacobian", "correlation"),
    "rank(ntk,pattern,jacobian,correlation)": ("ntk", "pattern", "jacobian", "correlation"),
    "rank(pattern,correlation)": ("pattern", "correlation"),
    "rank(jacobian,correlation)": ("jacobian", "correlation"),
    "rank(pattern,jacobian,correlation)": ("pattern", "jacobian", "correlation"),
}
NTK_TERMS = ("trainability", "generalisation", "conditioning", "ntk")
"""The :data:`TERMS` computed from the NTK (the others are zero-cost terms and #params)."""


def computable_terms(table: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every :data:`TERMS` entry whose inputs are in ``table``, as float64 arrays."""
    terms = {}
    for name, fn in TERMS.items():
        try:
            terms[name] = np.asarray(fn(table), np.float64)
        except KeyError:
            continue
    return terms


def aggregate_controls(table: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """For each :data:`AGGREGATES` entry holding an NTK term ``t``, over the cells of ``table``: the aggregate
    without ``t`` (``"aggregate.<name> − t"``) and with ``complexity`` (log #params) in its place
    (``"aggregate.<name>: params for t"``). A term carries signal only where the aggregate beats both."""
    terms = computable_terms(table)
    out = {}
    for name, needed in AGGREGATES.items():
        if not all(t in terms for t in needed):
            continue
        for t in [t for t in needed if t in NTK_TERMS]:
            rest = [u for u in needed if u != t]
            if rest:
                out[f"{AGGREGATE_PREFIX}{name} − {t}"] = log_rank_sum([terms[u] for u in rest])
            swapped = list(dict.fromkeys("complexity" if u == t else u for u in needed))
            if swapped != rest:
                out[f"{AGGREGATE_PREFIX}{name}: params for {t}"] = log_rank_sum([terms[u] for u in swapped])
    return out


def composite_scores(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``{"composite.<name>": value}`` for every candidate whose inputs are in ``metrics`` (floats for a cell's
    metrics, arrays for table columns)."""
    out = {}
    for name, fn in CANDIDATES.items():
        try:
            value = fn(metrics)
        except KeyError:  # a kernel set without K̃_ε (kernels="clean") has no robust candidates
            continue
        out[PREFIX + name] = float(value) if np.ndim(value) == 0 else value
    return out


def log_rank_sum(columns) -> np.ndarray:
    """``Σ_t log(r_t/N)`` over the given 1-D arrays (one per term, larger = better), ``r_t`` the ascending rank
    (1 = smallest, ties get their average rank) among the ``N`` entries; a NaN term ranks with the smallest."""
    from scipy.stats import rankdata

    columns = [np.nan_to_num(np.asarray(c, np.float64), nan=-np.inf) for c in columns]  # undefined ranks last
    if not columns or any(c.ndim != 1 or len(c) != len(columns[0]) for c in columns):
        raise ValueError("rank aggregation needs one or more 1-D columns of equal length (one entry per cell)")
    n = len(columns[0])
    return sum(np.log(rankdata(c) / n) for c in columns)


def aggregate_scores(table: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{"aggregate.<name>": Σ_t log(r_t/N)}`` over the cells of ``table`` (columns of a score file) for every
    :data:`AGGREGATES` entry whose terms can be computed. Ranks are within ``table``: the value of a cell depends
    on which other cells are in it, so compare aggregates only within one table."""
    terms = computable_terms(table)
    return {AGGREGATE_PREFIX + name: log_rank_sum([terms[t] for t in needed])
            for name, needed in AGGREGATES.items() if all(t in terms for t in needed)}
