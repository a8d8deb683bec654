"""Speed harness: compile time, per-cell wall time, peak memory and compile count of the scorer at the real shape.

    python benchmarks/speed.py                                   # the recorded grid (see --help), ~30 min on 2 cores
    python benchmarks/speed.py --engines layerwise --kernels clean --batch-sizes 32 --repeats 5
    python benchmarks/speed.py --engines layerwise --kernels all --batch-sizes 16 --family on off \
        --out benchmarks/results/speed_family.md                 # the NTK family's overhead

Network C16 N5, 32×32 CIFAR-10 images, 10 classes; default settings otherwise (PGD-7, ε = 8/255). For every
(engine, kernel set, batch size) a fresh subprocess builds a :class:`ntkscore.Scorer`, scores a light, a mixed and a
heavy cell once (warm-up, includes compilation), then ``--repeats`` more times each; it reports the median per-cell
wall time, the first call's time, the XLA backend-compile seconds and count for the whole run, and its peak RSS.
``kernels``: ``clean`` = K only (no attack); ``robust`` = PGD-7 + K, K̃_ε, K̄_ε; ``all`` = + the twice-perturbed
batch and K̃_2ε, K̄_2ε (everything K_all/K̃_all need). The "before" engine is ``jacobian`` (per-sample Jacobians of
the whole supernet, :mod:`ntkscore.kernels.ntk`), the "after" one ``layerwise`` (:mod:`ntkscore.kernels.layerwise`); the ratio
table compares them within this run. Results: ``benchmarks/results/speed.md`` (+ ``speed.json``).

``--arch-batches 1 8`` also measures the architecture-batched program (:mod:`ntkscore.kernels.pipeline`, layerwise engine
only): each step scores ``A`` copies of the cell through ``Scorer.score_many``, and the per-cell time is the step's
time divided by ``A``. On a GPU this is the accelerator path; the projected time for all 6466 unique cells is
``6466 × mean(light, mixed, heavy)`` (a rough figure: the real mix of cells is heavier than that mean on a CPU).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELLS = {
    "light": "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "mixed": "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|skip_connect~2|",
    "heavy": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def child(engine: str, kernels: str, batch_size: int, repeats: int, arch_batch: int = 1, family: bool = False) -> dict:
    """One configuration in this process; returns its measurements."""
    import jax

    from ntkscore.scores.scorer import Scorer, ScoreSettings

    compiles: list[float] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiles.append(duration) if event == COMPILE_EVENT else None)
    start = time.perf_counter()
    scorer = Scorer(ScoreSettings.real_shape(batch_size=batch_size, kernels=kernels, engine=engine, family=family),
                    arch_batch=arch_batch)
    setup = time.perf_counter() - start
    first, median = {}, {}
    for name, arch in CELLS.items():
        step = (lambda: scorer(arch)) if arch_batch == 1 else (lambda: scorer.score_many([arch] * arch_batch))  # noqa: B023
        t = time.perf_counter()
        step()
        first[name] = time.perf_counter() - t
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            step()
            times.append((time.perf_counter() - t) / arch_batch)
        median[name] = statistics.median(times) if times else float("nan")
    return {"engine": engine, "kernels": kernels, "batch_size": batch_size, "arch_batch": arch_batch,
            "family": family, "repeats": repeats,
            "setup_s": setup, "first_s": first, "median_s": median, "compile_s": sum(compiles),
            "compiles": len(compiles), "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "device": str(jax.devices()[0].device_kind), "platform": jax.default_backend()}


def machine() -> str:
    import jax

    cpu = "?"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.node() or 'host'}: {cpu}, {os.cpu_count()} logical cores, {mem:.0f} GiB RAM; "
            f"device {jax.devices()[0].device_kind} ({jax.default_backend()}); Python {platform.python_version()}, "
            f"jax {jax.__version__}, jaxlib {jax.lib.__version__ if hasattr(jax.lib, '__version__') else '?'}")


def markdown(rows: list[dict], command: str) -> str:
    out = ["# Scorer speed at the real shape (C16 N5, 32×32, 10 classes)", "", f"Machine: {machine()}", "",
           f"Command: `{command}`", "",
           "Per-cell wall time is the median of the repeats after a warm-up call; *first call* includes compilation "
           "(XLA backend compile time and count are for the whole configuration run); peak RSS is the "
           "configuration's own subprocess.", "",
           "*cells/step* > 1 is the architecture-batched program: per-cell time = step time ÷ cells/step. "
           "*6466 cells* projects 6466 × mean(light, mixed, heavy) per-cell time (rough).", "",
           "*family*: the NTK family (`ntkscore.kernels.family`) on or off; the zero-cost terms are on in every row.",
           "",
           "| device | engine | kernels | family | B | cells/step | light s | mixed s | heavy s | 6466 cells h "
           "| first call s | compile s | compiles | peak RSS GB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        family = "on" if r.get("family", False) else "off"
        head = (f"| {r.get('device', '?')} | {r['engine']} | {r['kernels']} | {family} | {r['batch_size']} "
                f"| {r.get('arch_batch', 1)}")
        if "error" in r:
            out.append(f"{head} | failed: {r['error']} ||||||||")
            continue
        m = r["median_s"]
        projected = 6466 * statistics.mean(m.values()) / 3600
        out.append(f"{head} | {m['light']:.2f} | {m['mixed']:.2f} | {m['heavy']:.2f} | {projected:.1f} | "
                   f"{max(r['first_s'].values()):.1f} | {r['compile_s']:.1f} | {r['compiles']} | "
                   f"{r['peak_rss_gb']:.1f} |")
    pairs = {}
    for r in rows:
        if "error" not in r and r.get("arch_batch", 1) == 1:
            pairs.setdefault((r["engine"], r["kernels"], r["batch_size"]), {})[r.get("family", False)] = r
    overhead = [(key, v[True], v[False]) for key, v in pairs.items() if len(v) == 2]
    if overhead:
        out += ["", "NTK family overhead in this run (time with the family ÷ time without, same machine):", "",
                "| engine | kernels | B | light | mixed | heavy | sum of the three |", "|---|---|---|---|---|---|---|"]
        for (e, k, b), on, off in overhead:
            cells = " | ".join(f"{on['median_s'][c] / off['median_s'][c]:.2f}×" for c in CELLS)
            total = sum(on["median_s"].values()) / sum(off["median_s"].values())
            out.append(f"| {e} | {k} | {b} | {cells} | {total:.2f}× |")
    ok = {(r["engine"], r["kernels"], r["batch_size"]): r for r in rows
          if "error" not in r and r.get("arch_batch", 1) == 1 and r.get("family", False) is False}
    ratios = [(k, b, ok[("jacobian", k, b)], ok[("layerwise", k, b)]) for (e, k, b) in ok
              if e == "jacobian" and ("layerwise", k, b) in ok]
    if ratios:
        out += ["", "Before/after in this run (jacobian time ÷ layerwise time, same machine):", "",
                "| kernels | B | light | mixed | heavy |", "|---|---|---|---|---|"]
        for k, b, before, after in ratios:
            cells = " | ".join(f"{before['median_s'][c] / after['median_s'][c]:.1f}×" for c in CELLS)
            out.append(f"| {k} | {b} | {cells} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", nargs="+", default=["layerwise", "jacobian"])
    p.add_argument("--kernels", nargs="+", default=["clean", "robust", "all"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 32, 64])
    p.add_argument("--jacobian-max-batch", type=int, default=16,
                   help="skip the jacobian engine above this batch size (its memory grows with B·k·P)")
    p.add_argument("--arch-batches", nargs="+", type=int, default=[1],
                   help="cells per device step (>1: the architecture-batched program, layerwise engine only)")
    p.add_argument("--family", nargs="+", choices=("on", "off"), default=["off"],
                   help="with and/or without the NTK family (ntkscore.kernels.family; off by default, as in "
                        "ScoreSettings); 'on off' measures its overhead")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed.md"))
    p.add_argument("--append", action="store_true", help="keep the rows already in --out's .json")
    p.add_argument("--child", nargs=5, metavar=("ENGINE", "KERNELS", "B", "A", "FAMILY"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]), args.repeats, int(args.child[3]),
                               args.child[4] == "on")))
        return 0
    out = Path(args.out)
    command = "python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = json.loads(out.with_suffix(".json").read_text()) if args.append else []
    if args.append:
        command = out.with_suffix(".cmd").read_text().strip() + "` then `" + command
    grid = [(e, k, b, a, f) for e in args.engines for k in args.kernels for b in args.batch_sizes
            for a in args.arch_batches for f in args.family
            if not (e == "jacobian" and (b > args.jacobian_max_batch or a > 1 or f == "on"))]
    for engine, kernels, b, a, f in grid:
        proc = subprocess.run([sys.executable, __file__, "--child", engine, kernels, str(b), str(a), f, "--repeats",
                               str(args.repeats)], capture_output=True, text=True, check=False)
        if proc.returncode:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
            rows.append({"engine": engine, "kernels": kernels, "batch_size": b, "arch_batch": a,
                         "family": f == "on", "error": f"exit {proc.returncode}: {tail}"})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown(rows, command))  # rewritten after each configuration: nothing is lost
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
        out.with_suffix(".cmd").write_text(command + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
