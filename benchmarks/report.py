"""The results report: every number the README quotes, regenerated from the committed tables (no scoring).

    python benchmarks/report.py        # ~2 min on a 2-core CPU; needs $NTKSCORE_DATA (the benchmark tables)

Runs, in order, and writes to ``benchmarks/results/``:

1. ``predictor_report.py`` — the shipped learned ``value`` and ``robustness`` on the test cells beside their
   controls, few-shot, permutation importance and seed robustness (``predictors.{md,json}``; how they were designed:
   ``predictor_design.py``, ``predictor_design.md``); ``score_design.py`` — the one-term linear baselines
   (``score_design.{md,csv,json}``);
2. ``ntk_family.py`` twice — the NTK family at the cheap settings over the whole space and at the real shape
   (``ntk_family.{md,csv}``), and the batch-size comparison (``batch_size.{md,csv}``); ``train_check.py`` — the
   paper's kernels against cells trained with the multi-objective loss (``train_check.md``);
3. the agreement of ntkscore's zero-cost terms with the published values (NAS-Bench-Suite-Zero) on the real-shape
   cells;
4. the search study's and the Ray timing's recorded tables (``search.csv`` by ``search.py``, ``ray_speed.json`` by
   ``ray_speed.py``), the comparison with the PyTorch peers (``peer_speed.md`` by ``peer_speed.py``,
   ``ntk_float64.md`` by ``ntk_float64.py``), the speed tables recorded by ``speed.py`` (``speed*.json``) and
   ``first_call.py`` and ``cpu_fusions.py``, and the rounding check of ``rounding.py`` (``rounding.md``): runs that
   time a machine or score cells are not re-run here; each table names its command and machine;

and assembles ``REPORT.md``: the headline tables, each with the command that made it, and links to the full reports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))

import ntk_family  # noqa: E402
import predictor_report  # noqa: E402
import score_design  # noqa: E402
import train_check  # noqa: E402

from ntkscore.inputs.data import data_dir  # noqa: E402
from ntkscore.study import benchmarks  # noqa: E402
from ntkscore.study.benchmarks import canonical_keys  # noqa: E402

FAMILY_RUNS = (
    ["--scores", "whole space, cheap settings=benchmarks/results/ntk_family_space.csv.gz",
     "real shape=benchmarks/results/ntk_family_real.csv.gz",
     "default settings, 300 cells, version 0.7.0=benchmarks/results/ntk_family_v07.csv.gz"],
    ["--title", "NTK quantities at B = 16 and B = 64 on the same 500 cells (C8 N1 16×16)",
     "--out", "benchmarks/results/batch_size.md",
     "--scores", "B16=benchmarks/results/batch_size_b16.csv.gz", "B64=benchmarks/results/batch_size_b64.csv.gz"],
)
HEADLINE = (
    ("value", "log `zc.meco`"),
    ("rank(params,jacobian,correlation)", "rank(#params, jacov, MeCo) within these cells"),
    ("rank(ntk,jacobian,correlation)", "rank(NTK score, jacov, MeCo) within these cells"),
    ("cheap: value", "`cheap: value` (the protocol run at the cheap settings)"),
    ("zc.naswot", "NASWOT (`zc.naswot`)"),
    ("zc.jacov", "jacov (`zc.jacov`)"),
    ("baseline.params", "#params"),
    ("robustness", "log tr K_all(0.5)"),
    ("robustness: params for K_all@0.5.trace", "control: log #params in its place"),
    ("cheap: robustness", "`cheap: robustness`"),
    ("K_rob.lambda_min", "λ_min(K̃_ε)"),
    ("K_rob_all@1.lambda_min", "λ_min(K̃_all(1)) (the paper's score)"),
)
TARGETS = (("val_pgd_8.0_acc", "PGD-8"), ("test_acc", "NB201 clean"), ("autoattack", "AutoAttack"),
           ("robustness_residual", "robustness residual"), ("pgd8/clean", "PGD-8 / clean"))
ZERO_COST_PAIRS = (("zc.naswot", "nwot"), ("zc.jacov", "jacov"), ("zc.synflow", "synflow"))


def headline(split: str) -> list[str]:
    """The shipped scores against #params and the best zero-cost proxies on one split of ``score_design.csv``."""
    table = pd.read_csv(RESULTS / "score_design.csv")
    table = table[table["split"] == split].set_index(["score", "metric"])
    head = "| score | " + " | ".join(t for _, t in TARGETS) + " | top-5% PGD-8 | top-1 pick's PGD-8 |"
    lines = [head, "|" + "---|" * (len(TARGETS) + 3)]
    for name, label in HEADLINE:
        if (name, TARGETS[0][0]) not in table.index:
            continue
        cells = []
        for metric, _ in TARGETS:
            r = table.loc[(name, metric)] if (name, metric) in table.index else None
            if r is None:
                cells.append("–")
            elif metric in ("val_pgd_8.0_acc", "robustness_residual"):
                cells.append(f"{r.kendall_tau:.3f} [{r.tau_lo:.2f}, {r.tau_hi:.2f}]")
            else:
                cells.append(f"{r.kendall_tau:.3f}")
        pgd = table.loc[(name, "val_pgd_8.0_acc")]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {pgd['top5%']:.2f} | {100 * pgd.top1_acc:.2f}% |")
    n = int(table.xs("val_pgd_8.0_acc", level="metric")["n"].max())
    return lines + ["", f"Kendall τ [95% bootstrap CI], n = {n} cells; top-5%: the share of the score's top 5% that "
                        "is in the benchmark's top 5%."]


def zero_cost_agreement(root: Path) -> list[str]:
    """Kendall τ between ntkscore's zero-cost terms at the real shape and the published NAS-Bench-Suite-Zero values."""
    ours = pd.read_csv(RESULTS / "proxies_real.csv.gz")
    published = benchmarks.load_table(root / "zero_cost" / "nb201_cifar10_proxies.csv")
    ours = ours.assign(_key=canonical_keys(ours["arch"]))
    published = published.assign(_key=canonical_keys(published["arch_str"])).drop_duplicates("_key")
    joined = ours.merge(published, on="_key", how="inner")
    lines = ["| ntkscore | published | cells | Kendall τ |", "|---|---|---|---|"]
    for mine, theirs in ZERO_COST_PAIRS:
        pair = joined[[mine, theirs]].dropna()
        lines.append(f"| `{mine}` | `{theirs}` | {len(pair)} | {kendalltau(pair[mine], pair[theirs]).statistic:.3f} |")
    return lines


def speed_tables() -> list[str]:
    """The recorded speed runs (``speed*.json`` and their ``.cmd``), one table each."""
    lines = []
    for path in sorted(RESULTS.glob("speed*.json")):
        rows = json.loads(path.read_text())
        command = path.with_suffix(".cmd").read_text().strip() if path.with_suffix(".cmd").exists() else "?"
        machine = (RESULTS / f"{path.stem}.md").read_text().split("Machine: ", 1)[-1].split("\n", 1)[0]
        lines += [f"**`{path.stem}`** — {machine}", "", f"Command: `{command}`", "",
                  "| engine | kernels | B | cells/step | family | light s | mixed s | heavy s | first call s | "
                  "peak RSS GB |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if "@" in r["engine"]:  # a row timing an engine at an earlier commit, kept in the run for comparison
                continue
            m = r["median_s"]
            lines.append(f"| {r['engine']} | {r['kernels']} | {r['batch_size']} | {r.get('arch_batch', 1)} | "
                         f"{'on' if r.get('family') else 'off'} | {m['light']:.2f} | {m['mixed']:.2f} | "
                         f"{m['heavy']:.2f} | {max(r['first_s'].values()):.1f} | {r['peak_rss_gb']:.1f} |")
        lines.append("")
    return lines


def recorded(name: str) -> list[str]:
    """The body of a recorded benchmark report ``results/<name>.md`` (its title dropped), or a line saying that the
    benchmark has not been run."""
    path = RESULTS / f"{name}.md"
    if not path.exists():
        return [f"(`{name}.md` not recorded: run `python benchmarks/{name}.py`.)"]
    return path.read_text().split("\n", 2)[2].strip().splitlines()


def batch_size_summary() -> list[str]:
    """τ of the attacked kernel's λ_min, bound and trace at B = 16 and B = 64 on the same cells (``batch_size.csv``)."""
    table = pd.read_csv(RESULTS / "batch_size.csv").set_index(["score", "metric", "table"])
    lines = ["| quantity of K̃_ε | τ PGD-8, B = 16 | τ PGD-8, B = 64 | τ residual, B = 16 | τ residual, B = 64 |",
             "|---|---|---|---|---|"]
    for name in ("K_rob.lambda_min", "K_rob.bound", "K_rob.trace"):
        cells = [table.loc[(name, metric, b), "kendall_tau"] for metric in ("val_pgd_8.0_acc", "robustness_residual")
                 for b in ("B16", "B64")]
        lines.append(f"| `{name}` | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return lines


def search_summary() -> list[str]:
    """Median regret of the top-1 cell per strategy, budget and constraint (``search.csv``, by ``search.py``)."""
    table = pd.read_csv(RESULTS / "search.csv")
    lines = ["| constraint | strategy | budget | cells scored | regret of the top-1 cell, pp (median [min, max]) | "
             "best of the top 5, pp (median) |", "|---|---|---|---|---|---|"]
    for (limit, strategy, budget), g in table.groupby(["constraint", "strategy", "budget_s"], sort=False):
        when = "no scoring" if budget == 0 else f"{budget // 60} min"
        lines.append(f"| {limit} | {strategy} | {when} | {int(g.cells.median())} | {g.regret_pp.median():.2f} "
                     f"[{g.regret_pp.min():.2f}, {g.regret_pp.max():.2f}] | {g.regret_top5_pp.median():.2f} |")
    return lines


def ray_summary() -> list[str]:
    """The recorded Ray timing (``ray_speed.json``, by ``ray_speed.py``)."""
    run = json.loads((RESULTS / "ray_speed.json").read_text())
    lines = [f"Command: `{run['command']}`; {run['machine']}; Ray's start-up {run['ray_startup_s']:.1f} s.", "",
             "| run | cells | wall s | first row s | s per cell after the first |", "|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['cells']} | {r['wall_s']:.1f} | {r['first_row_s']:.1f} | "
              f"{r['per_cell_after_first_s']:.2f} |" for r in run["rows"]]
    return lines


def main(argv=None) -> int:
    root = data_dir(None)
    predictor_report.main([])
    score_design.main([])
    for run in FAMILY_RUNS:
        ntk_family.main(run)
    train_check.main([])  # its report from the committed training table
    lines = [
        "# ntkscore results report", "",
        "Generated by `python benchmarks/report.py` from the score tables committed in `benchmarks/results/` and the "
        "benchmark tables of `$NTKSCORE_DATA` (NAS-RobBench-201, NAS-Bench-201, NAS-Bench-Suite-Zero); nothing is "
        "re-scored. CIFAR-10 throughout. The robustness residual is the PGD-8 rank left after a least-squares line "
        "on the clean-accuracy rank: which cells keep more of their accuracy under attack than their clean accuracy "
        "predicts.", "",
        "## How good the shipped scores are", "",
        "The 6285 CIFAR-10 cells with every benchmark value are split once by a seeded permutation into 20% "
        "development and 80% test cells (`ntkscore.study.evaluate.development_keys`). `value` and `robustness` are "
        "LightGBM models over the metrics of the default settings, designed and fitted on the development cells "
        "([predictor_design.md](predictor_design.md)); below, the test cells "
        "([predictors.md](predictors.md), `python benchmarks/predictor_report.py`).", "",
        *(RESULTS / "predictors.md").read_text().split("\n", 4)[4].replace("## ", "### ").splitlines(), "",
        "## One-term linear baselines", "",
        "The best one-term formulas chosen on the development cells of the real-shape tables (C16 N5, 32×32, "
        "B = 16; [score_design.md](score_design.md)); tables of version 0.1.0 (the committed real-shape and "
        "whole-space tables of that version).", "",
        "### Real shape, test cells", "",
        *headline("real shape, test"), "",
        "### Whole space at the cheap settings, test split", "",
        "The same formulas applied to the whole-space tables of version 0.1.0 (NTK at C8 N1 16×16, B = 20; "
        "zero-cost terms at C16 N1 16×16): a transfer to a shape they were not fitted at.", "",
        *headline("whole space, test"), "",
        "## The NTK family", "",
        "Every published NTK proxy and per-layer spectrum, on the clean and the attacked batch: "
        "[ntk_family.md](ntk_family.md) (all 6466 cells at C8 N1 16×16, and the real-shape cells). How the batch "
        "size changes the spectral quantities (the same 500 cells at C8 N1 16×16, B = 16 and B = 64; bounds "
        "negated): [batch_size.md](batch_size.md).", "",
        *batch_size_summary(), "",
        "## Zero-cost terms against the published values", "",
        "ntkscore computes the zero-cost terms natively in JAX (BN statistics held constant, gradients w.r.t. the "
        "[0, 1] image); agreement with NAS-Bench-Suite-Zero's PyTorch values on the committed real-shape cells "
        "(`proxies_real.csv.gz`):", "",
        *zero_cost_agreement(root), "",
        "## The theory on real training", "",
        "Cells trained with the multi-objective loss at a small setting, against the paper's kernels at the same "
        "network shape ([train_check.md](train_check.md), `python benchmarks/train_check.py`; the training itself "
        "is `--run`):", "",
        *(RESULTS / "train_check.md").read_text().split("\n", 4)[4].replace("## ", "### ").splitlines(), "",
        "## Search", "",
        "`ntkscore search` by the shipped `value` at the default settings, replayed from the committed "
        "whole-space table with its recorded seconds per cell (details and a live clock check: "
        "[search.md](search.md), `python benchmarks/search.py --live 60`); regret = the best NAS-RobBench-201 "
        "PGD-8 accuracy of the admissible cells minus that of the cell the search ranks first, 10 search seeds:", "",
        *search_summary(), "",
        "## Ranking on a Ray cluster", "",
        *ray_summary(), "",
        "## Against the PyTorch peers", "",
        "The same network, weights and images in ntkscore and in PyTorch (`benchmarks/peer_speed.py`; PyTorch in "
        "its own environment):", "",
        *recorded("peer_speed"), "",
        "How exact both float32 kernels are (`benchmarks/ntk_float64.py`):", "",
        *recorded("ntk_float64"), "",
        "## Speed", "",
        "Seconds per cell (median after a warm-up call) at the real shape (C16 N5, 32×32), for a light "
        "(`|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+…`), a mixed and an all-`nor_conv_3x3` cell; *first "
        "call* includes compilation. The speed runs time a machine and are not re-run by this script; each table "
        "names its command and machine.", "",
        *speed_tables(),
        "## Time to a first number", "",
        *recorded("first_call"), "",
        "### XLA:CPU library fusions", "",
        *recorded("cpu_fusions"), "",
        "## Float32 rounding", "",
        *recorded("rounding"), "",
    ]
    (RESULTS / "REPORT.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
