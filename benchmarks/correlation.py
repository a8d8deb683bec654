"""Recorded experiment: score a fixed seeded sample of unique NB201 cells at the real network shape on CIFAR-10,
then correlate with NAS-RobBench-201 (clean, FGSM-3, PGD-3, FGSM-8, PGD-8, AutoAttack) and NB201 clean accuracy.

    python benchmarks/correlation.py --sample 300 --batch-size 16   # resumable: rerun to continue

It is a thin driver over ``ntkscore rank`` and ``ntkscore correlate`` (same library code), writing
``runs/correlation/scores.csv`` and ``benchmarks/results/correlation*.{md,csv,png}``.
"""

import argparse
import sys
from pathlib import Path

from ntkscore.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sample", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--kernels", default="all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scores", default=str(ROOT / "runs" / "correlation" / "scores.csv"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--skip-rank", action="store_true", help="only correlate what is already scored")
    args = p.parse_args(argv)
    if not args.skip_rank:
        rc = main(["rank", "--sample", str(args.sample), "--sample-seed", "0", "--out", args.scores,
                   "--batch-size", str(args.batch_size), "--kernels", args.kernels, "--seed", str(args.seed)])
        if rc:
            return rc
    scores = ["K.lambda_min", "K_rob.lambda_min", "K_rob2.lambda_min"]
    for b in ("0", "0.5", "1"):
        scores += [f"K_all@{b}.lambda_min", f"K_rob_all@{b}.lambda_min"]
    for q in ("condition", "trace", "bound", "effective_rank"):
        scores += [f"K.{q}", f"K_rob.{q}", f"K_rob_all@0.5.{q}"]
    return main(["correlate", args.scores, "--out-dir", args.results, "--score", *scores,
                 "--plot", "K.lambda_min", "K_rob.lambda_min", "K_rob_all@1.lambda_min", "K.bound", "K_rob.bound",
                 "K.trace"])


if __name__ == "__main__":
    sys.exit(run())
