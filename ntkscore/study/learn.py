"""Fit learned scores (:class:`ntkscore.scores.predictor.Predictor`) to labelled cells, with cross-validation and the
controls every learned score is reported beside.

The model is LightGBM gradient boosting with an L2 loss on the target's percentile rank (0–1, ties averaged) over
the labelled cells, so a prediction reads as "the predicted rank of this cell among the labelled population". Its
features are the metrics of a rank file, grouped by what they measure (:func:`feature_groups`): the paper's kernel
quantities, the NTK family, the per-group split, the per-layer spectra, and the zero-cost terms with #params and
FLOPs. The controls use the same model, labels and folds: zero-cost only, NTK only, and the *one-hot surrogate* (the
30 indicators of each edge's op: what a predictor learns from the labels alone, with no training-free feature).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..cell.space import NUM_EDGES, OPS, Arch
from ..kernels.family import PROXIES as FAMILY_PROXIES
from ..kernels.theory import SCORE_NAMES
from ..scores.predictor import Predictor, fingerprint
from . import evaluate
from .rank import upgrade_columns

PARAMS = {"num_boost_round": 400, "num_leaves": 15, "learning_rate": 0.03, "bagging_fraction": 0.8,
          "bagging_freq": 1, "min_data_in_leaf": 20, "feature_fraction": 1.0}
"""Default LightGBM hyperparameters (LightGBM's own names; ``num_boost_round`` is the number of trees);
``benchmarks/predictor_design.py`` chooses the shipped ones by cross-validation on the development cells."""

GROUPS = ("paper", "family", "per_group", "per_layer", "zero_cost")
NTK_GROUPS = ("paper", "family", "per_group", "per_layer")
NOT_FEATURES = ("value", "robustness", "seconds", "flags", "arch", "ntkscore_version", "device")


def feature_group(name: str) -> str | None:
    """Which group of :data:`GROUPS` metric ``name`` belongs to (``None``: not a feature): ``paper`` the spectral
    quantities of Wu et al.'s kernels (``K``, ``K_rob``, ``K_all@β``, …: λ_min, λ_max, condition, trace, bound,
    effective rank), ``family`` the NTK family's proxies and Fisher spectrum, ``per_group`` the split of ``K̃_ε``
    over the network's parameter groups, ``per_layer`` the aggregated per-layer spectra, ``zero_cost`` the
    zero-cost terms, #params, FLOPs and multiply-adds."""
    if name in NOT_FEATURES or name.startswith(("setting.", "composite.", "aggregate.", "value", "robustness")):
        return None
    if name.startswith(("zc.", "features.")) or name in ("params", "flops", "multiply_adds"):
        return "zero_cost"
    kernel, _, quantity = name.rpartition(".")
    if not kernel:
        return None
    if ".layers" in name:
        return "per_layer"
    if "/" in kernel:
        return "per_group"
    if quantity in FAMILY_PROXIES or quantity.startswith("fisher_"):
        return "family"
    if quantity in SCORE_NAMES:
        return "paper"
    return None


def feature_groups(columns: Sequence[str]) -> dict[str, list[str]]:
    """The numeric metric columns of a rank file by :func:`feature_group` (every group of :data:`GROUPS` present)."""
    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    for c in columns:
        g = feature_group(c)
        if g is not None:
            out[g].append(c)
    return out


def features_of(columns: Sequence[str], groups: Sequence[str]) -> list[str]:
    """The columns of the named ``groups`` (``"ntk"`` stands for :data:`NTK_GROUPS`), in table order."""
    wanted = set()
    for g in groups:
        wanted |= set(NTK_GROUPS) if g == "ntk" else {g}
    unknown = wanted - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown feature group(s) {sorted(unknown)}; known: {GROUPS} and 'ntk'")
    return [c for c in columns if feature_group(c) in wanted]


def one_hot(archs: Sequence[str]) -> np.ndarray:
    """``(cells, 6·5)`` indicators of each edge's op (the one-hot surrogate's features)."""
    ops = np.asarray([Arch.from_string(a).ops for a in archs], np.int64).reshape(-1, NUM_EDGES)
    out = np.zeros((len(ops), NUM_EDGES * len(OPS)))
    for edge in range(NUM_EDGES):
        out[np.arange(len(ops)), edge * len(OPS) + ops[:, edge]] = 1.0
    return out


def matrix(table: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The table's ``features`` as a float64 matrix, non-numeric and non-finite values as ``nan`` (missing)."""
    x = table[list(features)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    return np.where(np.isfinite(x), x, np.nan)


def percentile_rank(values) -> np.ndarray:
    return pd.Series(np.asarray(values, np.float64)).rank(pct=True).to_numpy()


def fit_booster(x: np.ndarray, target, params: Mapping[str, Any] | None = None, seed: int = 0):
    """A LightGBM booster (L2 regression) fitted to the percentile rank of ``target``; ``params`` override
    :data:`PARAMS`. Deterministic for a given ``seed`` (one thread)."""
    import lightgbm

    settings = {**PARAMS, **(params or {})}
    rounds = int(settings.pop("num_boost_round"))
    settings.update(objective="regression", seed=seed, deterministic=True, force_col_wise=True, verbose=-1,
                    num_threads=1)
    data = lightgbm.Dataset(np.asarray(x, np.float64), percentile_rank(target), params={"verbose": -1})
    return lightgbm.train(settings, data, num_boost_round=rounds)


def cross_validated(x: np.ndarray, target, folds: int = 5, seed: int = 0,
                    params: Mapping[str, Any] | None = None) -> np.ndarray:
    """Out-of-fold predictions of ``folds`` boosters (cells assigned to folds by a ``seed``-ed permutation)."""
    y = np.asarray(target, np.float64)
    if len(y) < 2 * folds:
        raise ValueError(f"{len(y)} labelled cells are too few for {folds}-fold cross-validation (need ≥ {2 * folds})")
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    out = np.zeros(len(y))
    for k in range(folds):
        train = fold != k
        out[~train] = fit_booster(x[train], y[train], params, seed).predict(x[~train])
    return out


def quality(score, target, fractions=(0.01, 0.05)) -> dict[str, float]:
    """Kendall τ, top-k precision for each fraction, the top-1 pick's regret (best target − the pick's target) and
    the best of the top-5 picks' regret, in the target's units."""
    from scipy.stats import kendalltau  # here: scipy.stats takes ~0.5 s to import; scoring needs none

    s, t = np.asarray(score, np.float64), np.asarray(target, np.float64)
    order = np.argsort(-s, kind="stable")
    out = {"tau": float(kendalltau(s, t).statistic)}
    for f in fractions:
        out[f"top{f:.0%}"] = evaluate.top_k_precision(s, t, f)
    out["regret_top1"] = float(t.max() - t[order[0]])
    out["regret_top5"] = float(t.max() - t[order[:5]].max())
    return out


def control_sets(table: pd.DataFrame, features: Sequence[str]) -> dict[str, np.ndarray]:
    """Feature matrices of a learned score and its controls: ``features`` themselves, zero-cost only, NTK only,
    one-hot, and ``features`` + one-hot (each present only where it has columns)."""
    columns = list(table.columns)
    sets = {"features": matrix(table, features),
            "zero-cost only": matrix(table, features_of(columns, ["zero_cost"])),
            "NTK only": matrix(table, features_of(columns, ["ntk"])),
            "one-hot surrogate": one_hot(table["arch"])}
    sets["features + one-hot"] = np.column_stack([sets["features"], sets["one-hot surrogate"]])
    return {k: v for k, v in sets.items() if v.shape[1]}


def compare(table: pd.DataFrame, target, features: Sequence[str], folds: int = 5, seed: int = 0,
            params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Cross-validated :func:`quality` of the learned score and of each control of :func:`control_sets`."""
    rows = []
    for name, x in control_sets(table, features).items():
        prediction = cross_validated(x, target, folds, seed, params)
        rows.append({"model": name, "features": x.shape[1], **quality(prediction, target)})
    return pd.DataFrame(rows)


def fit_predictor(table: pd.DataFrame, target, features: Sequence[str], name: str, target_name: str,
                  settings: Mapping[str, Any], params: Mapping[str, Any] | None = None, seed: int = 0,
                  folds: int = 5, fingerprint_fields: Sequence[str] | None = None,
                  provenance: Mapping[str, Any] | None = None) -> Predictor:
    """Fit a :class:`~ntkscore.scores.predictor.Predictor` on every row of ``table`` (a rank file's rows, ``target``
    one value per row) over ``features``; its fingerprint is ``settings`` (the table's, e.g.
    :func:`ntkscore.scores.predictor.table_settings`) restricted to ``fingerprint_fields`` (default all). The
    provenance records n, the cross-validated τ and top-5% precision (``folds`` folds; none if ``folds`` is 0),
    the hyperparameters, the package version and what the caller adds."""
    y = np.asarray(target, np.float64)
    keep = np.isfinite(y)
    if keep.sum() < 10:
        raise ValueError(f"only {int(keep.sum())} cells have a finite target; a predictor needs at least 10")
    table, y = table[keep].reset_index(drop=True), y[keep]
    missing = [f for f in features if f not in table.columns]
    if missing:
        raise ValueError(f"the table has no column(s) {missing[:5]} (of {len(features)} features)")
    x = matrix(table, features)
    info: dict[str, Any] = {"n": int(len(y)), "params": {**PARAMS, **(params or {})}, "seed": seed,
                            "ntkscore_version": __version__}
    if folds:
        info.update({f"cv_{k}": v for k, v in quality(cross_validated(x, y, folds, seed, params), y).items()})
    info.update(provenance or {})
    booster = fit_booster(x, y, params, seed)
    settings = dict(asdict(settings)) if hasattr(settings, "__dataclass_fields__") else dict(settings)
    return Predictor(name=name, target=target_name, features=tuple(features),
                     settings=fingerprint(settings, fingerprint_fields), booster=booster, provenance=info)


TARGET_COLUMNS = ("val_acc", "val_pgd_8.0_acc", "autoattack", "test_acc")


def benchmark_targets(archs: Sequence[str], root) -> pd.DataFrame:
    """NAS-RobBench-201 CIFAR-10 clean (``val_acc``), PGD-8 and AutoAttack accuracy and NB201 clean ``test_acc``
    of each cell of ``archs`` (in that order; ``nan`` where a table has no row), from the data directory ``root``."""
    from pathlib import Path

    from . import benchmarks

    root = Path(root)
    keys = benchmarks.canonical_keys(archs)
    robbench = benchmarks.load_robbench_csv(root / "nasrobbench201" / "cifar10.csv")
    nb201 = benchmarks.load_table(root / "nb201" / "cifar10_clean_acc.csv", ["test_acc"])
    out = pd.DataFrame({"_key": keys})
    for table, columns in ((robbench, TARGET_COLUMNS[:3]), (nb201, TARGET_COLUMNS[3:])):
        table = table.assign(_key=benchmarks.canonical_keys(table["arch_str"])).drop_duplicates("_key")
        out = out.merge(table[["_key", *columns]], on="_key", how="left")
    return out.drop(columns="_key")


def residual_target(targets: pd.DataFrame) -> np.ndarray:
    """The robustness residual (:func:`ntkscore.study.evaluate.robustness_residual`) of the rows of ``targets``
    that have both accuracies, computed within those rows (``nan`` elsewhere)."""
    out = np.full(len(targets), np.nan)
    ok = targets[["val_pgd_8.0_acc", "val_acc"]].notna().all(axis=1).to_numpy()
    if ok.sum() >= 3:
        out[ok] = evaluate.robustness_residual(targets["val_pgd_8.0_acc"][ok], targets["val_acc"][ok])
    return out


BENCHMARK_TARGETS = {"nasrobbench201": TARGET_COLUMNS[:3], "nb201": TARGET_COLUMNS[3:]}


def labels(archs: Sequence[str], target: str, root=None) -> tuple[np.ndarray, str]:
    """One label per cell of ``archs`` (``nan`` where there is none) and the target's description, for ``target``:
    ``"nasrobbench201:COLUMN"``, ``"nb201:test_acc"``, ``"residual"`` (the robustness residual over the labelled
    cells), or the path of a CSV with columns ``arch`` (NB201 string or index) and ``accuracy`` (the user's labels).
    Benchmark targets are read from the data directory ``root``."""
    from pathlib import Path

    from ..inputs.data import data_dir
    from . import benchmarks

    source, _, column = target.partition(":")
    if target == "residual":
        return residual_target(benchmark_targets(archs, data_dir(root))), "robustness residual (NAS-RobBench-201 CIFAR-10)"
    if source in BENCHMARK_TARGETS:
        if column not in BENCHMARK_TARGETS[source]:
            raise ValueError(f"--target {target}: {source} columns are {', '.join(BENCHMARK_TARGETS[source])}")
        return benchmark_targets(archs, data_dir(root))[column].to_numpy(np.float64), f"{source} CIFAR-10 {column}"
    path = Path(target)
    if not path.is_file():
        raise ValueError(f"--target {target!r} is neither a benchmark column (nasrobbench201:val_pgd_8.0_acc, "
                         f"nb201:test_acc, residual) nor an existing CSV of arch,accuracy")
    table = benchmarks._read_csv(path)
    if not {"arch", "accuracy"} <= set(table.columns):
        raise ValueError(f"{path} needs the columns arch (NB201 string or index) and accuracy; it has "
                         f"{', '.join(map(str, table.columns))}")
    from ..cell.space import as_arch

    def key(a) -> str:
        text = str(a).strip()
        return as_arch(int(text) if text.isdigit() else text).canonical_string()

    try:
        given = {key(a): float(v) for a, v in zip(table["arch"], pd.to_numeric(table["accuracy"], errors="raise"))}
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    keys = benchmarks.canonical_keys(archs)
    return np.asarray([given.get(k, np.nan) for k in keys], np.float64), f"labels of {path.name}"


def training_keys(predictor: Predictor, root=None) -> set[str]:
    """Isomorphism keys of the cells ``predictor`` was fitted on (its provenance: the cells themselves, or the
    fixed development split of the data directory ``root``)."""
    info = predictor.provenance
    if "training_cells" in info:
        return set(info["training_cells"])
    if info.get("split") == "development":
        from ..inputs.data import data_dir

        return evaluate.development_keys(data_dir(root), info.get("dev_fraction", evaluate.DEV_FRACTION),
                                         info.get("split_seed", evaluate.SPLIT_SEED))
    return set()


def apply_predictors(table: pd.DataFrame, predictors: Sequence[Predictor]) -> tuple[pd.DataFrame, dict[str, str]]:
    """``table`` (a rank file) with one column per predictor that applies at its settings (replacing a column of
    that name), and the reasons of those that do not (their columns removed: never a score from other settings)."""
    from ..scores.predictor import mismatch_message, table_settings

    settings = table_settings(table)
    reasons, columns = {}, {}
    for p in predictors:
        message = mismatch_message(p, settings)
        if message:
            reasons[p.name] = message
        else:
            columns[p.name] = p.predict(table)
    out = table.drop(columns=[n for n in list(reasons) + list(columns) if n in table.columns])
    return pd.concat([out, pd.DataFrame(columns, index=out.index)], axis=1), reasons


def without_training_cells(table: pd.DataFrame, predictors: Sequence[Predictor], root=None
                           ) -> tuple[pd.DataFrame, int]:
    """``table`` without the cells (by isomorphism class) that any of ``predictors`` whose column it holds was
    fitted on (:func:`training_keys`), and how many rows were removed."""
    from .benchmarks import canonical_keys

    fitted = set()
    for p in predictors:
        if p.name in table.columns:
            fitted |= training_keys(p, root)
    if not fitted:
        return table, 0
    keep = np.asarray([k not in fitted for k in canonical_keys(table["arch"])], bool)
    return table[keep].reset_index(drop=True), int((~keep).sum())


def labelled_table(scores, target: str, n_labels: int | None = None, seed: int = 0, data_dir=None
                   ) -> tuple[pd.DataFrame, np.ndarray, str, dict[str, Any]]:
    """``(rows, labels, target's description, settings)``: the rows of the rank file ``scores`` (path or table)
    that have a label under ``target`` (:func:`labels`), a ``seed``-ed sample of ``n_labels`` of them if given."""
    from ..scores.predictor import table_settings

    table = upgrade_columns(scores if isinstance(scores, pd.DataFrame) else pd.read_csv(scores))[0]
    if "arch" not in table.columns:
        raise ValueError(f"{scores} has no 'arch' column; expected a file written by 'ntkscore rank'")
    settings = table_settings(table)
    y, target_name = labels(table["arch"], target, data_dir)
    labelled = np.flatnonzero(np.isfinite(y))
    if n_labels is not None:
        if not 10 <= n_labels <= len(labelled):
            raise ValueError(f"the number of labels must be in 10..{len(labelled)} (the labelled cells), "
                             f"got {n_labels}")
        labelled = np.sort(np.random.default_rng(seed).choice(labelled, n_labels, replace=False))
    return table.iloc[labelled].reset_index(drop=True), y[labelled], target_name, settings


def fit(scores, target: str, features: Sequence[str] = ("ntk", "zero_cost"), name: str = "value",
        n_labels: int | None = None, seed: int = 0, data_dir=None) -> Predictor:
    """Fit a learned score to a rank file: ``ntkscore.fit("runs/scores.csv", "my_accuracies.csv")``.

    ``scores`` is a rank file (path or table; its metrics are the features, its settings the fingerprint),
    ``target`` what :func:`labels` reads (a benchmark column or a CSV ``arch,accuracy``), ``features`` feature
    groups (:func:`features_of`), ``n_labels`` how many labelled cells to use (:func:`labelled_table`). The
    predictor's provenance lists its training cells, which ``ntkscore correlate`` then leaves out."""
    table, y, target_name, settings = labelled_table(scores, target, n_labels, seed, data_dir)
    return fit_labelled(table, y, target_name, settings, features, name, seed,
                        str(scores) if not isinstance(scores, pd.DataFrame) else "a table")


def fit_labelled(table: pd.DataFrame, y, target_name: str, settings: Mapping[str, Any],
                 features: Sequence[str] = ("ntk", "zero_cost"), name: str = "value", seed: int = 0,
                 source: str = "a table") -> Predictor:
    """:func:`fit` on the output of :func:`labelled_table` (``source`` names the rank file in the provenance)."""
    from .benchmarks import canonical_keys

    columns = features_of(list(table.columns), features)
    if not columns:
        raise ValueError(f"the rank file has no metrics of the groups {list(features)}; rank with the NTK family and "
                         "the zero-cost terms (the defaults) to have them")
    return fit_predictor(table, y, columns, name, target_name, settings, seed=seed,
                         provenance={"training_cells": sorted(canonical_keys(table["arch"])), "scores": source})
