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

Which candidate is the default (:data:`DEFAULT`) was chosen on a fixed development split of the NB201 space and is
reported on the rest (``benchmarks/robust_score.py``, ``benchmarks/results/robust_score.md``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

FLOOR = 1e-30
"""Quantities are clipped to ``≥ FLOOR`` before a log: a zero kernel (dead cell) scores lowest, not NaN."""


def _log(value):
    return np.log(np.maximum(np.asarray(value, np.float64), FLOOR))


CANDIDATES: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "paper": lambda m: np.asarray(m["K_rob_all@1.lambda_min"], np.float64),
    "robust_lambda_min": lambda m: np.asarray(m["K_rob.lambda_min"], np.float64),
    "robust_condition": lambda m: -_log(m["K_rob.condition"]),
    "robust_bound": lambda m: -_log(m["K_rob.bound"]),
    "robust_lambda_min+params": lambda m: _log(m["K_rob.lambda_min"]) + _log(m["params"]),
    "robust_bound+params": lambda m: -_log(m["K_rob.bound"]) + _log(m["params"]),
}
PREFIX = "composite."
DEFAULT = "robust_bound+params"


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
