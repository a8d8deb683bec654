"""Rank correlations of scores with benchmark accuracies: Kendall τ (with a bootstrap CI), Spearman ρ, top-k%
precision and the accuracy of the top-1 pick; Markdown/CSV tables and rank-rank plots.

Scores and benchmarks are joined on the isomorphism key of the cell (:meth:`ntkscore.cell.space.Arch.canonical_string`),
so a score of any member of a class meets the benchmark row of that class. Higher score = predicted better; for
quantities where lower is better (condition number, bound) :func:`oriented` flips the sign.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..cell import cost
from ..cell.space import Arch
from ..scores.formula import LOWER_IS_BETTER
from . import benchmarks, kendall
from .benchmarks import canonical_keys

TOP_FRACTIONS = (0.01, 0.05, 0.10)


def oriented(name: str, values) -> np.ndarray:
    """``values`` signed so that larger means predicted-better (condition numbers and bound terms negated)."""
    v = np.asarray(values, np.float64)
    return -v if name.rsplit(".", 1)[-1] in LOWER_IS_BETTER else v


def join(scores: pd.DataFrame, benchmark: pd.DataFrame, arch_column: str = "arch", how: str = "inner") -> pd.DataFrame:
    """Join on the isomorphism key (``how="inner"``, or ``"left"`` to keep every scored cell); benchmark rows of one
    class are collapsed to the first."""
    left = scores.copy().assign(_key=canonical_keys(scores[arch_column]))  # copy: a wide table, defragmented
    right = benchmark.assign(_key=canonical_keys(benchmark["arch_str"])).drop_duplicates("_key")
    right = right.drop(columns=[c for c in right.columns if c in left.columns and c != "_key"])
    return left.merge(right, on="_key", how=how).drop(columns="_key")


def join_benchmarks(scores: pd.DataFrame, robbench, nb201, proxies=None,
                    metrics=benchmarks.ROBBENCH_METRICS) -> tuple[pd.DataFrame, list[str]]:
    """``scores`` (an ``arch`` column) joined with NAS-RobBench-201 ``metrics`` (CSV at ``robbench``), NB201 clean
    ``test_acc`` (CSV at ``nb201``) and, when ``proxies`` names a CSV, the published zero-cost proxies
    (``proxy.<name>``); #params and FLOPs computed by this project are added as ``baseline.params`` /
    ``baseline.flops``. Cells without a NAS-RobBench-201 row are dropped; a cell without an NB201 or a proxy row is
    kept with those columns empty, so that each correlation uses every cell that has both of its values. Returns
    the joined table and the baseline column names."""
    joined = join(scores, benchmarks.load_robbench_csv(robbench, metrics))
    joined = join(joined, benchmarks.load_table(nb201, ["test_acc"])[["arch_str", "test_acc"]], how="left")
    archs = [Arch.from_string(a) for a in joined["arch"]]
    joined = joined.assign(**{"baseline.params": [cost.num_params(a) for a in archs],
                              "baseline.flops": [cost.flops(a) for a in archs]})
    baselines = ["baseline.params", "baseline.flops"]
    if proxies is not None:
        table = benchmarks.load_table(proxies)
        names = [c for c in table.columns if c not in ("arch_index", "arch_str", "flops", "params")]
        table = table.rename(columns={c: f"proxy.{c}" for c in names})[["arch_str"] + [f"proxy.{c}" for c in names]]
        joined = join(joined, table, how="left")
        baselines += [f"proxy.{c}" for c in names]
    return joined, baselines


DEV_FRACTION, SPLIT_SEED = 0.2, 0
"""The fixed development split: 20% of the benchmarked CIFAR-10 cells, by a permutation seeded with 0."""


def benchmarked_keys(root) -> list[str]:
    """Sorted isomorphism keys of the cells that every CIFAR-10 table under the data directory ``root`` covers
    (NAS-RobBench-201, NB201 clean accuracy, the published zero-cost proxies): the population of the split."""
    root = Path(root)
    tables = [benchmarks.load_robbench_csv(root / "nasrobbench201" / "cifar10.csv"),
              benchmarks.load_table(root / "nb201" / "cifar10_clean_acc.csv", ["test_acc"]),
              benchmarks.load_table(root / "zero_cost" / "nb201_cifar10_proxies.csv")]
    keys = None
    for t in tables:
        t = t.dropna()
        k = set(canonical_keys(t["arch_str"]))
        keys = k if keys is None else keys & k
    return sorted(keys)


def development_keys(root, fraction: float = DEV_FRACTION, seed: int = SPLIT_SEED) -> set[str]:
    """The development split's keys: the first ``round(fraction · N)`` of a ``seed``-ed permutation of
    :func:`benchmarked_keys` (N = 6285 cells on CIFAR-10: 1257 development, 5028 test). Anything chosen (a
    default, a weight) is chosen on these cells only and reported on the rest."""
    keys = benchmarked_keys(root)
    order = np.random.default_rng(seed).permutation(keys)
    return set(order[: int(round(fraction * len(keys)))])


def robustness_residual(robust, clean) -> np.ndarray:
    """The robustness residual: the rank of ``robust`` accuracy (e.g. PGD-8) left after a least-squares line on
    the rank of ``clean`` accuracy, ``r(robust) − (a + b·r(clean))`` over the given cells (ranks in [0, 1]). It
    orders cells by how much more of their accuracy survives the attack than their clean accuracy predicts."""
    r, c = (pd.Series(np.asarray(v, np.float64)).rank(pct=True).to_numpy() for v in (robust, clean))
    b, a = np.polyfit(c, r, 1)
    return r - (a + b * c)


def top_k_precision(score, target, fraction: float) -> float:
    """|top-k by score ∩ top-k by target| / k with k = max(1, round(fraction·n))."""
    n = len(score)
    k = max(1, int(round(fraction * n)))
    top_s = set(np.argsort(-np.asarray(score), kind="stable")[:k])
    top_t = set(np.argsort(-np.asarray(target), kind="stable")[:k])
    return len(top_s & top_t) / k


def correlate(joined: pd.DataFrame, score_columns, metric_columns, n_boot: int = 1000,
              seed: int = 0, progress=None) -> pd.DataFrame:
    """One row per (score, metric): n, τ, τ CI, ρ, top-1/5/10% precision, accuracy of the top-1 pick.

    The τ interval is the 95% percentile bootstrap over ``n_boot`` resamples of the cells, drawn once and shared
    by every pair with the same cells (:class:`ntkscore.study.kendall.Bootstrap`). ``progress``, if given, is
    called once per (score, metric) pair done (e.g. a progress bar's ``update``)."""
    from scipy.stats import kendalltau, spearmanr  # here: scipy.stats takes ~0.5 s to import; scoring needs none

    rows, boot = [], kendall.Bootstrap(n_boot, seed)
    for metric in metric_columns:
        for name in score_columns:
            if progress is not None:
                progress()
            pair = joined[[name, metric]].apply(pd.to_numeric, errors="coerce").replace([np.inf, -np.inf], np.nan)
            pair = pair.dropna()
            if len(pair) < 3:
                continue
            s, t = oriented(name, pair[name]), pair[metric].to_numpy(np.float64)
            tau = kendalltau(s, t).statistic
            lo, hi = boot.interval(s, t) if n_boot else (np.nan, np.nan)
            row = {"score": name, "metric": metric, "n": len(pair), "kendall_tau": tau, "tau_lo": lo, "tau_hi": hi,
                   "spearman_rho": spearmanr(s, t).statistic}
            for f in TOP_FRACTIONS:
                row[f"top{f:.0%}"] = top_k_precision(s, t, f)
            row["top1_acc"] = float(t[int(np.argmax(s))])
            rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table (no extra dependency)."""
    cols = list(table.columns)
    fmt = lambda v: f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def plot_rank_rank(joined: pd.DataFrame, score_columns, metric: str, path: str | Path, columns: int = 3,
                   stats: pd.DataFrame | None = None) -> Path:
    """A grid of rank-rank scatter plots (score rank vs. ``metric`` rank) saved as PNG; each panel's title gives
    Kendall τ, its bootstrap CI and the number of cells (from ``stats``, a :func:`correlate` table, when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score_columns = list(score_columns)
    rows = -(-len(score_columns) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, score_columns):
        pair = joined[[name, metric]].apply(pd.to_numeric, errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
        s = pd.Series(oriented(name, pair[name])).rank().to_numpy()
        target = pair[metric].rank().to_numpy()
        row = None if stats is None else stats[(stats.score == name) & (stats.metric == metric)]
        if row is not None and len(row):
            r = row.iloc[0]
            ci = f" [{r.tau_lo:.2f}, {r.tau_hi:.2f}]" if np.isfinite(r.tau_lo) else ""
            title = f"{name}\nτ = {r.kendall_tau:.3f}{ci}, n = {int(r.n)}"
        else:
            title = f"{name}\nτ = {kendall.tau_b(s, target):.3f}, n = {len(pair)}"
        ax.scatter(s, target, s=4, alpha=0.5)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("score rank", fontsize=7)
        ax.set_ylabel(f"{metric} rank", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(score_columns):]:
        ax.axis("off")
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Lay out ``fig``, save it as a PNG at ``path`` (making its folder) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
