"""Candidate robustness scores built from one cell's theory quantities, with fixed equal weights (nothing fitted).

Each candidate maps a cell's metrics (a :class:`ntkscore.score.Score`'s ``metrics``, a dict, or a pandas row or
table of such columns) to one number, larger = predicted more robust. Products of positive quantities are taken in
log space, so a candidate's ranking does not change when any factor is rescaled (units, batch size, width):

* ``paper``            ``λ_min(K̃_all(β=1))`` — Wu et al.'s robust score (``K̃_all(1) = K̃_2ε``);
* ``robust_lambda_min`` ``λ_min(K̃_ε)`` — the robust NTK's smallest eigenvalue (Theorem 1's kernel for β = 1);
* ``robust_condition``  ``−log κ(K̃_ε)`` — scale-free conditioning, ``κ = λ_max/λ_min``;
* ``robust_bound``      ``−log sqrt(yᵀ K̃_ε⁻¹ y / n)`` — the label-aware data term of the Cao & Gu bound;
* ``robust_lambda_min+params`` ``log λ_min(K̃_ε) + log #params`` — the NTK term times capacity: the bounds of
  Cao & Gu and of Wu et al. (Theorem 1) hold for an over-parameterised network and their width-dependent terms
  shrink as the width grows, which for a fixed macro-skeleton is what #params measures (AZ-NAS, likewise, adds a
  complexity term to its trainability and expressivity terms);
* ``robust_bound+params`` ``−log bound(K̃_ε) + log #params``.

Round 2 (session 4, added after round 1's results were seen — see the report): scale normalisation, and AZ-NAS-style
rank aggregation. The trace is the kernel's overall scale ``Σ_i ‖∂f(x_i)/∂θ‖²``; dividing by it leaves its shape:

* ``robust_lambda_min/trace``  ``log λ_min(K̃_ε) − log tr K̃_ε`` — λ_min of the trace-normalised robust kernel;
* ``robust_lambda_min/trace+params`` the same ``+ log #params``;
* ``robust_bound/trace+params`` ``−log bound(K̃_ε / tr K̃_ε) + log #params``, the label-aware term of the kernel
  rescaled to unit trace: ``bound(K/c) = sqrt(c)·bound(K)``, so this is ``−log bound − ½ log tr + log #params``.
  The raw bound falls whenever the kernel is merely larger (a larger gradient scale at initialisation, which
  training's learning rate absorbs); at unit trace it measures how well the labels align with the kernel's
  leading eigendirections, the part of the bound that is about the architecture's function space. Chosen as the
  default in session 4 (development split, ``benchmarks/results/robust_score.md``).

Round 3 (session 4, after the per-group split showed that the head and stem carry most of K̃_ε's trace but little
of its signal, and the cell stages the opposite — a look at the test split, so round 3 is judged on fresh cells
scored at the real shape, see the README): the same quantities on the *cell kernel* ``K̃_ε,cells``, the part of
K̃_ε that comes from the searched cells' own parameters (``K_rob/cells.*``, :func:`ntkscore.score.group_scores`):

* ``cells_lambda_min`` ``log λ_min(K̃_ε,cells)``;
* ``cells_lambda_min/trace+params`` ``log λ_min(K̃_ε,cells) − log tr K̃_ε,cells + log #params``;
* ``cells_bound/trace+params`` ``−log bound(K̃_ε,cells / tr K̃_ε,cells) + log #params``.

The rank aggregates (:data:`AGGREGATES`, :func:`aggregate_scores`) need a population of cells, not one cell: with
``r_t(a) ∈ [1, N]`` the rank of cell ``a`` among ``N`` cells under term ``t`` (1 = worst, ties averaged), AZ-NAS
(Lee & Ham, CVPR 2024) scores ``Σ_t log(r_t(a)/N)``, so a cell must be good under every term to score well and no
term's units or spread matter. The terms (:data:`TERMS`) are the theory quantities above.

Round 4 (session 5, fixed after a look at the development split only): the NTK score ``ntk`` =
``robust_bound/trace+params`` aggregated with three zero-cost factors of the NTK that :mod:`ntkscore.proxies`
computes — ``pattern`` (log-det of the activation-pattern kernel, the empirical ``Σ̇`` of the NTK recursion; NASWOT),
``jacobian`` (decorrelation of the input Jacobians, which carry an input perturbation to the output; jacob_cov) and
``paths`` (log path norm; synflow): ``rank(ntk,pattern)``, ``rank(ntk,pattern,jacobian)``,
``rank(ntk,pattern,paths)`` and ``rank(ntk,pattern,jacobian,paths)``. ``rank(pattern,jacobian,paths)`` is an
ablation (:data:`ABLATIONS`: what the NTK term adds), never a candidate.

Round 5 (session 6, fixed after a look at 500 development cells only): the same aggregates with a fourth factor,
``correlation`` (``zc.meco``, :mod:`ntkscore.proxies`: ``Σ_l C_l · mean_i λ_min`` of each ReLU layer's channel
correlation — the NTK theory's λ_min argument applied to the features of every layer):
``rank(ntk,correlation)``, ``rank(ntk,pattern,correlation)``, ``rank(ntk,jacobian,correlation)`` and
``rank(ntk,pattern,jacobian,correlation)``; the same without ``ntk`` are ablations.

Which candidate is the default (:data:`DEFAULT`) was chosen on a fixed development split of the NB201 space and is
reported on the rest (``benchmarks/robust_score.py``, ``benchmarks/results/robust_score.md``). A rank aggregate is
a rank within a population; for a single cell :mod:`ntkscore.reference` ranks it within a stored reference sample.
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
"""The best per-cell NTK candidate (session 4's default): the ``ntk`` term of the round-4 aggregates."""
DEFAULT = AGGREGATE_PREFIX + "rank(ntk,jacobian,correlation)"
"""The default score's metric name (``Score.value``): ``Σ_t log F_t`` over the NTK score, the input-Jacobian term
and the feature-correlation term — chosen in session 6 on the development split (``benchmarks/robust_score.py``;
session 5's was ``rank(ntk,pattern,jacobian)``)."""

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
``#params``; and (round 4) the NTK score ``robust_bound/trace+params`` with three factors of the NTK that
:mod:`ntkscore.proxies` computes: the activation-pattern kernel's log-determinant (NASWOT), the input-Jacobian
decorrelation (jacov) and the path norm (log synflow); (round 5) the layers' feature-correlation λ_min (MeCo)."""
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
ABLATIONS = ("rank(pattern,jacobian,paths)", "rank(pattern,correlation)", "rank(jacobian,correlation)",
             "rank(pattern,jacobian,correlation)")
"""Aggregates reported to show what a term adds (here: the NTK term), never candidates for the default."""


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
    terms = {}
    for name, fn in TERMS.items():
        try:
            terms[name] = np.asarray(fn(table), np.float64)
        except KeyError:
            continue
    return {AGGREGATE_PREFIX + name: log_rank_sum([terms[t] for t in needed])
            for name, needed in AGGREGATES.items() if all(t in terms for t in needed)}
