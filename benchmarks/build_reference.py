"""Build the reference sample that turns the default rank aggregate into a per-cell score (:mod:`ntkscore.reference`).

    python benchmarks/build_reference.py          # from the committed real-shape tables; writes
                                                  # ntkscore/references/nb201_cifar10_default.json

The reference cells are every cell scored at the default settings (C16 N5, 32×32, B = 16, seed 0; the zero-cost
terms on 64 images): the 300 cells of ``scores_300.csv.gz`` and the 188 of ``real_shape_holdout.scores.csv.gz``
(NTK quantities), joined by cell with ``proxies_real.csv.gz`` (the zero-cost terms, ``ntkscore rank --archs …
--kernels none``). No accuracy is read. The terms stored are those of :data:`ntkscore.composite.TERMS` that the
tables can compute.
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ntkscore import composite, reference
from ntkscore.score import ScoreSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NTK_TABLES = (RESULTS / "scores_300.csv.gz", RESULTS / "real_shape_holdout.scores.csv.gz")
PROXY_TABLE = RESULTS / "proxies_real.csv.gz"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(reference.REFERENCES / "nb201_cifar10_default.json"))
    args = p.parse_args(argv)
    ntk = pd.concat([pd.read_csv(t) for t in NTK_TABLES]).drop_duplicates("arch")
    zc = pd.read_csv(PROXY_TABLE)
    table = ntk.merge(zc[["arch"] + [c for c in zc.columns if c.startswith("zc.")]], on="arch", how="inner")
    terms = []
    for name, fn in composite.TERMS.items():
        try:
            fn(table)
        except KeyError:
            continue
        terms.append(name)
    source = (f"{len(table)} NB201 cells at the default settings: {', '.join(t.name for t in NTK_TABLES)} joined "
              f"with {PROXY_TABLE.name} (benchmarks/build_reference.py)")
    settings = ScoreSettings()
    ref = reference.build(table, {**asdict(settings), "input_size": settings.network_config().input_size}, terms,
                          source)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(ref, indent=0) + "\n")
    print(f"{args.out}: {ref['cells']} cells, terms {', '.join(terms)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
