"""Recorded study: which cheap scoring settings reproduce the real-shape rankings, at what cost.

    python benchmarks/cheap_settings.py --run    # score the 300 real-shape cells under each setting (resumable)
    python benchmarks/cheap_settings.py          # the report only, from runs/settings/
    python benchmarks/cheap_settings.py --study proxies [--run]
                                                 # the same for the zero-cost terms (ntkscore.proxies), on the
                                                 # 488 cells of benchmarks/results/proxies_real.csv.gz

Scoring all 6466 unique cells at the real shape (C = 16, N = 5, 32×32, B = 16) costs ~13 s per cell on a 2-core
CPU (about a day), so the whole-space study runs at cheaper settings. This script measures, on the 300 cells already
scored at the real shape (``benchmarks/results/scores_300.csv.gz``), for each cheap setting of :data:`SETTINGS`:

* the cost (median seconds per cell, compilation excluded);
* *transfer*: Kendall τ between each quantity at the cheap setting and the same quantity at the real shape;
* *stability*: Kendall τ between two seeds (another initialisation, batch and attack noise) at the cheap setting,
  for the settings listed in :data:`TWO_SEEDS`.

No benchmark accuracy enters the choice of a setting: the rule (:func:`choose`) is the highest mean transfer over
:data:`QUANTITIES` among the settings whose whole-space cost stays under :data:`BUDGET_HOURS` on this CPU. The
τ against PGD-8 accuracy is printed beside it for information only.
Writes ``benchmarks/results/cheap_settings.{md,csv}``.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from ntkscore import composite, evaluate
from ntkscore.benchmarks import canonical_keys
from ntkscore.cli import main as ntkscore_main
from ntkscore.data import data_dir

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "benchmarks" / "results" / "scores_300.csv.gz"
SETTINGS = {
    "C8N1-16px-B10": ["--channels", "8", "--cells", "1", "--input-size", "16", "--batch-size", "10"],
    "C8N1-16px-B20": ["--channels", "8", "--cells", "1", "--input-size", "16", "--batch-size", "20"],
}
"""The settings measured. Wider or deeper cheap networks cost too much for the rule: a probe of 8 cells
(``ntkscore rank --archs`` of the first 8 of the 300, median s per cell after the first) gave 1.32 s for C16 N1
16×16 B = 16 and 1.73 s for C8 N5 16×16 B = 16 (2.4 h and 3.1 h for the whole space), against 0.26 s and 0.48 s
for C8 N1 16×16 at B = 10 and 20; their transfer was not measured."""
TWO_SEEDS = ("C8N1-16px-B10", "C8N1-16px-B20")
QUANTITIES = ("K.lambda_min", "K_rob.lambda_min", "K_rob2.lambda_min", "K_rob.condition", "K_rob.bound",
              "K.trace", "K_rob.effective_rank", "composite.robust_bound+params")
UNIQUE_CELLS = 6466
BUDGET_HOURS = 1.0
SECONDS_PER_CELL_REAL = 13.4


@dataclass(frozen=True)
class Study:
    """What one run of this script compares: settings, the quantities whose transfer decides, the real-shape file."""

    real: Path
    settings: dict
    quantities: tuple
    two_seeds: tuple
    budget_hours: float
    seconds_real: float
    runs: str
    out: str
    what: str


PROXY_SETTINGS = {
    "C8N1-16px": ["--kernels", "none", "--channels", "8", "--cells", "1", "--input-size", "16"],
    "C16N1-16px": ["--kernels", "none", "--channels", "16", "--cells", "1", "--input-size", "16"],
    "C8N1-32px": ["--kernels", "none", "--channels", "8", "--cells", "1", "--input-size", "32"],
}
STUDIES = {
    "ntk": Study(REAL, SETTINGS, QUANTITIES, TWO_SEEDS, BUDGET_HOURS, SECONDS_PER_CELL_REAL, "settings",
                 "cheap_settings.md", "PGD-7 at ε = 8/255 and all five kernels"),
    "proxies": Study(ROOT / "benchmarks" / "results" / "proxies_real.csv.gz", PROXY_SETTINGS,
                     ("zc.naswot", "zc.jacov", "zc.synflow"), tuple(PROXY_SETTINGS), 0.5, 0.98, "proxy_settings",
                     "cheap_settings_proxies.md", "the three zero-cost terms only (`--kernels none`), 64 images"),
}
"""``ntk``: the NTK quantities. ``proxies``: the zero-cost terms of :mod:`ntkscore.proxies`,
with a tighter budget (they accompany an NTK run; the real shape costs 0.98 s per cell for them, the median `seconds` of
``proxies_real.csv.gz``)."""


def keyed(table: pd.DataFrame) -> pd.DataFrame:
    table = table.assign(**composite.composite_scores(table))
    return table.assign(_key=canonical_keys(table["arch"])).drop_duplicates("_key").set_index("_key")


def kendall(a, b) -> float:
    return float(kendalltau(a, b).statistic)


def summarise(runs: Path, real: pd.DataFrame, target: pd.Series, study: Study) -> pd.DataFrame:
    """One row per (setting, quantity): transfer τ, seed-to-seed τ, τ vs PGD-8 and the setting's cost."""
    rows = []
    for name in study.settings:
        path = runs / f"{name}_seed0.csv"
        if not path.exists():
            continue
        cheap = keyed(pd.read_csv(path))
        second = runs / f"{name}_seed1.csv"
        other = keyed(pd.read_csv(second)) if second.exists() else None
        seconds = pd.to_numeric(cheap["seconds"], errors="coerce").iloc[1:]  # the first row includes compilation
        for q in study.quantities:
            common = cheap.index.intersection(real.index).intersection(target.index)
            row = {"setting": name, "quantity": q, "cells": len(common), "s_per_cell": float(seconds.median()),
                   "transfer_tau": kendall(cheap.loc[common, q], real.loc[common, q]),
                   "pgd8_tau_cheap": kendall(evaluate.oriented(q, cheap.loc[common, q]), target[common]),
                   "pgd8_tau_real": kendall(evaluate.oriented(q, real.loc[common, q]), target[common])}
            if other is not None:
                both = cheap.index.intersection(other.index)
                row["seed_tau"] = kendall(cheap.loc[both, q], other.loc[both, q])
            rows.append(row)
    return pd.DataFrame(rows)


PUBLISHED = {"zc.naswot": "nwot", "zc.jacov": "jacov", "zc.synflow": "synflow"}


def published_agreement(real_table: pd.DataFrame, root: Path) -> list[str]:
    """Kendall τ between our real-shape zero-cost terms and the published (PyTorch) values of the same proxies."""
    published = pd.read_csv(root / "zero_cost" / "nb201_cifar10_proxies.csv")
    published = published.assign(_key=canonical_keys(published["arch_str"])).drop_duplicates("_key").set_index("_key")
    ours = real_table.assign(_key=canonical_keys(real_table["arch"])).drop_duplicates("_key").set_index("_key")
    common = ours.index.intersection(published.index)
    taus = ", ".join(f"{q.removeprefix('zc.')} {kendall(ours.loc[common, q], published.loc[common, p]):.3f}"
                     for q, p in PUBLISHED.items())
    return [f"Agreement of our real-shape terms with the published values of the same proxies "
            f"(`../shared/data/zero_cost`, PyTorch), Kendall τ over {len(common)} cells: {taus}.", ""]


def choose(summary: pd.DataFrame, budget_hours: float = BUDGET_HOURS) -> str | None:
    """The setting with the highest mean transfer τ whose whole-space cost fits ``budget_hours``."""
    cost = summary.groupby("setting").s_per_cell.first() * UNIQUE_CELLS / 3600
    transfer = summary.groupby("setting").transfer_tau.mean()
    affordable = transfer[cost <= budget_hours]
    return None if affordable.empty else str(affordable.idxmax())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="store_true", help="score the 300 cells under every setting first (resumable)")
    p.add_argument("--study", choices=tuple(STUDIES), default="ntk")
    p.add_argument("--runs", default=None, help="where the score files go (default runs/settings or runs/proxy_settings)")
    p.add_argument("--data", default=None)
    p.add_argument("--out", default=None, help="the report (default benchmarks/results/cheap_settings[_proxies].md)")
    args = p.parse_args(argv)
    study = STUDIES[args.study]
    runs = Path(args.runs or ROOT / "runs" / study.runs)
    args.out = args.out or str(ROOT / "benchmarks" / "results" / study.out)
    real_table = pd.read_csv(study.real)
    if args.run:
        runs.mkdir(parents=True, exist_ok=True)
        archs = runs / "archs.txt"
        archs.write_text("\n".join(real_table["arch"]) + "\n")
        data = ["--data", args.data] if args.data else []
        jobs = [(n, s) for n in study.settings for s in ((0, 1) if n in study.two_seeds else (0,))]
        for name, seed in jobs:
            rc = ntkscore_main(["rank", "--archs", str(archs), *study.settings[name], "--seed", str(seed), *data,
                                "--out", str(runs / f"{name}_seed{seed}.csv")])
            if rc:
                return rc
    real = keyed(real_table)
    root = data_dir(args.data)
    joined = evaluate.join_benchmarks(real_table, root / "nasrobbench201" / "cifar10.csv",
                                      root / "nb201" / "cifar10_clean_acc.csv")[0]
    target = joined.assign(_key=canonical_keys(joined["arch"])).dropna(subset=["val_pgd_8.0_acc"])
    target = target.drop_duplicates("_key").set_index("_key")["val_pgd_8.0_acc"]
    summary = summarise(runs, real, target, study)
    if summary.empty:
        print(f"no score files in {runs}; run with --run first", file=sys.stderr)
        return 1
    summary.to_csv(Path(args.out).with_suffix(".csv"), index=False)
    chosen = choose(summary, study.budget_hours)
    cost = summary.groupby("setting", sort=False).s_per_cell.first()
    lines = ["# Cheap scoring settings: cost, transfer to the real shape, seed-to-seed stability", "",
             "Command: `python benchmarks/cheap_settings.py " + " ".join(argv if argv is not None else sys.argv[1:])
             + f"` (the score files in runs/{study.runs}/ come from `--run`; CPU: a 2-core VM)", "",
             f"Cells: the {int(summary.cells.iloc[0])} cells of {study.real.relative_to(ROOT)} that have PGD-8 "
             f"accuracy (real shape: C16 N5, 32×32, B = 16, seed 0). All settings use {study.what}.",
             "Transfer = Kendall τ between a quantity at the cheap setting and at the real shape; seed τ = Kendall τ "
             "between seeds 0 and 1 at the cheap setting; PGD-8 τ columns are for information, not used to choose.", "",
             "| setting | s per cell | whole space (h) | mean transfer τ | mean seed τ |", "|---|---|---|---|---|"]
    for name, s in cost.items():
        part = summary[summary.setting == name]
        seed = f"{part.seed_tau.mean():.3f}" if "seed_tau" in part and part.seed_tau.notna().any() else "—"
        mark = " **(chosen)**" if name == chosen else ""
        lines.append(f"| {name}{mark} | {s:.2f} | {s * UNIQUE_CELLS / 3600:.2f} | {part.transfer_tau.mean():.3f} | "
                     f"{seed} |")
    lines += ["", f"Real shape for reference: {study.seconds_real} s per cell, "
              f"{study.seconds_real * UNIQUE_CELLS / 3600:.1f} h for the whole space. Rule: highest mean transfer "
              f"among settings that score the whole space in ≤ {study.budget_hours:g} h on this CPU → "
              f"**{chosen or 'none affordable'}**.", "",
              "| setting | quantity | transfer τ | seed τ | PGD-8 τ (cheap) | PGD-8 τ (real) |", "|---|---|---|---|---|---|"]
    lines[-2:-2] = published_agreement(real_table, root) if args.study == "proxies" else []
    for r in summary.itertuples():
        seed = getattr(r, "seed_tau", np.nan)
        lines.append(f"| {r.setting} | {r.quantity} | {r.transfer_tau:.3f} | "
                     f"{'—' if pd.isna(seed) else f'{seed:.3f}'} | {r.pgd8_tau_cheap:.3f} | {r.pgd8_tau_real:.3f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
