"""Rank aggregates over a population of cells (AZ-NAS style, Lee & Ham, CVPR 2024).

With ``r_t(a) ∈ [1, N]`` the ascending rank of cell ``a`` among ``N`` cells under term ``t`` (1 = worst, ties
averaged), the aggregate is::

    aggregate(a) = Σ_t log(r_t(a) / N)        ∈ [Σ_t log(1/N), 0]

so a cell must be good under every term to score well. A cell's aggregate depends on which other cells are in the
population: compare aggregates only within one table. The per-cell scores of :mod:`ntkscore.scores.formula` need
no population.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .formula import term


def log_rank_sum(columns) -> np.ndarray:
    """``Σ_t log(r_t/N)`` over the given 1-D arrays (one per term, larger = better), ``r_t`` the ascending rank
    (1 = smallest, ties get their average rank) among the ``N`` entries; a NaN term ranks with the smallest."""
    from scipy.stats import rankdata

    columns = [np.nan_to_num(np.asarray(c, np.float64), nan=-np.inf) for c in columns]  # undefined ranks last
    if not columns or any(c.ndim != 1 or len(c) != len(columns[0]) for c in columns):
        raise ValueError("rank aggregation needs one or more 1-D columns of equal length (one entry per cell)")
    n = len(columns[0])
    return sum(np.log(rankdata(c) / n) for c in columns)


def rank_aggregate(table: Mapping[str, Any], metrics: Sequence[str]) -> np.ndarray:
    """The rank aggregate of the metric columns ``metrics`` of ``table`` (a score file's columns), each oriented
    by :func:`ntkscore.scores.formula.term` (larger = better): e.g. ``rank_aggregate(t, ["params", "zc.jacov",
    "zc.meco"])``."""
    missing = [m for m in metrics if m not in table]
    if missing:
        raise KeyError(f"the table has no column {missing}; it has {sorted(table.keys())[:12]}…")
    return log_rank_sum([term(table, m) for m in metrics])
