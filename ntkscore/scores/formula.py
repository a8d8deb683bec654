"""Per-cell linear formulas over log-space terms: the one-term baselines the learned scores are measured against.

A *term* is one metric of a :class:`ntkscore.Score`, oriented so that larger = predicted better and put in
log space where it is a positive magnitude (:func:`term`): ``log λ_min(K)``, ``−log κ(K̃_ε)``, ``log #params``,
``log zc.meco``; quantities that already are logs or bounded (``zc.naswot``, ``zc.jacov``, ``zc.synflow``, LGA)
are taken as they are. A :class:`Formula` is ``Σ_t w_t · term_t(cell)``: a number per cell, no population, no
reference sample. Rescaling any positive quantity (units, batch size, width) adds a constant to its log and leaves
the ranking unchanged; the *balance* between terms is the one fitted (:mod:`ntkscore.study.fit`).

:data:`BASELINES` are the two best one-term formulas on the real-shape development cells (C16 N5, 32×32, B = 16;
``benchmarks/score_design.py``): ``log zc.meco`` against PGD-8 and ``log tr K_all(0.5)`` against the robustness
residual. The reports show them beside the learned scores; at the cheap settings the trace ranks cells backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

FLOOR = 1e-30
"""Positive magnitudes are clipped to ``≥ FLOOR`` before the log: a zero kernel (dead cell) scores lowest."""
LOWER_IS_BETTER = ("condition", "bound", "tenas_condition", "tenas_condition_all")
MAGNITUDES = ("lambda_min", "lambda_max", "condition", "trace", "bound", "effective_rank", "trace_share",
              "nasi_trace", "knas", "tenas_condition", "tenas_condition_all", "weyl_lambda_min", "width_lambda_min", "zc.meco",
              "features.lambda_min", "params", "flops", "multiply_adds")
"""Quantities (the part of a metric name after its last ``.``, or the whole name) that are positive magnitudes:
their term is the log. Fisher deciles are eigenvalues, magnitudes too."""


def _quantity(name: str) -> str:
    return name if name in MAGNITUDES else name.rsplit(".", 1)[-1]


def is_magnitude(name: str) -> bool:
    q = _quantity(name)
    return q in MAGNITUDES or q.startswith("fisher_decile")


def term(metrics: Mapping[str, Any], name: str):
    """The oriented log-space term of metric ``name``: ``±log max(v, FLOOR)`` for a magnitude (negated where lower
    is better), ``v`` otherwise. ``metrics`` is a cell's metrics (floats) or a table (columns)."""
    v = np.asarray(metrics[name], np.float64)
    if is_magnitude(name):
        v = np.log(np.maximum(np.nan_to_num(v, nan=FLOOR), FLOOR))
    return -v if _quantity(name) in LOWER_IS_BETTER else v


@dataclass(frozen=True)
class Formula:
    """``Σ_t w_t · term_t``: ``weights`` maps metric names to weights (raw units of :func:`term`)."""

    name: str
    weights: Mapping[str, float]

    def __call__(self, metrics: Mapping[str, Any]):
        missing = [t for t in self.weights if t not in metrics]
        if missing:
            raise KeyError(f"{self.name} needs the metrics {missing}, which were not computed at these settings")
        out = sum(w * term(metrics, t) for t, w in self.weights.items())
        return float(out) if np.ndim(out) == 0 else out

    def formula(self, digits: int = 4) -> str:
        """The formula as text, e.g. ``0.52·log zc.meco + 1.1·zc.jacov``."""
        parts = []
        for t, w in self.weights.items():
            shown = (f"−log {t}" if _quantity(t) in LOWER_IS_BETTER else f"log {t}") if is_magnitude(t) else t
            parts.append(f"{w:+.{digits}g}·{shown}")
        return " ".join(parts).lstrip("+")


def controls(f: Formula, table: Mapping[str, Any], terms=None) -> dict[str, Any]:
    """The controls of each term ``t`` of ``f`` (default: every term but ``params``) as columns over ``table``:
    ``"<f> − t"``, the formula with ``t`` dropped (other weights kept; absent for a one-term formula), and ``"<f>: params for t"``, with
    ``log #params`` in its place, weighted so that its spread over ``table`` equals ``t``'s (``w_t·σ_t/σ_params``).
    A term carries signal only where ``f`` beats both."""
    out = {}
    for t in terms if terms is not None else [t for t in f.weights if t != "params"]:
        rest = {k: w for k, w in f.weights.items() if k != t}
        if rest:  # a one-term formula without its term is a constant: no control to report
            out[f"{f.name} − {t}"] = Formula(f"{f.name} − {t}", rest)(table)
        spread = np.nanstd(term(table, "params"))
        weight = f.weights[t] * np.nanstd(term(table, t)) / spread if spread > 0 else 0.0
        swapped = {**rest, "params": rest.get("params", 0.0) + weight}
        out[f"{f.name}: params for {t}"] = Formula(f"{f.name}: params for {t}", swapped)(table)
    return out


LINEAR_VALUE = Formula("linear value", {"zc.meco": 0.13106287421037385})
"""``log zc.meco``: the best one-term formula against PGD-8 on the real-shape development cells."""
LINEAR_ROBUSTNESS = Formula("linear robustness", {"K_all@0.5.trace": 0.15222490741959177})
"""``log tr K_all(0.5)``, the trace of Wu et al.'s clean-accuracy kernel at β = ½ (``¼(K + K̄_ε + K̄_εᵀ + K̃_ε)``):
the best one-term NTK formula against the robustness residual on the real-shape development cells."""
BASELINES = (LINEAR_VALUE, LINEAR_ROBUSTNESS)
