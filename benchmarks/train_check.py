"""Recorded study: the paper's claim on the training it is about — do λ_min(K_all(β)) and λ_min(K̃_all(β)) predict
the clean and robust accuracy of multi-objective adversarial training with that β?

    python benchmarks/train_check.py --run      # train 48 cells × β ∈ {0, 0.5, 1} (resumable; ~1 h on 2 cores)
    python benchmarks/train_check.py            # the report from benchmarks/results/train_check.csv.gz

A seeded sample of unique cells is trained with :func:`ntkscore.train.train` by the authors' recipe (augmentation,
eval-mode training attack, cycled momentum, PyTorch's initialisation) at a small setting (:data:`SETTINGS`: C4 N1 on
16×16 images, all 5000 CIFAR-10 training images, 5 epochs, batch 128, PGD-3 with step 3/255 during training;
evaluation on 500 test images with PGD-10 of step 2.5·ε/10 and APGD-CE / APGD-DLR of 50 iterations) for each β. Its
kernels are scored at the same network shape (:data:`SCORE`: B = 16, PGD-7), and ``value`` / ``robustness`` at the
shipped settings (:data:`SHIPPED`). The report gives (a) whether the small setting keeps the benchmark's order (τ of
our accuracies with NAS-RobBench-201's); (b) for each β, τ of λ_min(K_all(β)) with our clean accuracy and of
λ_min(K̃_all(β)) with our PGD-8 and APGD accuracies, beside #params, and of ``value`` / ``robustness`` on the cells
they were not fitted on; (c) the NTK's drift over training (:func:`ntkscore.train.ntk_drift`) against the outcome.
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
from ntkscore.study import benchmarks, evaluate
from ntkscore.study.benchmarks import canonical_keys
from ntkscore.study.rank import select_archs
from ntkscore.train import TrainSettings, load_data, ntk_drift, train

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "results" / "train_check.csv.gz"
RUNS = ROOT / "runs" / "train_check_recipe.csv"
CELLS, CELL_SEED = 48, 7
BETAS = (0.0, 0.5, 1.0)
SETTINGS = TrainSettings(epochs=5, batch_size=128, steps=3, step_size=3 / 255, channels=4, cells_per_stage=1,
                         input_size=16, train_images=5000, test_images=500, eval_steps=10, apgd_steps=50)
SCORE = ScoreSettings(channels=4, cells_per_stage=1, input_size=16, batch_size=16, kernels="all", family=False)
SHIPPED = ScoreSettings()
"""The settings ``value`` and ``robustness`` exist at (C8 N1, 16×16, B = 20)."""


def run(root: Path) -> None:
    """Train and score every (cell, β) not yet in :data:`RUNS`, appending a row each."""
    archs = select_archs(sample=CELLS, seed=CELL_SEED)
    done = set()
    if RUNS.exists():
        old = pd.read_csv(RUNS)
        done = set(zip(old["arch"], old["beta"]))
    RUNS.parent.mkdir(parents=True, exist_ok=True)
    scorer, shipped = Scorer(SCORE, data_dir=root), Scorer(SHIPPED, data_dir=root)
    drift_images = load_data(SETTINGS, root)[2][:16]
    for arch in archs:
        metrics = None
        for beta in BETAS:
            if (arch.to_string(), beta) in done:
                continue
            if metrics is None:
                learned = shipped(arch)
                metrics = {**scorer(arch).metrics, "value": learned.metrics.get("value"),
                           "robustness": learned.metrics.get("robustness")}
            settings = replace(SETTINGS, beta=beta)
            result = train(arch, settings, data_dir=root)
            drift = ntk_drift(result["params_init"], result["params"], jnp.asarray(arch.ops, jnp.int32), drift_images,
                              settings)
            row = {"arch": arch.to_string(), "beta": beta, **result["accuracy"], "ntk_drift": drift,
                   "train_seconds": result["seconds"], "final_loss": result["loss"],
                   "params": cost.num_params(arch), "value": metrics.get("value"),
                   "robustness": metrics.get("robustness"),
                   **{f"lambda_min K_all@{b:g}": metrics[f"K_all@{b:g}.lambda_min"] for b in BETAS},
                   **{f"lambda_min K_rob_all@{b:g}": metrics[f"K_rob_all@{b:g}.lambda_min"] for b in BETAS}}
            pd.DataFrame([row]).to_csv(RUNS, mode="a", header=not RUNS.exists(), index=False)
            print(f"{arch.to_string()} β={beta:g}: clean {row['clean']:.3f} pgd8 {row['pgd20@8']:.3f} "
                  f"drift {drift:.3f} ({result['seconds']:.0f} s)", flush=True)


def tau(a, b) -> str:
    ok = np.isfinite(np.asarray(a, float)) & np.isfinite(np.asarray(b, float))
    return f"{kendalltau(np.asarray(a)[ok], np.asarray(b)[ok]).statistic:.3f}" if ok.sum() > 2 else "–"


OUTCOMES = {"clean": "clean", "pgd20@8": "PGD-10@8", "apgd-ce@8": "APGD-CE@8", "apgd-dlr@8": "APGD-DLR@8"}
"""Our accuracies in the report (the PGD column is named pgd20 by :func:`ntkscore.train.evaluate`; here it ran 10
steps)."""


def report(root: Path, out: Path) -> None:
    table = pd.read_csv(TABLE)
    if "apgd-ce@8" not in table.columns:  # trained by the earlier recipe: its report stays as it was written
        print(f"{out.name} kept: {TABLE.name} was trained by ntkscore 0.4.0's recipe; "
              "'python benchmarks/train_check.py --run' trains by the current one")
        return
    bench = benchmarks.load_robbench_csv(root / "nasrobbench201" / "cifar10.csv")
    by_key = {k: r for k, r in zip(canonical_keys(bench["arch_str"]),
                                   bench[["val_pgd_8.0_acc", "val_acc", "autoattack"]].to_numpy())}
    keys = canonical_keys(table["arch"])
    dev = evaluate.development_keys(root)
    table = table.assign(bench_pgd8=[by_key[k][0] for k in keys], bench_clean=[by_key[k][1] for k in keys],
                         bench_aa=[by_key[k][2] for k in keys], dev=[k in dev for k in keys])
    cells = table["arch"].nunique()
    held = table[~table["dev"]]
    s = SETTINGS
    lines = ["# Adversarial training at a small setting: the paper's kernels against the outcome", "",
             "Command: `python benchmarks/train_check.py --run` (then without `--run` for this report)", "",
             f"{cells} cells (seeded sample of unique cells) trained with β ∈ {{{', '.join(f'{b:g}' for b in BETAS)}}} "
             f"by the authors' recipe (random crop with padding {s.input_size // 8} and flip, the training attack in "
             f"eval mode, OneCycleLR with cycled momentum, PyTorch's initialisation) at a small setting: "
             f"C{s.channels} N{s.cells_per_stage}, {s.input_size}×{s.input_size}, {s.train_images} CIFAR-10 training "
             f"images, {s.epochs} epochs, batch {s.batch_size}, PGD-{s.steps} (ε = 8/255, step "
             f"{s.step_size * 255:g}/255) in training; evaluated on {s.test_images} test images (clean; PGD-"
             f"{s.eval_steps}, step {s.eval_step_scale:g}·ε/{s.eval_steps}; APGD-CE and APGD-DLR, {s.apgd_steps} "
             f"iterations; ε = 8/255). The benchmark trained C16 N5 on 32×32 images, all 50000 images, 50 epochs, "
             f"PGD-7 with step 2/255, and evaluated on the test set with PGD-20 and AutoAttack. Kernels at the same "
             f"network shape as the training here, B = {SCORE.batch_size}, PGD-7; `value` and `robustness` at the "
             f"shipped settings (C8 N1, 16×16, B = 20), correlated only on the {held['arch'].nunique()} cells outside "
             "the development split they were fitted on. Kendall τ over the cells; NaN-free pairs only.", "",
             "## (a) Our accuracies, and whether the small setting keeps the benchmark's order", "",
             "| β | mean clean | mean PGD-10@8 | mean APGD-CE@8 | mean APGD-DLR@8 | τ(our PGD, bench PGD-8) | "
             "τ(our APGD-CE, bench AutoAttack) | τ(our clean, bench clean) |", "|---|---|---|---|---|---|---|---|"]
    for beta, g in table.groupby("beta"):
        lines.append(f"| {beta:g} | {100 * g['clean'].mean():.1f}% | {100 * g['pgd20@8'].mean():.1f}% | "
                     f"{100 * g['apgd-ce@8'].mean():.1f}% | {100 * g['apgd-dlr@8'].mean():.1f}% | "
                     f"{tau(g['pgd20@8'], g['bench_pgd8'])} | {tau(g['apgd-ce@8'], g['bench_aa'])} | "
                     f"{tau(g['clean'], g['bench_clean'])} |")
    lines += ["", "## (b) The paper's kernels, per β, against the training they are about", "",
              "τ with each of our accuracies. λ_min(K_all(β)) and #params on all cells; `value` and `robustness` "
              "on the cells outside the development split.", "",
              "| β | score | " + " | ".join(OUTCOMES.values()) + " |", "|---|---|" + "---|" * len(OUTCOMES)]
    for beta, g in table.groupby("beta"):
        h = g[~g["dev"]]
        rows = [(f"λ_min(K_all({beta:g}))", g, f"lambda_min K_all@{beta:g}"),
                (f"λ_min(K̃_all({beta:g}))", g, f"lambda_min K_rob_all@{beta:g}"),
                ("#params (control)", g, "params"), (f"value (n = {len(h)})", h, "value"),
                (f"robustness (n = {len(h)})", h, "robustness")]
        for name, part, column in rows:
            lines.append(f"| {beta:g} | {name} | " + " | ".join(tau(part[column], part[o]) for o in OUTCOMES) + " |")
    lines += ["", "## (c) How far the NTK moves, and whether that matters", "",
              "Drift = ‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F on 16 test images. The last two columns split the cells at the median "
              "drift: τ of λ_min(K̃_all(β)) with our PGD-10 accuracy among the lazier and the less lazy half.", "",
              "| β | median drift | τ(drift, our PGD-10) | τ in the lazier half | τ in the other half |",
              "|---|---|---|---|---|"]
    for beta, g in table.groupby("beta"):
        lazy = g["ntk_drift"] <= g["ntk_drift"].median()
        col = f"lambda_min K_rob_all@{beta:g}"
        lines.append(f"| {beta:g} | {g['ntk_drift'].median():.3f} | {tau(g['ntk_drift'], g['pgd20@8'])} | "
                     f"{tau(g[lazy][col], g[lazy]['pgd20@8'])} | {tau(g[~lazy][col], g[~lazy]['pgd20@8'])} |")
    lines += ["", f"Training and evaluation time per cell and β: median {table['train_seconds'].median():.1f} s of "
                  "training on a 2-core CPU (compilation included for the first cell of each β)."]
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
