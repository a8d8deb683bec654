"""Where one cell stands in the NB201 space: a rank aggregate for a single cell, against a stored reference sample.

A rank aggregate (:func:`ntkscore.composite.log_rank_sum`) ranks a cell within a population. For one cell, the
population is a *reference sample* of NB201 cells scored with the same settings, stored as each term's sorted
values. With ``N`` reference values ``r_1 ≤ … ≤ r_N`` of term ``t`` and the cell's value ``v``::

    F_t(v) = (#{r < v} + ½·#{r = v} + ½) / (N + 1)          (its mid-rank had it been one more member)
    aggregate(cell) = Σ_t log F_t(v_t)                       ∈ (−∞, 0];  0 = above the whole sample in every term

so a cell of the sample gets (almost) the value it has in the sample's own aggregate, and ``exp(aggregate)`` is
the product of the cell's quantiles. References are JSON files in ``ntkscore/references/``::

    {"settings": {...ScoreSettings fields that change the values...}, "source": "how it was made",
     "terms": {"<term>": [sorted values], ...}}

A reference applies only to scores made with the same settings (:data:`IRRELEVANT` fields aside), on the same
images (``"batches"``, :func:`batch_fingerprint` of the NTK and zero-cost batches: another image file or a
different downsampling is another population) and on the same JAX backend (``"backend"``: a GPU's TF32 kernels
are not the CPU's); with none, :func:`reference_aggregates` returns nothing and the caller says so.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import composite

REFERENCES = Path(__file__).with_name("references")
IRRELEVANT = ("primary", "engine", "logit_chunk", "betas", "kernels", "proxies", "family", "fisher_batch_size")
"""Settings that do not change a term's value (the engines agree to float32 rounding; the kernel set and β only
add other metrics, and so does the NTK family), so a reference made under any of them applies."""


def batch_fingerprint(*arrays) -> str:
    """The first 16 hex digits of SHA-256 over each array's dtype, shape and bytes: equal only for bitwise-equal
    batches."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()[:16]


def _relevant(settings: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in settings.items():
        if k in IRRELEVANT:
            continue
        out[k] = round(float(v), 9) if isinstance(v, float) else v
    return out


@lru_cache(maxsize=None)
def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def find(settings: Mapping[str, Any], directory: Path = REFERENCES) -> dict[str, Any] | None:
    """The reference whose settings equal ``settings`` (a :class:`~ntkscore.score.ScoreSettings` as a dict, with
    ``"batches"`` and ``"backend"``) on every field outside :data:`IRRELEVANT`, or ``None``."""
    wanted = _relevant(settings)
    for path in sorted(Path(directory).glob("*.json")):
        ref = _load(path)
        if _relevant(ref["settings"]) == wanted:
            return ref
    return None


def quantile(values, v: float) -> float:
    """``F(v) = (#{r < v} + ½·#{r = v} + ½) / (N + 1)`` for the sorted reference ``values`` (NaN counts as −∞)."""
    r = np.asarray(values, np.float64)
    v = -np.inf if np.isnan(v) else float(v)
    below, upto = np.searchsorted(r, v, "left"), np.searchsorted(r, v, "right")
    return (below + 0.5 * (upto - below) + 0.5) / (len(r) + 1)


def reference_aggregates(metrics: Mapping[str, float], ref: Mapping[str, Any] | None) -> dict[str, float]:
    """``{"aggregate.<name>": Σ_t log F_t(v_t)}`` for every :data:`ntkscore.composite.AGGREGATES` entry whose terms
    are in ``ref`` and computable from ``metrics`` (a cell's metrics); empty without a reference."""
    if ref is None:
        return {}
    values = {}
    for term in ref["terms"]:
        try:
            values[term] = float(composite.TERMS[term](metrics))
        except KeyError:
            continue
    return {composite.AGGREGATE_PREFIX + name: float(sum(np.log(quantile(ref["terms"][t], values[t])) for t in terms))
            for name, terms in composite.AGGREGATES.items() if all(t in values for t in terms)}


def build(table, settings: Mapping[str, Any], terms, source: str, max_values: int = 1001) -> dict[str, Any]:
    """A reference from a score table (columns of ``ntkscore rank``'s file, one row per cell): each term's sorted
    values, thinned to ``max_values`` evenly spaced order statistics when the table is larger."""
    out = {"settings": dict(settings), "source": source, "cells": int(len(table)), "terms": {}}
    for term in terms:
        v = np.sort(np.nan_to_num(np.asarray(composite.TERMS[term](table), np.float64), nan=-np.inf))
        if len(v) > max_values:
            v = v[np.round(np.linspace(0, len(v) - 1, max_values)).astype(int)]
        out["terms"][term] = [float(x) if np.isfinite(x) else (-1e308 if x < 0 else 1e308) for x in v]
    return out
