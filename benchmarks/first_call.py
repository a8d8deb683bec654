"""Time to a first number: a new process scoring one cell at the default settings, with the persistent compilation
cache cold (empty) and warm (filled by the cold run); and ``correlate``'s bootstrap on 20 and on all cells.

    python benchmarks/first_call.py        # ~6 min on a 2-core CPU; needs $NTKSCORE_DATA for the correlate rows

Each scoring row is a fresh ``python`` process that imports ntkscore, builds the default :class:`ntkscore.Scorer`
(what ``ntkscore score`` does) and scores NB201 index 1's cell; it reports the import time, the scorer's
construction (weights, batches), the first cell's call (compilation or cache loads included), a second cell in the
same process, the mean of :data:`LATER` more, and the XLA compilations made; once at the default settings (the
scoring programs compiled with XLA:CPU's own kernels) and once with ``cpu_library_fusions=True`` (XLA:CPU's
YNNPACK library fusions; :data:`VARIANTS`). The correlate rows time :func:`ntkscore.study.evaluate.correlate` with
1000 bootstrap resamples over the default score columns of the committed whole-space table (``space_seed0.csv.gz``,
its test cells, as ``ntkscore correlate`` uses them) and over its first 20 cells. Results:
``benchmarks/results/first_call.{md,json}``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
SECOND = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_1x1~2|"
LATER = 20
"""Further cells timed in the same process (unique cells 200–219), their mean reported."""
VARIANTS = {"the defaults (XLA:CPU's own kernels)": {},
            "`cpu_library_fusions=True` (YNNPACK)": {"cpu_library_fusions": True}}
"""Settings of the scoring rows: the default settings, and the same with XLA:CPU's library fusions."""
PROBE = """
import json, sys, time
t0 = time.perf_counter()
import ntkscore
from jax import monitoring
compiles = []
monitoring.register_event_duration_secs_listener(
    lambda e, d, **k: compiles.append(d) if e == "/jax/core/compile/backend_compile_duration" else None)
t1 = time.perf_counter()
scorer = ntkscore.Scorer(ntkscore.ScoreSettings(**json.loads(sys.argv[3])))
t2 = time.perf_counter()
first = scorer(sys.argv[1])
t3 = time.perf_counter()
scorer(sys.argv[2])
t4 = time.perf_counter()
later = ntkscore.unique_archs()[200:200 + LATER]
for arch in later:
    scorer(arch)
t5 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "scorer_s": t2 - t1, "first_cell_s": t3 - t2, "second_cell_s": t4 - t3,
                  "later_cell_s": (t5 - t4) / len(later), "scoring_s": t3 - t1, "compiles": len(compiles),
                  "compile_s": sum(compiles), "value": first.metrics.get("value")}))
""".replace("LATER", str(LATER))


def score_run(cache: str, settings: dict) -> dict:
    env = {**os.environ, "NTKSCORE_CACHE": cache}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, CELL, SECOND, json.dumps(settings)], env=env,
                         capture_output=True, text=True, check=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "process_s": time.perf_counter() - start}


def correlate_runs() -> list[dict]:
    import pandas as pd

    from ntkscore.commands import _default_score_columns
    from ntkscore.scores import predictor
    from ntkscore.study import benchmarks, evaluate, learn
    from ntkscore.inputs.data import data_dir

    root = data_dir(None)
    table = pd.read_csv(RESULTS / "space_seed0.csv.gz")
    table, _ = learn.without_training_cells(table, predictor.shipped_predictors(), root)
    rows = []
    for name, part in (("20 cells", table.head(20)), (f"all {len(table)} test cells", table)):
        joined, baselines = evaluate.join_benchmarks(part, root / "nasrobbench201" / "cifar10.csv",
                                                     root / "nb201" / "cifar10_clean_acc.csv",
                                                     root / "zero_cost" / "nb201_cifar10_proxies.csv")
        metrics = list(benchmarks.ROBBENCH_METRICS) + ["test_acc"]
        columns = _default_score_columns(list(part.columns)) + baselines
        start = time.perf_counter()
        out = evaluate.correlate(joined, columns, metrics, n_boot=1000)
        rows.append({"cells": name, "pairs": len(out), "seconds": time.perf_counter() - start})
    return rows


def main() -> None:
    scoring = []
    for name, settings in VARIANTS.items():
        with tempfile.TemporaryDirectory() as cache:
            scoring += [{"compiled": name, "cache": "cold", **score_run(cache, settings)},
                        {"compiled": name, "cache": "warm", **score_run(cache, settings)}]
    runs = {"scoring": scoring, "correlate": correlate_runs(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                       f"Python {platform.python_version()}",
            "command": "python benchmarks/first_call.py"}
    (RESULTS / "first_call.json").write_text(json.dumps(runs, indent=1) + "\n")
    lines = ["# Time to a first number", "",
             f"Command: `{runs['command']}`. Machine: {runs['machine']}. A new process scores NB201 index 1's cell "
             "at the default settings (`ntkscore score`'s work: C8 N1 16×16, B = 20, PGD-7, the NTK family and the "
             f"zero-cost terms), then a second cell, then {LATER} more (their mean); the compilation cache empty (cold), "
             "then as the cold run left it (warm). `ntkscore score` prints the first cell's time. At the default "
             "settings (the scoring programs compiled with XLA:CPU's own kernels), and with "
             "`cpu_library_fusions=True` (`--cpu-library-fusions`: XLA:CPU's YNNPACK library fusions; the scores "
             "move at float32 rounding, and `value` and `robustness`, fitted at the defaults, are not computed).", "",
             "| compiled with | cache | import s | scorer built s | first cell s | scoring s (built + first cell) | "
             "second cell s | later cells s | XLA compilations | compile s | whole process s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs["scoring"]:
        lines.append(f"| {r['compiled']} | {r['cache']} | {r['import_s']:.1f} | {r['scorer_s']:.1f} | "
                     f"{r['first_cell_s']:.1f} | {r['scoring_s']:.1f} | {r['second_cell_s']:.2f} | "
                     f"{r['later_cell_s']:.2f} | {r['compiles']} | {r['compile_s']:.1f} | {r['process_s']:.1f} |")
    lines += ["", "`ntkscore correlate`'s work (τ, ρ, top-k, and the 95% bootstrap interval of τ over 1000 resamples "
              "for every default score column and baseline against every metric):", "",
              "| cells | (score, metric) pairs | seconds |", "|---|---|---|"]
    lines += [f"| {r['cells']} | {r['pairs']} | {r['seconds']:.1f} |" for r in runs["correlate"]]
    (RESULTS / "first_call.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
