"""Fit the shipped predictors ``value`` and ``robustness`` on the development cells, write them and the image
batches they were fitted with into the package, and write the whole-space tables with their columns.

    python benchmarks/fit_predictors.py            # ~1 min; needs $NTKSCORE_DATA and the tables below

Inputs: the whole-space tables at the default settings (:data:`RUNS`: every unique cell, seed 0 and seed 1; while
uncommitted they are read from ``runs/space/``), the design decided on the development cells by
``benchmarks/predictor_design.py`` (``predictor_design.json``: feature groups and hyperparameters). Fitted on the
development split only (:func:`ntkscore.study.evaluate.development_keys`):

* ``value``: target NAS-RobBench-201 CIFAR-10 PGD-8 accuracy (its percentile rank among the development cells);
* ``robustness``: target the robustness residual computed within the development cells; NTK features only.

The fingerprint is every setting but ``logit_chunk``, and without ``seed`` when ``--seed-free`` (the predictors were
shown to hold at seed 1 by ``benchmarks/predictor_report.py``). Writes ``ntkscore/scores/predictors/*.json``,
``ntkscore/inputs/batches/cifar10.npz`` and ``benchmarks/results/space_seed{0,1}.csv.gz`` (the rank files with the
``value`` and ``robustness`` columns exactly as ``ntkscore rank`` writes them).
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from ntkscore import ScoreSettings
from ntkscore.inputs import data, shipped
from ntkscore.scores import predictor
from ntkscore.scores.scorer import PROXY_KEY
from ntkscore.study import evaluate, learn, rank
from ntkscore.study.benchmarks import canonical_keys

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PACKAGE = ROOT / "ntkscore"
RUNS = {0: "ntkscore rank --all --seed 0 --out runs/space/seed0.csv",
        1: "ntkscore rank --all --seed 1 --out runs/space/seed1.csv"}
"""The commands that scored the whole-space tables (the default settings; ``NTKSCORE_DATA`` set)."""
TARGETS = {"value": ("val_pgd_8.0_acc", "NAS-RobBench-201 CIFAR-10 PGD-8 accuracy (percentile rank, 0-1)"),
           "robustness": ("residual", "robustness residual: NAS-RobBench-201 CIFAR-10 PGD-8 rank minus its line on "
                                      "the clean-accuracy rank (rank units)")}


def raw_table(seed: int) -> pd.DataFrame:
    """The seed's rank file, without any score columns (they are recomputed from the features)."""
    path = ROOT / "runs" / "space" / f"seed{seed}.csv"
    table = rank.read_scores(path if path.exists() else RESULTS / f"space_seed{seed}.csv.gz")
    return table.drop(columns=[c for c in predictor.SHIPPED if c in table.columns])


def fit(table: pd.DataFrame, root: Path, design: dict, seed_free: bool) -> list[predictor.Predictor]:
    dev_keys = evaluate.development_keys(root)
    dev = table[[k in dev_keys for k in canonical_keys(table["arch"])]].reset_index(drop=True)
    targets = learn.benchmark_targets(dev["arch"], root)
    settings = predictor.table_settings(dev)
    fields = [k for k in settings if k not in predictor.UNFINGERPRINTED and not (seed_free and k == "seed")]
    out = []
    for name, (column, description) in TARGETS.items():
        y = learn.residual_target(targets) if column == "residual" else targets[column].to_numpy()
        features = learn.features_of(list(dev.columns), design["groups"][name])
        out.append(learn.fit_predictor(
            dev, y, features, name, description, settings, params=design["params"][name], fingerprint_fields=fields,
            provenance={"split": "development", "dev_fraction": evaluate.DEV_FRACTION,
                        "split_seed": evaluate.SPLIT_SEED, "shipped": True, "groups": design["groups"][name],
                        "fitted_by": "python benchmarks/fit_predictors.py" + (" --seed-free" if seed_free else ""),
                        "features_from": RUNS[0]}))
    return out


def batches(root: Path) -> Path:
    """The default settings' image draws for seeds 0 and 1, copied from the data directory into the package."""
    s = ScoreSettings()
    found = {}
    for seed in (0, 1):
        k_batch = jax.random.split(jax.random.PRNGKey(seed), 3)[1]
        k_proxy = jax.random.fold_in(jax.random.PRNGKey(seed), PROXY_KEY)
        x, y = data.load_npz(root / data.DATASETS["cifar10"].file)
        for role, key, size in (("ntk", k_batch, s.batch_size), ("proxy", k_proxy, s.proxy_batch_size)):
            idx = data.balanced_sample(key, y, size, 10)
            found[(role, seed, size)] = (x[idx], y[idx])
    return shipped.write(PACKAGE / "inputs" / "batches" / shipped.FILE, found, root / data.DATASETS["cifar10"].file)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-free", action="store_true", help="leave the seed out of the fingerprint")
    args = parser.parse_args(argv)
    root = data.data_dir(None)
    design = json.loads((RESULTS / "predictor_design.json").read_text())
    seed0 = raw_table(0)
    if predictor.table_settings(seed0)["channels"] != str(ScoreSettings().channels):
        raise SystemExit("the seed-0 table is not at the default settings")
    for p in fit(seed0, root, design, args.seed_free):
        path = p.save(PACKAGE / "scores" / "predictors" / f"{p.name}.json")
        print(f"{path.relative_to(ROOT)}: {len(p.features)} features, n = {p.provenance['n']}, "
              f"CV τ {p.provenance['cv_tau']:.3f}")
    print(batches(root).relative_to(ROOT))
    predictor.shipped.cache_clear()
    for seed in (0, 1):
        try:
            table = raw_table(seed)
        except FileNotFoundError:
            print(f"no seed-{seed} table yet")
            continue
        scored, reasons = learn.apply_predictors(table, predictor.shipped_predictors())
        front = ["arch", *[c for c in predictor.SHIPPED if c in scored.columns]]  # as rank writes: absent if not valid
        scored = scored[front + [c for c in scored.columns if c not in front]]
        scored.to_csv(RESULTS / f"space_seed{seed}.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
        print(f"space_seed{seed}.csv.gz: {len(scored)} cells" + (f"; not computed: {reasons}" if reasons else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
