"""Recorded study: the paper's claim on the training it is about — do λ_min(K_all(β)) and λ_min(K̃_all(β)) predict
the clean and robust accuracy of multi-objective adversarial training with that β?

    python benchmarks/train_check.py --run      # train 48 cells × β ∈ {0, 0.5, 1} (resumable; ~30 min on 2 cores)
    python benchmarks/train_check.py            # the report from benchmarks/results/train_check.csv.gz

A seeded sample of unique cells is trained with :func:`ntkscore.train.train` at a small setting (:data:`SETTINGS`:
C4 N1 on 16×16 images, all 5000 CIFAR-10 training images, 5 epochs, batch 128, PGD-3 with step 3/255 during training,
evaluation on 500 test images with PGD-10) for each β, and its kernels are scored at the same network shape
(:data:`SCORE`: B = 16, PGD-7). The report gives (a) whether the small setting keeps the benchmark's order (τ of
our PGD-8 accuracy with NAS-RobBench-201's); (b) for each β, τ of λ_min(K_all(β)) with our clean accuracy and of
λ_min(K̃_all(β)) with our PGD-8 accuracy, beside #params and ``value``; (c) the NTK's drift over training
(:func:`ntkscore.train.ntk_drift`) against the outcome.
Writes ``benchmarks/results/train_check.{md,csv.gz}``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from ntkscore import Scorer, ScoreSettings
from ntkscore.cell import cost
from ntkscore.inputs.data import data_dir
from ntkscore.study import benchmarks
from ntkscore.study.benchmarks import canonical_keys
from ntkscore.study.rank import select_archs
from ntkscore.train import TrainSettings, load_data, ntk_drift, train

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "results" / "train_check.csv.gz"
RUNS = ROOT / "runs" / "train_check.csv"
CELLS, CELL_SEED = 48, 7
BETAS = (0.0, 0.5, 1.0)
SETTINGS = TrainSettings(epochs=5, batch_size=128, steps=3, step_size=3 / 255, channels=4, cells_per_stage=1,
                         input_size=16, train_images=5000, test_images=500, eval_steps=10)
SCORE = ScoreSettings(channels=4, cells_per_stage=1, input_size=16, batch_size=16, kernels="all", family=False)


def run(root: Path) -> None:
    """Train and score every (cell, β) not yet in :data:`RUNS`, appending a row each."""
    archs = select_archs(sample=CELLS, seed=CELL_SEED)
    done = set()
    if RUNS.exists():
        old = pd.read_csv(RUNS)
        done = set(zip(old["arch"], old["beta"]))
    RUNS.parent.mkdir(parents=True, exist_ok=True)
    scorer = Scorer(SCORE, data_dir=root)
    drift_images = load_data(SETTINGS, root)[2][:16]
    for arch in archs:
        metrics = None
        for beta in BETAS:
            if (arch.to_string(), beta) in done:
                continue
            metrics = metrics or scorer(arch).metrics
            settings = replace(SETTINGS, beta=beta)
            result = train(arch, settings, data_dir=root)
            drift = ntk_drift(result["params_init"], result["params"], jnp.asarray(arch.ops, jnp.int32), drift_images,
                              settings)
            row = {"arch": arch.to_string(), "beta": beta, **result["accuracy"], "ntk_drift": drift,
                   "train_seconds": result["seconds"], "final_loss": result["loss"],
                   "params": cost.num_params(arch), "value": metrics.get("value"),
                   **{f"lambda_min K_all@{b:g}": metrics[f"K_all@{b:g}.lambda_min"] for b in BETAS},
                   **{f"lambda_min K_rob_all@{b:g}": metrics[f"K_rob_all@{b:g}.lambda_min"] for b in BETAS}}
            pd.DataFrame([row]).to_csv(RUNS, mode="a", header=not RUNS.exists(), index=False)
            print(f"{arch.to_string()} β={beta:g}: clean {row['clean']:.3f} pgd8 {row['pgd20@8']:.3f} "
                  f"drift {drift:.3f} ({result['seconds']:.0f} s)", flush=True)


def tau(a, b) -> str:
    ok = np.isfinite(np.asarray(a, float)) & np.isfinite(np.asarray(b, float))
    return f"{kendalltau(np.asarray(a)[ok], np.asarray(b)[ok]).statistic:.3f}" if ok.sum() > 2 else "–"


def report(root: Path, out: Path) -> None:
    table = pd.read_csv(TABLE)
    bench = benchmarks.load_robbench_csv(root / "nasrobbench201" / "cifar10.csv")
    by_key = dict(zip(canonical_keys(bench["arch_str"]), zip(bench["val_pgd_8.0_acc"], bench["val_acc"])))
    keys = canonical_keys(table["arch"])
    table = table.assign(bench_pgd8=[by_key[k][0] for k in keys], bench_clean=[by_key[k][1] for k in keys])
    cells = table["arch"].nunique()
    s = SETTINGS
    lines = ["# Adversarial training at a small setting: the paper's kernels against the outcome", "",
             "Command: `python benchmarks/train_check.py --run` (then without `--run` for this report)", "",
             f"{cells} cells (seeded sample of unique cells) trained with β ∈ {{{', '.join(f'{b:g}' for b in BETAS)}}}: "
             f"C{s.channels} N{s.cells_per_stage}, {s.input_size}×{s.input_size}, {s.train_images} CIFAR-10 training "
             f"images, {s.epochs} epochs, batch {s.batch_size}, one-cycle lr {s.lr}, PGD-{s.steps} (ε = 8/255, step "
             f"{s.step_size * 255:g}/255) in training; evaluated on {s.test_images} test images (clean, PGD-"
             f"{s.eval_steps} at ε = 8/255 with step 2/255). Kernels at the same network shape, B = {SCORE.batch_size}, "
             "PGD-7. Kendall τ over the cells; NaN-free pairs only.", "",
             "## (a) Does the small setting keep the benchmark's order?", "",
             "| β | τ(our PGD-8, NAS-RobBench-201 PGD-8) | τ(our clean, NAS-RobBench-201 clean) | our mean clean | our mean PGD-8 |",
             "|---|---|---|---|---|"]
    for beta, g in table.groupby("beta"):
        lines.append(f"| {beta:g} | {tau(g['pgd20@8'], g['bench_pgd8'])} | {tau(g['clean'], g['bench_clean'])} | "
                     f"{100 * g['clean'].mean():.1f}% | {100 * g['pgd20@8'].mean():.1f}% |")
    lines += ["", "## (b) The paper's kernels, per β, against the training they are about", "",
              "| β | λ_min(K_all(β)) vs our clean | λ_min(K̃_all(β)) vs our PGD-8 | #params vs clean | #params vs PGD-8 "
              "| `value` vs clean | `value` vs PGD-8 |", "|---|---|---|---|---|---|---|"]
    for beta, g in table.groupby("beta"):
        lines.append(f"| {beta:g} | {tau(g[f'lambda_min K_all@{beta:g}'], g['clean'])} | "
                     f"{tau(g[f'lambda_min K_rob_all@{beta:g}'], g['pgd20@8'])} | {tau(g['params'], g['clean'])} | "
                     f"{tau(g['params'], g['pgd20@8'])} | {tau(g['value'], g['clean'])} | {tau(g['value'], g['pgd20@8'])} |")
    lines += ["", "## (c) How far the NTK moves, and whether that matters", "",
              "Drift = ‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F on 16 test images. The last two columns split the cells at the median "
              "drift: τ of λ_min(K̃_all(β)) with our PGD-8 accuracy among the lazier and the less lazy half.", "",
              "| β | median drift | τ(drift, our PGD-8) | τ in the lazier half | τ in the other half |",
              "|---|---|---|---|---|"]
    for beta, g in table.groupby("beta"):
        lazy = g["ntk_drift"] <= g["ntk_drift"].median()
        col = f"lambda_min K_rob_all@{beta:g}"
        lines.append(f"| {beta:g} | {g['ntk_drift'].median():.3f} | {tau(g['ntk_drift'], g['pgd20@8'])} | "
                     f"{tau(g[lazy][col], g[lazy]['pgd20@8'])} | {tau(g[~lazy][col], g[~lazy]['pgd20@8'])} |")
    lines += ["", f"Training time per cell and β: median {table['train_seconds'].median():.1f} s on a 2-core CPU "
                  "(compilation included for the first cell of each β; the recorded run shared the CPU with another "
                  "job for most of its time)."]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="store_true", help="train the missing (cell, β) pairs first")
    p.add_argument("--data", default=None)
    args = p.parse_args(argv)
    root = data_dir(args.data)
    if args.run:
        run(root)
        pd.read_csv(RUNS).to_csv(TABLE, index=False, compression="gzip")
    report(root, ROOT / "benchmarks" / "results" / "train_check.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
