"""Training-free search: the best NB201 cells by a shipped score, under a time budget and #params / FLOPs limits.

Strategies (``strategy``):

* ``random`` — score admissible cells in a seeded random order until the budget is spent (the baseline);
* ``evolution`` — regularised evolution (Real et al., AAAI 2019): a population of ``population`` cells; each step
  draws ``sample`` of them at random with replacement, mutates the fittest (one edge's op changed to another, the child kept only if
  admissible), scores the child, adds it and drops the oldest member;
* ``coarse_to_fine`` — score cells in random order at cheap settings (the zero-cost terms of a C16 N1 16×16 network,
  :data:`COARSE`), ranked by MeCo (:data:`COARSE_KEY`), for ``coarse_share`` of the budget, then re-score the best of
  them by the objective at the search's own settings with the rest; only the fine scores rank the result.

The objective is ``value`` (the predicted PGD-8 rank), ``robustness`` (the NTK's prediction of the accuracy kept under
attack) or ``both`` (fitness ``value``; the result's Pareto front of the two). Cells are searched up to isomorphism
(each class's representative, :meth:`ntkscore.cell.space.Arch.canonical`). Constraints are on the #params and FLOPs
of the benchmark's network (C16 N5, 32×32, 10 classes), whatever network the scores are computed on.

Every score is appended to a rank file (:func:`ntkscore.study.rank.rank`), so an interrupted search keeps what it
scored, and a later search with the same settings and file scores none of those cells again. The budget is wall
time, compilation included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from ..cell import cost
from ..cell.network import NetworkConfig
from ..cell.space import OPS, Arch, unique_archs
from ..scores.settings import ScoreSettings
from .rank import append_row, open_output, pareto_front, result_row

STRATEGIES = ("random", "evolution", "coarse_to_fine")
OBJECTIVES = ("value", "robustness", "both")
COARSE = dict(channels=16, cells_per_stage=1, input_size=16, kernels="none", proxies=True, family=False)
"""The coarse stage's settings: the zero-cost terms of a one-cell-per-stage network on 16×16 images; the coarse
stage ranks cells by :data:`COARSE_KEY`."""
COARSE_KEY = "zc.meco"
"""The coarse stage's objective: MeCo, the best single zero-cost term against PGD-8 (``value`` without the NTK)."""
TARGET = NetworkConfig()
"""The network whose #params and FLOPs the constraints limit: the benchmark's (C16 N5, 32×32, 10 classes)."""


@dataclass(frozen=True)
class Constraints:
    """Upper limits on the #params and the FLOPs (multiply-accumulates per image) of :data:`TARGET`."""

    max_params: float | None = None
    max_flops: float | None = None

    def admits(self, arch: Arch) -> bool:
        return ((self.max_params is None or cost.num_params(arch, TARGET) <= self.max_params)
                and (self.max_flops is None or cost.flops(arch, TARGET) <= self.max_flops))


class Evaluator(Protocol):
    """What a strategy scores through: ``score(archs)`` → one row (a dict with ``arch``, ``value``,
    ``robustness``) per cell, and ``spent``, the seconds it has cost so far."""

    spent: float

    def score(self, archs: Sequence[Arch]) -> list[dict]: ...


class FileEvaluator:
    """Scores through a :class:`~ntkscore.Scorer` into the rank file ``out`` (one fsync-ed row per cell, as
    :func:`ntkscore.study.rank.rank` writes them); cells already in the file (same settings) cost nothing. ``spent``
    is the wall time of its scoring (the first cell pays the compilation)."""

    def __init__(self, scorer, out):
        import jax

        self.scorer, self.out = scorer, Path(out)
        self.header, done = open_output(self.out, vars(scorer.settings), resume=True)
        self.device = jax.devices()[0].device_kind
        self.rows: dict[str, dict] = {}
        if done:
            self.rows = {r["arch"]: r for r in pd.read_csv(self.out).to_dict("records")}
        self.spent = 0.0

    def score(self, archs: Sequence[Arch]) -> list[dict]:
        start = time.perf_counter()
        for arch in archs:
            key = arch.to_string()
            if key not in self.rows:
                result = self.scorer(arch)
                self.header = append_row(self.out, self.header, result_row(result, self.device))
                self.rows[key] = {"arch": key, **result.metrics}
        self.spent += time.perf_counter() - start
        return [self.rows[a.to_string()] for a in archs]


@dataclass
class SearchResult:
    """Every cell a search scored (``table``: ``arch``, ``value``, ``robustness``, ``params``, ``flops`` of
    :data:`TARGET`, ``stage``, ``order``) and how to read it."""

    table: pd.DataFrame
    objective: str
    strategy: str
    seconds: float
    final_stage: str = "fine"
    info: dict = field(default_factory=dict)

    def ranked(self) -> pd.DataFrame:
        """The final stage's cells, best first by the objective (``value`` for ``both``)."""
        key = "robustness" if self.objective == "robustness" else "value"
        final = self.table[self.table["stage"] == self.final_stage]
        return final.sort_values(key, ascending=False, na_position="last").reset_index(drop=True)

    def top(self, k: int = 5) -> pd.DataFrame:
        return self.ranked().head(k)

    def front(self) -> pd.DataFrame:
        """The final stage's Pareto front of ``value`` and ``robustness`` (cells no other beats in both)."""
        final = self.ranked()
        if not {"value", "robustness"} <= set(final.columns) or final[["value", "robustness"]].isna().all().any():
            return final.iloc[:0]
        return final[pareto_front(final[["value", "robustness"]])].reset_index(drop=True)


def fitness(row: dict, objective: str) -> float:
    """The number a strategy maximises: ``robustness`` for that objective, :data:`COARSE_KEY` for ``"coarse"``,
    else ``value`` (NaN ranks last)."""
    v = row.get({"robustness": "robustness", "coarse": COARSE_KEY}.get(objective, "value"), np.nan)
    return -np.inf if v is None or not np.isfinite(v) else float(v)


def mutate(arch: Arch, rng: np.random.Generator) -> Arch:
    """One edge's op replaced by another, uniformly at random (Real et al.'s op mutation)."""
    ops = list(arch.ops)
    edge = int(rng.integers(len(ops)))
    ops[edge] = int(rng.choice([o for o in range(len(OPS)) if o != ops[edge]]))
    return Arch(tuple(ops))


def _admissible(constraints: Constraints, archs=None) -> list[Arch]:
    cells = [a for a in (archs or unique_archs()) if constraints.admits(a)]
    if not cells:
        raise ValueError(f"no cell satisfies the constraints {constraints}")
    return cells


def random_search(evaluator: Evaluator, budget_s: float, rng, constraints: Constraints, objective: str,
                  progress: Callable[[], None] | None = None, cells: Sequence[Arch] | None = None) -> list[dict]:
    """Score admissible cells (``cells``, default all) in a random order until ``budget_s`` is spent."""
    pool = _admissible(constraints, cells)
    rows = []
    for i in rng.permutation(len(pool)):
        if evaluator.spent >= budget_s:
            break
        rows += evaluator.score([pool[i]])
        if progress:
            progress()
    return rows


def evolution(evaluator: Evaluator, budget_s: float, rng, constraints: Constraints, objective: str,
              progress: Callable[[], None] | None = None, population: int = 20, sample: int = 5) -> list[dict]:
    """Regularised evolution with ``population`` members and tournaments of ``sample`` members drawn with
    replacement (Real et al. 2019; as AutoDL-Projects' ``exps/NATS-algos/regularized_ea.py``)."""
    pool = _admissible(constraints)
    members: list[dict] = []
    history: list[dict] = []
    seen: set[str] = set()
    for i in rng.permutation(len(pool))[:population]:
        if evaluator.spent >= budget_s:
            return history
        row = evaluator.score([pool[i]])[0]
        members.append(row)
        history.append(row)
        seen.add(row["arch"])
        if progress:
            progress()
    stalled = 0
    while evaluator.spent < budget_s and stalled < 1000:
        drawn = [members[j] for j in rng.choice(len(members), size=sample, replace=True)]  # as Real et al.
        parent = max(drawn, key=lambda r: fitness(r, objective))
        child = mutate(Arch.from_string(parent["arch"]), rng).canonical()
        if not constraints.admits(child):
            stalled += 1
            continue
        row = evaluator.score([child])[0]
        members.append(row)
        members.pop(0)  # the oldest dies
        if row["arch"] not in seen:
            seen.add(row["arch"])
            history.append(row)
            stalled = 0
            if progress:
                progress()
        else:
            stalled += 1  # a cell met before costs nothing; the loop stops if nothing new appears
    return history


def _table(rows: list[dict], stage: str) -> pd.DataFrame:
    archs = [Arch.from_string(r["arch"]) for r in rows]
    return pd.DataFrame({"arch": [r["arch"] for r in rows],
                         "value": [r.get("value", np.nan) for r in rows],
                         "robustness": [r.get("robustness", np.nan) for r in rows],
                         "params": [cost.num_params(a, TARGET) for a in archs],
                         "flops": [cost.flops(a, TARGET) for a in archs],
                         "stage": stage, "order": range(len(rows))})


def run_search(strategy: str, objective: str, budget_s: float, fine: Evaluator, coarse: Evaluator | None = None,
               constraints: Constraints = Constraints(), seed: int = 0, coarse_share: float = 0.5,
               progress: Callable[[], None] | None = None) -> SearchResult:
    """Run ``strategy`` through the given evaluators (``coarse`` is needed by ``coarse_to_fine`` only)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not budget_s > 0:
        raise ValueError(f"the budget must be positive seconds, got {budget_s}")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    if strategy == "random":
        rows = random_search(fine, budget_s, rng, constraints, objective, progress)
        return SearchResult(_table(rows, "fine"), objective, strategy, time.perf_counter() - start)
    if strategy == "evolution":
        rows = evolution(fine, budget_s, rng, constraints, objective, progress)
        return SearchResult(_table(rows, "fine"), objective, strategy, time.perf_counter() - start)
    if coarse is None:
        raise ValueError("coarse_to_fine needs a coarse evaluator")
    coarse_rows = random_search(coarse, coarse_share * budget_s, rng, constraints, "coarse", progress)
    shortlist = sorted(coarse_rows, key=lambda r: fitness(r, "coarse"), reverse=True)
    fine_rows = []
    for row in shortlist:
        if coarse.spent + fine.spent >= budget_s:
            break
        fine_rows += fine.score([Arch.from_string(row["arch"])])
        if progress:
            progress()
    table = pd.concat([_table(coarse_rows, "coarse"), _table(fine_rows, "fine")], ignore_index=True)
    return SearchResult(table, objective, strategy, time.perf_counter() - start,
                        info={"coarse_cells": len(coarse_rows), "fine_cells": len(fine_rows)})


def search(objective: str = "value", budget_s: float = 600.0, *, strategy: str = "evolution",
           constraints: Constraints = Constraints(), settings: ScoreSettings | None = None,
           out: str | Path = "runs/search.csv", seed: int = 0, data_dir=None, coarse_share: float = 0.5,
           progress: Callable[[], None] | None = None, predictors=None) -> SearchResult:
    """Search the NB201 space for the best cells by ``objective`` within ``budget_s`` seconds of wall time.

    ``settings`` are the scoring settings (default: the defaults, where the shipped scores exist); ``predictors``
    the learned scores (default: the shipped ones; the objective's must apply at ``settings``). Scores go to the rank file ``out`` (``<out>.coarse.csv`` holds the coarse stage of
    ``coarse_to_fine``), so a search can be interrupted and rerun without scoring a cell twice. ``seed`` seeds the
    strategy (the order of cells, the mutations), not the scores.
    """
    from ..scores.scorer import Scorer

    scorer = Scorer(settings or ScoreSettings(), data_dir=data_dir, predictors=predictors)
    needed = ("value", "robustness") if objective == "both" else (objective,)
    absent = [n for n in needed if n not in {p.name for p in scorer.predictors} or n in scorer.not_computed]
    if absent:
        reason = scorer.not_computed.get(absent[0], f"no predictor named {absent[0]!r} was given")
        raise ValueError(f"cannot search by {objective}: {reason}")
    fine = FileEvaluator(scorer, out)
    coarse = None
    if strategy == "coarse_to_fine":
        coarse_settings = replace(scorer.settings, **COARSE)
        coarse = FileEvaluator(Scorer(coarse_settings, data_dir=data_dir, predictors=()),
                               Path(out).with_suffix(".coarse.csv"))
    return run_search(strategy, objective, budget_s, fine, coarse, constraints, seed, coarse_share, progress)


def with_benchmark(table: pd.DataFrame, robbench, nb201=None) -> pd.DataFrame:
    """``table`` with NAS-RobBench-201 PGD-8 and clean accuracy (``val_pgd_8.0_acc``, ``val_acc``) and, given
    ``nb201``, NB201 clean test accuracy (``test_acc``), joined on the isomorphism class; order kept."""
    from . import benchmarks, evaluate

    robust = benchmarks.load_robbench_csv(robbench, ["val_acc", "val_pgd_8.0_acc"])
    out = evaluate.join(table.assign(_order=range(len(table))), robust[["arch_str", "val_acc", "val_pgd_8.0_acc"]])
    if nb201 is not None:
        out = evaluate.join(out, benchmarks.load_table(nb201, ["test_acc"])[["arch_str", "test_acc"]])
    # one cell column: the benchmark's own string of the class (``arch_str``) is not kept beside ``arch``
    return out.sort_values("_order").drop(columns=["_order", "arch_str"], errors="ignore").reset_index(drop=True)


def plot_search(result: SearchResult, path, k: int = 5) -> Path:
    """Every scored cell of the final stage, objective against #params (log scale), the top ``k`` and (for
    ``both``) the Pareto front highlighted; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import evaluate

    key = "robustness" if result.objective == "robustness" else "value"
    final, top = result.ranked(), result.top(k)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.scatter(final["params"] / 1e6, final[key], s=8, alpha=0.4, label=f"{len(final)} scored cells")
    ax.scatter(top["params"] / 1e6, top[key], s=40, marker="*", color="C3", label=f"top {len(top)}")
    if result.objective == "both":
        front = result.front()
        ax.scatter(front["params"] / 1e6, front[key], s=24, facecolors="none", edgecolors="k", label="Pareto front")
    values = final[key].to_numpy(float)
    values = values[np.isfinite(values)]
    if len(values) > 10:  # a few dead cells far below the rest would squash the plot: clip them, and say so
        lo, hi = np.percentile(values, [2, 100])
        bottom = lo - 0.1 * (hi - lo)
        below = int((values < bottom).sum())
        if below:
            ax.set_ylim(bottom=bottom, top=hi + 0.05 * (hi - lo))
            ax.annotate(f"{below} cells below {bottom:.3g} not shown", (0.01, 0.01), xycoords="axes fraction",
                        fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("#params of the C16 N5 network (M)")
    ax.set_ylabel(key)
    ax.set_title(f"{result.strategy} search, {result.seconds:.0f} s", fontsize=9)
    ax.legend(fontsize=7)
    return evaluate.save_figure(fig, path)


def parse_quantity(text: str, units: dict[str, float], what: str) -> float:
    """``"10m"`` → 600 with ``units={"s": 1, "m": 60, "h": 3600}``; ``"0.5M"`` → 5e5 with ``{"k": 1e3, "M": 1e6}``."""
    given = text = str(text).strip()
    factor = 1.0
    for unit, value in sorted(units.items(), key=lambda u: -len(u[0])):
        if unit and text.endswith(unit):
            text, factor = text[: -len(unit)], value
            break
    try:
        number = float(text) * factor
    except ValueError:
        raise ValueError(f"{what}: expected a number with an optional unit ({', '.join(units)}), got {given!r}") from None
    if not number > 0:
        raise ValueError(f"{what} must be positive, got {given!r}")
    return number
