"""Seconds per cell of a ranking, for comparing two versions of ntkscore on the same machine and cells.

    python benchmarks/engine_speed.py --settings cheap --cells 120            # this checkout
    PYTHONPATH=/path/to/other/checkout python benchmarks/engine_speed.py --settings cheap --cells 120

Scores a seeded random sample of the unique NB201 cells (``--cells``) with one :class:`ntkscore.Scorer`, one cell
at a time as ``ntkscore rank`` does, and appends to ``benchmarks/results/engine_speed.json`` the version it ran
(``ntkscore.__version__`` and the checkout's git commit), the first call (compilation included) and the mean and
median seconds per cell after it. ``--settings``: ``cheap`` = the whole-space settings of the README (C8 N1
16×16, B = 20, every kernel and the zero-cost proxies); ``default`` = the real shape (C16 N5 32×32, B = 16, every
kernel and the zero-cost proxies; the defaults of the versions before 0.5.0), each spelled out so that every version
scores the same thing. The Markdown table (``engine_speed.md``) lists every recorded run and, for
runs on the same cells and settings, the speed-up of each version over the slowest.
"""

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "engine_speed.json"
SETTINGS = {"cheap": {"channels": 8, "cells_per_stage": 1, "input_size": 16, "batch_size": 20, "kernels": "all",
                     "family": False},
            "default": {"channels": 16, "cells_per_stage": 5, "input_size": None, "batch_size": 16, "kernels": "all",
                        "family": False}}


def run(settings: str, cells: int, seed: int) -> dict:
    import ntkscore

    archs = random.Random(seed).sample(ntkscore.unique_archs(), cells)
    start = time.perf_counter()
    scorer = ntkscore.Scorer(ntkscore.ScoreSettings(**SETTINGS[settings]))
    times = []
    for arch in archs:
        t = time.perf_counter()
        scorer(arch)
        times.append(time.perf_counter() - t)
    source = Path(ntkscore.__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(source), "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    return {"version": ntkscore.__version__, "commit": commit, "settings": settings, "cells": cells, "seed": seed,
            "setup_s": round(time.perf_counter() - start - sum(times), 2), "first_call_s": round(times[0], 2),
            "mean_s": round(statistics.mean(times[1:]), 4), "median_s": round(statistics.median(times[1:]), 4),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "when": time.strftime("%Y-%m-%d %H:%M")}


def markdown(rows: list[dict]) -> str:
    out = ["# Seconds per cell of a ranking, by version", "",
           "Command: `python benchmarks/engine_speed.py --settings S --cells N` (see its docstring; each row is one "
           "run, compilation excluded from the mean and median).", "",
           "| version | commit | settings | cells | first call s | mean s/cell | median s/cell | speed-up (mean) | when |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        same = [o["mean_s"] for o in rows if (o["settings"], o["cells"], o["seed"]) == (r["settings"], r["cells"], r["seed"])]
        out.append(f"| {r['version']} | {r['commit']} | {r['settings']} | {r['cells']} | {r['first_call_s']} | "
                   f"{r['mean_s']} | {r['median_s']} | {max(same) / r['mean_s']:.2f}× | {r['when']} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", choices=sorted(SETTINGS), default="cheap")
    parser.add_argument("--cells", type=int, default=120, help="cells to score (the first includes compilation)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cell sample")
    args = parser.parse_args(argv)
    row = run(args.settings, args.cells, args.seed)
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    rows.append(row)
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
    RESULTS.with_suffix(".md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
