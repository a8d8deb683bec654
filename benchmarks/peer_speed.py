"""ntkscore's empirical NTK against the PyTorch peers on the same work, in one interleaved run.

    TORCH_PY=/path/to/torch-venv/bin/python python benchmarks/peer_speed.py --repeats 5

The same NB201 network (C16 N5, 32×32 CIFAR-10 images, 10 classes): ntkscore's supernet weights are loaded into
xautodl's ``TinyNetwork`` on the PyTorch side (``benchmarks/peer_torch.py``, run with ``$TORCH_PY``, an environment
with ``torch``, ``numpy`` and ``xautodl`` installed ``--no-deps``; PyTorch is never an ntkscore dependency), and
both sides get the same batch. For a light, a mixed and an all-``nor_conv_3x3`` cell, ``B`` = 16 and 32, and the
traced (10-logit) NTK and the NTK of the summed logits, it times:

* ntkscore: ``Scorer(ScoreSettings.real_shape(batch_size=B, kernels="clean", output=…, proxies=False))(cell)`` — batch to
  score, eigenvalues included (the layerwise engine, one compiled program for every cell);
* ``torch.func``: ``vmap(jacrev)`` per-sample Jacobians, then the Gram and ``eigvalsh``;
* TE-NAS's loop of per-sample backward passes (summed logits only; BN statistics differentiated, weights only, so
  a different kernel: time only).

Each repeat runs every job once in a fresh random order, PyTorch and JAX taking turns, so machine load falls on all
alike; the table gives medians over the repeats, after one untimed warm-up call of each job (ntkscore's compilation
is reported separately). ``agreement`` is ``‖K_torch − K_ntkscore‖_F / ‖K_torch‖_F`` of the two kernels (both float32; ``benchmarks/ntk_float64.py``
compares each with a float64 reference). Results: ``benchmarks/results/peer_speed.md``, ``.json`` and the kernels,
``peer_speed_kernels.npz``.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CELLS = {
    "light": "|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
    "mixed": "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    "all conv3×3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}
WORK = {"trace": "traced NTK (10 logits)", "sum": "NTK of the summed logits"}


class TorchWorker:
    """The PyTorch process (``peer_torch.py``), one JSON request per line."""

    def __init__(self, python: str, setup: dict):
        self.proc = subprocess.Popen([python, str(ROOT / "benchmarks" / "peer_torch.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.info = self.ask(setup)

    def ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the PyTorch worker stopped on {request} (see its error above)")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def prepare(work: Path, batch_sizes, data_dir) -> tuple[dict, dict]:
    """ntkscore's scorers (per output and B), and the files that give PyTorch the same weights and batches."""
    import jax

    import ntkscore

    scorers, batches, params = {}, {}, None
    for b in batch_sizes:
        for output in WORK:
            s = ntkscore.Scorer(ntkscore.ScoreSettings.real_shape(batch_size=b, kernels="clean", output=output, proxies=False),
                                data_dir=data_dir)
            scorers[output, b] = s
        batches[b] = str(work / f"batch_B{b}.npz")
        np.savez(batches[b], x=np.asarray(s.x, np.float32))
        flat = {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(s.params)[0]}
        if params is None:
            params = flat
        elif any(not np.array_equal(params[k], flat[k]) for k in params):
            raise SystemExit("the supernet weights differ between batch sizes; expected one seed for all")
    np.savez(work / "params.npz", **params)
    config = s.config
    setup = {"params": str(work / "params.npz"), "batches": batches, "archs": CELLS, "channels": config.channels,
             "cells": config.cells_per_stage, "classes": config.num_classes}
    return scorers, setup


def ntkscore_kernel(scorer, arch: str) -> np.ndarray:
    """The cell's clean kernel K from the scorer's own device program (groups summed), float64."""
    import jax.numpy as jnp

    from ntkscore.cell.space import as_arch
    from ntkscore.kernels import pipeline

    ops = jnp.asarray(as_arch(arch).ops, jnp.int32)
    out, _ = pipeline.cell_kernels(scorer.params, ops, scorer.x, scorer.y, scorer._attack_key, scorer.settings,
                                   scorer.config)
    return np.asarray(out[0], np.float64).sum(0)


def timed_score(scorer, arch: str) -> float:
    start = time.perf_counter()
    scorer(arch)
    return time.perf_counter() - start


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="peer_speed_"))
    scorers, setup = prepare(work, args.batch_sizes, args.data)
    torch = TorchWorker(args.torch_python, {**setup, "threads": args.torch_threads})
    jobs = [(impl, cell, b, output) for cell in CELLS for b in args.batch_sizes for output in WORK
            for impl in ("ntkscore", "torch.func", "TE-NAS") if impl != "TE-NAS" or output == "sum"]

    def call(job, save=None):
        impl, cell, b, output = job
        if impl == "ntkscore":
            return timed_score(scorers[output, b], CELLS[cell])
        request = {"impl": "tenas" if impl == "TE-NAS" else "func", "cell": cell, "B": b, "output": output}
        return torch.ask({**request, "save": save})["seconds"]

    first, agreement, kernels = {}, {}, {}
    for job in jobs:  # warm-up (ntkscore: compilation on the first call of each scorer) and the kernels' agreement
        impl, cell, b, output = job
        save = str(work / f"K_{cell}_{b}_{output}.npy") if impl == "torch.func" else None
        first[job] = call(job, save)
        if save:
            k_torch, k_ours = np.load(save), ntkscore_kernel(scorers[output, b], CELLS[cell])
            agreement[cell, b, output] = float(np.linalg.norm(k_torch - k_ours) / np.linalg.norm(k_torch))
            kernels[f"torch.func|{cell}|{b}|{output}"], kernels[f"ntkscore|{cell}|{b}|{output}"] = k_torch, k_ours
    times = {job: [] for job in jobs}
    rng = random.Random(0)
    for _ in range(args.repeats):
        order = list(jobs)
        rng.shuffle(order)
        for job in order:
            times[job].append(call(job))
    torch.close()
    rows = []
    for cell in CELLS:
        for output in WORK:
            for b in args.batch_sizes:
                med = {impl: statistics.median(times[impl, cell, b, output]) for impl in ("ntkscore", "torch.func", "TE-NAS")
                       if (impl, cell, b, output) in times}
                rows.append({"work": output, "cell": cell, "B": b, **{f"{k} s": v for k, v in med.items()},
                             "ratio": med["ntkscore"] / med["torch.func"], "agreement": agreement[cell, b, output],
                             "ntkscore first call s": first["ntkscore", cell, b, output]})
    np.savez_compressed(Path(args.out).with_name("peer_speed_kernels.npz"), **kernels)
    return {"machine": machine(), "torch": torch.info, "repeats": args.repeats, "rows": rows,
            "command": " ".join(["python", "benchmarks/peer_speed.py"] + sys.argv[1:])}


def markdown(result: dict) -> str:
    out = ["# ntkscore against the PyTorch peers: the empirical NTK of NB201 cells (C16 N5, 32×32, 10 classes)", "",
           f"Machine: {result['machine']}; PyTorch {result['torch']['torch']} with {result['torch']['threads']} "
           f"threads; #params per cell (PyTorch): {result['torch']['num_params']}.", "",
           f"Command: `TORCH_PY=… {result['command']}`", "",
           f"Median seconds per cell over {result['repeats']} interleaved repeats, after a warm-up call. *ratio* = "
           "ntkscore ÷ `torch.func` (below 1: ntkscore is faster); *agreement* = ‖K_torch.func − K_ntkscore‖_F / "
           "‖K_torch.func‖_F; *first call* is ntkscore's first score with that program (compilation included).", "",
           "| work | cell | B | torch.func s | TE-NAS loop s | ntkscore s | ratio | agreement | first call s |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        tenas = f"{r['TE-NAS s']:.2f}" if "TE-NAS s" in r else "–"
        out.append(f"| {WORK[r['work']]} | {r['cell']} | {r['B']} | {r['torch.func s']:.2f} | {tenas} | "
                   f"{r['ntkscore s']:.2f} | {r['ratio']:.2f}× | {r['agreement']:.1e} | {r['ntkscore first call s']:.0f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-python", default=os.environ.get("TORCH_PY"),
                        help="Python of the PyTorch environment (default $TORCH_PY)")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default=None, help="data directory (default $NTKSCORE_DATA, else ../shared/data)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "peer_speed.md"))
    args = parser.parse_args(argv)
    if not args.torch_python:
        parser.error("give --torch-python or set TORCH_PY to a Python with torch, numpy and xautodl installed")
    result = run(args)
    Path(args.out).write_text(markdown(result))
    Path(args.out).with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
