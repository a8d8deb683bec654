"""Readers for benchmark tables, all returned as DataFrames keyed by ``arch_str`` (and ``arch_index`` when known).

* NAS-RobBench-201: the CSV layout (``arch_index, arch_str, isomorph_rep, val_acc, val_fgsm_3.0_acc, ...``) and the
  authors' release (``meta.json`` + ``NAS-RobBench-201_all.json`` read as ``res[dataset][uid][metric][seed]``,
  datasets ``cifar10``/``cifar100``/``imagenet``; the seed mean is reported).
* NAS-Bench-201 clean accuracies (``test_acc``, ``valid_acc``, ``params_mb``), the zero-cost proxy table, and any CSV
  with an ``arch_str`` or ``arch_index`` column.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..cell.space import Arch, as_arch
from ..inputs.data import data_dir

ROBBENCH_METRICS = ("val_acc", "val_fgsm_3.0_acc", "val_pgd_3.0_acc", "val_fgsm_8.0_acc", "val_pgd_8.0_acc",
                    "autoattack")
RELEASE_DATASETS = ("cifar10", "cifar100", "imagenet")


def _read_csv(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark table {path} does not exist")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a readable CSV table ({err})") from None


def _read_json(path: str | os.PathLike):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def load_meta(path: str | os.PathLike) -> pd.DataFrame:
    """NB201 ``meta.json``: columns ``arch_index``, ``arch_str``, ``isomorph_rep`` (benchmark data, not derived)."""
    meta = _read_json(path)
    try:
        ids = meta["ids"]
        rows = [(int(i), e["nb201-string"], int(e["isomorph"])) for i, e in ids.items()]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} is not an NB201 meta file: expected {{'ids': {{index: {{'nb201-string', "
                         f"'isomorph'}}}}}} ({type(err).__name__}: {err})") from None
    return pd.DataFrame(rows, columns=["arch_index", "arch_str", "isomorph_rep"]).sort_values("arch_index",
                                                                                             ignore_index=True)


def arch_of_index(index: int, data=None):
    """The cell of NB201 index ``index`` (0–15624), from ``nb201/meta.json`` under the data directory ``data``
    (default ``$NTKSCORE_DATA`` or ``../shared/data``)."""
    if int(index) < 0:
        raise ValueError(f"NB201 index {index} is out of range; expected 0..{5 ** 6 - 1}")
    path = data_dir(data) / "nb201" / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"an NB201 index needs the benchmark's index map {path}; give the cell as a string")
    meta = load_meta(path).set_index("arch_index")["arch_str"]
    if int(index) not in meta.index:
        raise ValueError(f"NB201 index {index} is out of range; expected 0..{meta.index.max()}")
    return as_arch(meta[int(index)])


def nb201_indices(path: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """NB201 string → (its NB201 index, the index of its isomorphism class's representative), from ``meta.json``."""
    meta = load_meta(path)
    return {a: (int(i), int(r)) for a, i, r in zip(meta["arch_str"], meta["arch_index"], meta["isomorph_rep"])}


def load_table(path: str | os.PathLike, metrics: list[str] | None = None,
               meta: pd.DataFrame | None = None) -> pd.DataFrame:
    """Any CSV keyed by ``arch_str`` or ``arch_index`` (``meta`` then supplies the strings); ``metrics`` checked."""
    df = _read_csv(path)
    if "arch_str" not in df.columns:
        if "arch_index" not in df.columns:
            raise ValueError(f"{path} has neither an 'arch_str' nor an 'arch_index' column")
        if meta is None:
            raise ValueError(f"{path} is keyed by arch_index only; give the NB201 meta.json to map indices")
        df = df.merge(meta[["arch_index", "arch_str"]], on="arch_index", how="left")
        if df["arch_str"].isna().any():
            raise ValueError(f"{path}: arch_index values not in meta.json: {df.loc[df.arch_str.isna(), 'arch_index'].tolist()[:5]}")
    bad = [s for s in df["arch_str"].head(50) if not _valid(s)]
    if bad:
        raise ValueError(f"{path}: column arch_str holds invalid architectures, e.g. {bad[0]!r}")
    if metrics:
        missing = [m for m in metrics if m not in df.columns]
        if missing:
            numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and c != "arch_index"]
            raise ValueError(f"{path} has no metric(s) {missing}; available: {', '.join(numeric)}")
    return df


def _valid(text) -> bool:
    try:
        Arch.from_string(text)
        return True
    except ValueError:
        return False


def load_robbench_csv(path: str | os.PathLike, metrics=ROBBENCH_METRICS) -> pd.DataFrame:
    """NAS-RobBench-201 in the CSV layout of ``shared/data/nasrobbench201/``."""
    return load_table(path, list(metrics))


def load_robbench_release(meta_path: str | os.PathLike, results_path: str | os.PathLike, dataset: str = "cifar10",
                          metrics: list[str] | None = None) -> pd.DataFrame:
    """The authors' release: ``res[dataset][uid][metric][seed]`` with ``uid`` the NB201 index; seed mean per metric."""
    if dataset not in RELEASE_DATASETS:
        raise ValueError(f"dataset must be one of {RELEASE_DATASETS}, got {dataset!r}")
    meta = load_meta(meta_path)
    res = _read_json(results_path)
    if not isinstance(res, dict) or dataset not in res:
        keys = list(res) if isinstance(res, dict) else type(res).__name__
        raise ValueError(f"{results_path} has no dataset {dataset!r}; found {keys}")
    rows = []
    for uid, by_metric in res[dataset].items():
        if not isinstance(by_metric, dict):
            raise ValueError(f"{results_path}: entry {dataset}/{uid} is not a {{metric: {{seed: value}}}} mapping")
        row = {"arch_index": int(uid)}
        for metric, by_seed in by_metric.items():
            values = list(by_seed.values()) if isinstance(by_seed, dict) else list(np.atleast_1d(by_seed))
            row[metric] = float(np.mean(values)) if values else np.nan
        rows.append(row)
    df = pd.DataFrame(rows).merge(meta, on="arch_index", how="left")
    if metrics:
        missing = [m for m in metrics if m not in df.columns]
        if missing:
            raise ValueError(f"{results_path} has no metric(s) {missing} for {dataset}; "
                             f"available: {sorted(set(df.columns) - {'arch_index', 'arch_str', 'isomorph_rep'})}")
    return df


def canonical_keys(arch_strings) -> list[str]:
    """Isomorphism key of each arch string (the join key between score files and benchmark tables)."""
    return [Arch.from_string(s).canonical_string() for s in arch_strings]
