"""Recorded study: every NTK-family quantity against NAS-RobBench-201 / NAS-Bench-201 accuracy, clean and robust
variants side by side, with #params on the same cells.

    python benchmarks/ntk_family.py \\
        --scores "whole space, cheap settings=benchmarks/results/ntk_family_space.csv.gz" \\
                 "real shape=benchmarks/results/ntk_family_real.csv.gz"

Each ``--scores`` entry is ``LABEL=FILE``, a score table written by ``ntkscore rank`` (the commands that made the
recorded ones are in the report). The family is :mod:`ntkscore.kernels.family` (TE-NAS condition number, NASI trace, KNAS,
LGA, the Fisher spectrum of VKDNW, per-layer NTK spectra) plus the paper's quantities of the same kernels and the
per-layer feature Gram (``features.lambda_min``, computed in the zero-cost pass, so only where that pass ran).
For each table and target (NB201 clean test accuracy, NAS-RobBench-201 PGD-8 and AutoAttack accuracy): Kendall τ,
Spearman ρ and top-5% precision of each quantity computed on the clean batch ``X`` (``K.``) and on ``A(X)``
(``K_rob.``), oriented so that larger = predicted better (condition numbers and bounds negated; every other
quantity as it is, so a negative τ is a quantity that ranks backwards). Writes
``benchmarks/results/ntk_family.{md,csv}``.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from ntkscore.inputs.data import data_dir
from ntkscore.kernels import family
from ntkscore.study import evaluate, rank

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"test_acc": "NB201 clean", "val_pgd_8.0_acc": "PGD-8", "autoattack": "AutoAttack",
           "robustness_residual": "robustness residual", "pgd8/clean": "PGD-8 / clean"}
"""The accuracies, the robustness residual (:func:`ntkscore.study.evaluate.robustness_residual`, within each table) and
the fraction of the clean accuracy kept under PGD-8."""
QUANTITIES = family.PROXIES + family.LAYER_AGGREGATES + ("lambda_min", "condition", "trace", "bound",
                                                          "effective_rank") + family.DECILES
RUNS = (
    "ntkscore rank --sample 6466 --sample-seed 1 --channels 8 --cells 1 --input-size 16 --batch-size 20 "
    "--no-proxies --kernels robust --family --out runs/family/space.csv  (all unique cells in a seeded random order: "
    "a stopped run's rows are a random sample)",
    "ntkscore rank --archs benchmarks/results/ntk_family_real_cells.txt --kernels robust --family --out runs/family/real.csv"
    "  (the 488 committed real-shape cells in a seeded random order; default settings otherwise)",
    "gzip -c runs/family/space.csv > benchmarks/results/ntk_family_space.csv.gz; "
    "gzip -c runs/family/real.csv > benchmarks/results/ntk_family_real.csv.gz",
    "ntkscore rank --sample 300 --sample-seed 3 --out runs/family/v07.csv  (the default settings, by version 0.7.0: "
    "the first table with tenas_condition over the weights and zc.meco_published; the two tables above were scored "
    "by earlier versions, whose tenas_condition is read as tenas_condition_all)",
    "gzip -c runs/family/v07.csv > benchmarks/results/ntk_family_v07.csv.gz",
    "ntkscore rank --sample 500 --sample-seed 2 --channels 8 --cells 1 --input-size 16 --batch-size 64 --no-proxies "
    "--kernels robust --out runs/batch/cheap_b64.csv  (and the same with --batch-size 16 --out runs/batch/cheap_b16.csv; "
    "gzipped to benchmarks/results/batch_size_b64.csv.gz, batch_size_b16.csv.gz: the batch-size report)",
)
"""How the committed tables were scored (the report regenerates from them without re-scoring)."""
BOOTSTRAP_MAX_CELLS = 1000
"""Tables of at most this many cells get a bootstrap 95% CI of τ (larger ones: the CI is ±0.01 or less)."""
SINGLE = ("features.lambda_min", "zc.meco", "zc.meco_published", "baseline.params", "baseline.flops")
"""Columns without a clean/robust pair, shown once (not ``value`` and ``robustness``: a table at the default settings
holds the cells they were fitted on; they are measured on the others in ``predictors.md``)."""


def study(label: str, path: Path, root: Path, n_boot: int) -> tuple[list[str], pd.DataFrame]:
    scores = rank.read_scores(path)  # older tables under current column names
    joined, _ = evaluate.join_benchmarks(scores, root / "nasrobbench201" / "cifar10.csv",
                                         root / "nb201" / "cifar10_clean_acc.csv")
    joined = joined.assign(robustness_residual=evaluate.robustness_residual(joined["val_pgd_8.0_acc"],
                                                                            joined["val_acc"]),
                           **{"pgd8/clean": joined["val_pgd_8.0_acc"] / joined["val_acc"]})
    columns = [f"{k}.{q}" for q in QUANTITIES for k in family.KERNELS if f"{k}.{q}" in joined]
    columns += [c for c in SINGLE if c in joined]
    n_boot = n_boot if len(joined) <= BOOTSTRAP_MAX_CELLS else 0
    table = evaluate.correlate(joined, columns, list(TARGETS), n_boot=n_boot)
    settings = {c.removeprefix("setting."): scores[c].iloc[0] for c in scores.columns if c.startswith("setting.")}
    shape = (f"C{settings.get('channels')} N{settings.get('cells_per_stage')}, input "
             f"{settings.get('input_size') if settings.get('input_size') == settings.get('input_size') else 32}, "
             f"B = {settings.get('batch_size')}, Fisher on {settings.get('fisher_batch_size')} images, "
             f"kernels {settings.get('kernels')}, seed {settings.get('seed')}")
    seconds = pd.to_numeric(scores["seconds"], errors="coerce")
    lines = [f"## {label}", "", f"`{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`: "
             f"{len(scores)} cells scored ({shape}; {seconds.median():.2f} s per cell, median), "
             f"{table['n'].max()} with benchmark accuracies.", ""]
    for target, name in TARGETS.items():
        t = table[table["metric"] == target].set_index("score")
        lines += [f"### {name} (`{target}`)", "",
                  "| quantity | τ on X | τ on A(X) | ρ on X | ρ on A(X) | top-5% on X | top-5% on A(X) |",
                  "|---|---|---|---|---|---|---|"]

        def cell(col, stat, fmt="{:.3f}"):
            if col not in t.index:
                return "–"
            text = fmt.format(t.loc[col, stat])
            if stat == "kendall_tau" and n_boot:
                text += f" [{t.loc[col, 'tau_lo']:.2f}, {t.loc[col, 'tau_hi']:.2f}]"
            return text

        for q in QUANTITIES:
            clean, robust = f"K.{q}", f"K_rob.{q}"
            if clean not in t.index and robust not in t.index:
                continue
            lines.append(f"| {q} | {cell(clean, 'kendall_tau')} | {cell(robust, 'kendall_tau')} | "
                         f"{cell(clean, 'spearman_rho')} | {cell(robust, 'spearman_rho')} | "
                         f"{cell(clean, 'top5%', '{:.2f}')} | {cell(robust, 'top5%', '{:.2f}')} |")
        for col in SINGLE:
            if col in t.index:
                lines.append(f"| {col} (one batch) | {cell(col, 'kendall_tau')} | | {cell(col, 'spearman_rho')} | "
                             f"| {cell(col, 'top5%', '{:.2f}')} | |")
        lines.append("")
    return lines, table.assign(table=label)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scores", nargs="+", required=True, help="LABEL=FILE score tables from 'ntkscore rank'")
    p.add_argument("--data", default=None, help="benchmark data directory (default $NTKSCORE_DATA)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ntk_family.md"))
    p.add_argument("--title", default="The NTK family against robust and clean accuracy")
    p.add_argument("--bootstrap", type=int, default=300, help="bootstrap resamples of τ's CI (small tables only)")
    args = p.parse_args(argv)
    root = data_dir(args.data)
    command = "python benchmarks/ntk_family.py " + " ".join(f'"{a}"' if " " in a else a
                                                            for a in (argv if argv is not None else sys.argv[1:]))
    lines = [f"# {args.title}", "", f"Command: `{command}`", "",
             "Kendall τ, Spearman ρ and top-5% precision (the fraction of the top 5% by score that is in the top 5% "
             "by accuracy) on CIFAR-10. *on X*: the quantity of the clean batch's kernels; *on A(X)*: of the PGD-7 "
             "(ε = 8/255) batch's. Oriented so that larger = predicted better for condition numbers and bounds "
             "(negated); every other quantity as it is. Definitions: `ntkscore.kernels.family`.", "",
             "The score tables were made by:", ""] + [f"- `{r.split('  (')[0]}`" + (f" ({r.split('  (')[1]}"
                                                                                     if "  (" in r else "")
                                                    for r in RUNS] + [""]
    tables = []
    for entry in args.scores:
        label, _, path = entry.partition("=")
        section, table = study(label, Path(path).resolve(), root, args.bootstrap)
        lines += section
        tables.append(table)
    out = Path(args.out)
    out.write_text("\n".join(lines) + "\n")
    pd.concat(tables).to_csv(out.with_suffix(".csv"), index=False, float_format="%.5g")
    return 0


if __name__ == "__main__":
    sys.exit(main())
