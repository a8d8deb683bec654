"""Wall time of ranking the same cells in one process and on a local Ray cluster of 1 and 2 workers.

    python benchmarks/ray_speed.py                 # 96 cells at the cheap settings; writes benchmarks/results/ray_speed.{md,json}

Each configuration ranks the same seeded sample of cells into a fresh file, end to end: the cluster's start, every
worker's compilation and the scoring. Reported: the cluster's start-up (``ray.init`` until a trivial task returns),
the wall time, the time to the first row, and the seconds per cell after it. On a machine with C cores, XLA already
uses all of them inside one process, so more workers than machines (or GPUs) share the same cores; the numbers say
how much a second worker still buys.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import jax

from ntkscore import Scorer, ScoreSettings, __version__
from ntkscore.study.cluster import rank_on_ray
from ntkscore.study.rank import rank, select_archs

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ScoreSettings(channels=8, cells_per_stage=1, input_size=16, batch_size=20, kernels="robust", proxies=False,
                         family=False)


def timed(results) -> dict:
    start = time.perf_counter()
    first, count = None, 0
    for r in results:
        if r is not None:
            count += 1
            first = first or time.perf_counter() - start
    wall = time.perf_counter() - start
    return {"cells": count, "wall_s": wall, "first_row_s": first,
            "per_cell_after_first_s": (wall - first) / max(count - 1, 1)}


def ray_startup() -> float:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.get(ray.remote(lambda: 1).remote())
    seconds = time.perf_counter() - start
    ray.shutdown()
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=96)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ray_speed.md"))
    args = p.parse_args(argv)
    os.environ.setdefault("NTKSCORE_CACHE", "off")  # every configuration compiles, as a fresh machine would
    archs = select_archs(sample=args.cells, seed=5)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append({"run": "one process", **timed(rank(archs, Scorer(SETTINGS, cache=False), Path(tmp) / "a.csv"))})
        jax.clear_caches()
        for workers in (1, 2):
            results = rank_on_ray(archs, SETTINGS, Path(tmp) / f"ray{workers}.csv", workers=workers, chunk_size=4)
            rows.append({"run": f"Ray, {workers} worker{'s' * (workers > 1)}", **timed(results)})
    startup = ray_startup()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else \
        platform.machine()
    machine = f"{model}, {os.cpu_count()} logical cores; jax {jax.__version__}, CPU"
    command = "python benchmarks/ray_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = ["# Ranking on a local Ray cluster: 1 and 2 workers against one process", "",
             f"Command: `{command.strip()}` (ntkscore {__version__})", "", f"Machine: {machine}", "",
             f"{args.cells} cells (seeded sample), C{SETTINGS.channels} N{SETTINGS.cells_per_stage}, "
             f"{SETTINGS.input_size}×{SETTINGS.input_size}, B = {SETTINGS.batch_size}, kernels {SETTINGS.kernels}, "
             f"no zero-cost terms; no compilation cache, so every process compiles. Ray's start-up (a local cluster "
             f"until a trivial task returns): {startup:.1f} s.", "",
             "| run | cells | wall s | first row s | s per cell after the first | speed-up over one process |",
             "|---|---|---|---|---|---|"]
    base = rows[0]["wall_s"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['cells']} | {r['wall_s']:.1f} | {r['first_row_s']:.1f} | "
                     f"{r['per_cell_after_first_s']:.2f} | {base / r['wall_s']:.2f}× |")
    out = Path(args.out)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "ray_startup_s": startup, "machine": machine,
                                                    "command": command.strip()}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
