"""XLA:CPU's YNNPACK library fusions and a new process's first score: which fusion types leave the scores
bit-identical, and what each costs in compile and load time.

    python benchmarks/cpu_fusions.py        # ~7 min on a 2-core CPU

XLA:CPU hands some operations to the YNNPACK library (the flag ``--xla_cpu_experimental_ynn_fusion_type``: dot,
eltwise, reduce, individual_convolution, individual_dot). Loading those fusions from the compilation cache is much
of a warm first call. Each row is a new process per cache state (empty, then as the first run left it) that scores
two cells at the default settings but ``cpu_library_fusions=True`` (so that the scoring programs compile with XLA's
flags), with ``XLA_FLAGS`` removing fusion types from XLA's default list; the scores are compared with the first
row's, metric by metric (``value`` and ``robustness``: the shipped predictors applied to the features directly). Results:
``benchmarks/results/cpu_fusions.{md,json}``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile

from first_call import CELL, RESULTS, SECOND

PROBE = """
import json, sys, time
import ntkscore
from ntkscore.scores import predictor
start = time.perf_counter()
scorer = ntkscore.Scorer(ntkscore.ScoreSettings(cpu_library_fusions=True))
first = scorer(sys.argv[1])
scored = time.perf_counter()
second = scorer(sys.argv[2])
metrics = [dict(first.metrics), dict(second.metrics)]
for row in metrics:
    for name in predictor.SHIPPED:
        row.setdefault(name, predictor.shipped(name).predict(row))
print(json.dumps({"scoring_s": scored - start, "second_cell_s": time.perf_counter() - scored,
                  "metrics": metrics}))
"""
VARIANTS = {"XLA's default": None, "-eltwise": "-eltwise", "-dot": "-dot", "-reduce": "-reduce",
            "-individual_convolution": "-individual_convolution", "none": ""}
"""Row name → the flag's value (``None``: the flag not given)."""


def run(flag: str | None, cache: str) -> dict:
    env = {**os.environ, "NTKSCORE_CACHE": cache}
    env.pop("XLA_FLAGS", None)
    if flag is not None:
        env["XLA_FLAGS"] = f"--xla_cpu_experimental_ynn_fusion_type={flag}"
    out = subprocess.run([sys.executable, "-c", PROBE, CELL, SECOND], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(metrics: list[dict], default: list[dict]) -> dict:
    """How many metrics differ from the default's, and the largest relative difference (both cells)."""
    diffs = [abs(m[k] - d[k]) / max(abs(d[k]), 1e-12) for m, d in zip(metrics, default) for k in d]
    return {"differing": sum(x > 0 for x in diffs), "of": len(diffs), "max_rel": max(diffs),
            "robustness": [m["robustness"] for m in metrics]}


def main() -> None:
    rows = {}
    for name, flag in VARIANTS.items():
        with tempfile.TemporaryDirectory() as cache:
            rows[name] = {"cold": run(flag, cache), "warm": run(flag, cache)}
    default = rows["XLA's default"]["warm"]["metrics"]
    for row in rows.values():
        row["versus_default"] = compare(row["warm"]["metrics"], default)
        for state in ("cold", "warm"):
            del row[state]["metrics"]
    runs = {"rows": rows, "command": "python benchmarks/cpu_fusions.py",
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                       f"Python {platform.python_version()}"}
    (RESULTS / "cpu_fusions.json").write_text(json.dumps(runs, indent=1) + "\n")
    lines = ["# XLA:CPU library fusions and the first score", "",
             f"Command: `{runs['command']}`. Machine: {runs['machine']}. A new process scores NB201 index 1's cell "
             "at the default settings with `cpu_library_fusions=True`, then a second cell, with the YNNPACK fusion "
             "types of each row removed "
             "(`XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=…`); the compilation cache empty (cold), then as "
             "the cold run left it (warm). Scoring = the scorer built and the first cell scored. The scores are "
             "compared with the first row's on both cells, every metric (`value` and `robustness`: the shipped "
             "predictors applied to the features).", "",
             "| fusion types | cold scoring s | warm scoring s | second cell s | metrics that differ | "
             "max relative difference | `robustness` of the two cells |", "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        v = row["versus_default"]
        lines.append(f"| {name} | {row['cold']['scoring_s']:.1f} | {row['warm']['scoring_s']:.1f} | "
                     f"{row['warm']['second_cell_s']:.2f} | {v['differing']} of {v['of']} | {v['max_rel']:.1e} | "
                     f"{', '.join(f'{r:.4f}' for r in v['robustness'])} |")
    lines += ["", "ntkscore's default settings compile the scoring programs as the last row (`cpu_library_fusions="
              "False`, through compiler options, not `XLA_FLAGS`: host-side operations such as the images' "
              "downsampling keep XLA's defaults); the shipped predictors were fitted on tables computed that way. "
              "The second cell is a one-time cost: each branch of the cell's switches prepares its library kernels "
              "when it first runs (`benchmarks/first_call.py` gives the mean of later cells)."]
    (RESULTS / "cpu_fusions.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
