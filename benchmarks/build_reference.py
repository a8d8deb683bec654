"""Build a reference sample that turns the rank aggregates into per-cell scores (:mod:`ntkscore.reference`).

    python benchmarks/build_reference.py
        # the default settings' reference, from committed tables: the 300 cells of scores_300.csv.gz and the 188
        # of real_shape_holdout.scores.csv.gz (NTK quantities; C16 N5, 32×32, B = 16, seed 0) joined by cell with
        # proxies_real.csv.gz (the zero-cost terms on 64 images, `ntkscore rank --archs … --kernels none`)
        #   → ntkscore/references/nb201_cifar10_default.json
    ntkscore rank --sample 300 --inputs random --channels 8 --cells 1 --batch-size 8 --out runs/quickstart.csv
    ntkscore rank --archs <its 300 cells> --inputs random --channels 8 --cells 1 --batch-size 8 --kernels none \
        --out runs/quickstart_zc.csv     # the zero-cost terms of the same cells
    python benchmarks/build_reference.py --tables runs/quickstart.csv runs/quickstart_zc.csv \
        --name nb201_random_quickstart
        # the README's quick-start settings (random inputs, no data files needed)
    python benchmarks/build_reference.py --fingerprint nb201_random_quickstart
        # only (re)compute a stored reference's "batches" and "backend" (no table is read)

Each reference records the fingerprint of the batches its settings draw (``"batches"``,
:func:`ntkscore.reference.batch_fingerprint`, from a :class:`~ntkscore.score.Scorer` built with those settings
and the data directory, ``$NTKSCORE_DATA``) and the JAX backend (``"backend"``): a reference applies only to the
same images on the same backend.

The tables are joined on ``arch`` (the first table's cells); the settings stored are the ``setting.*`` columns of
the tables (the first table's where they disagree, e.g. ``kernels``, which a reference ignores). No accuracy is
read. The terms stored are those of :data:`ntkscore.composite.TERMS` the joined table can compute.
"""

import argparse
import ast
import dataclasses
import json
import os
import sys
from pathlib import Path

import pandas as pd

from ntkscore import composite, reference
from ntkscore.data import dataset_info
from ntkscore.score import Scorer, ScoreSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_TABLES = (RESULTS / "scores_300.csv.gz", RESULTS / "real_shape_holdout.scores.csv.gz")
DEFAULT_PROXIES = RESULTS / "proxies_real.csv.gz"


def settings_of(tables) -> dict:
    """The ``setting.*`` values of the tables' first rows (earlier tables win), with literal types restored and
    an unset ``input_size`` replaced by the dataset's."""
    settings: dict = {}
    for table in reversed(tables):
        row = table.iloc[0]
        settings.update({c.removeprefix("setting."): row[c] for c in table.columns if c.startswith("setting.")})
    out = {}
    for k, v in settings.items():
        if isinstance(v, str) and v in ("True", "False"):
            v = v == "True"
        elif hasattr(v, "item"):  # numpy scalar → Python
            v = v.item()
        out[k] = v
    if out.get("input_size") is None or out["input_size"] != out["input_size"]:  # NaN: unset
        out["input_size"] = dataset_info(out["dataset"]).input_size
    out["input_size"] = int(out["input_size"])
    return out


def with_fingerprint(settings: dict) -> dict:
    """``settings`` with the ``"batches"`` and ``"backend"`` of a Scorer built with them (no cell is scored)."""
    fields = {f.name for f in dataclasses.fields(ScoreSettings)}
    typed = {k: (tuple(ast.literal_eval(v)) if k == "betas" and isinstance(v, str) else v)
             for k, v in settings.items() if k in fields}
    scorer = Scorer(ScoreSettings(**typed), references=Path(os.devnull))
    return {**settings, "batches": scorer.reference_settings["batches"],
            "backend": scorer.reference_settings["backend"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="+", default=None, help="score tables (default: the committed real-shape ones)")
    p.add_argument("--name", default="nb201_cifar10_default")
    p.add_argument("--fingerprint", metavar="NAME", help="only refresh the batches/backend of references/NAME.json")
    args = p.parse_args(argv)
    if args.fingerprint:
        path = reference.REFERENCES / f"{args.fingerprint}.json"
        ref = json.loads(path.read_text())
        ref["settings"] = with_fingerprint(ref["settings"])
        path.write_text(json.dumps(ref, indent=0) + "\n")
        print(f"{path}: batches {ref['settings']['batches']}, backend {ref['settings']['backend']}")
        return 0
    if args.tables:
        paths = [Path(t) for t in args.tables]
        ntk = pd.read_csv(paths[0]).drop_duplicates("arch")
        others = [pd.read_csv(t) for t in paths[1:]]
    else:
        paths = [*DEFAULT_TABLES, DEFAULT_PROXIES]
        ntk = pd.concat([pd.read_csv(t) for t in DEFAULT_TABLES]).drop_duplicates("arch")
        others = [pd.read_csv(DEFAULT_PROXIES)]
    table = ntk
    for other in others:
        zc = [c for c in other.columns if c.startswith("zc.") and c not in table.columns]
        table = table.merge(other[["arch", *zc]], on="arch", how="inner")
    terms = []
    for name, fn in composite.TERMS.items():
        try:
            fn(table)
        except KeyError:
            continue
        terms.append(name)
    source = f"{len(table)} NB201 cells: {', '.join(p.name for p in paths)} (benchmarks/build_reference.py)"
    ref = reference.build(table, with_fingerprint(settings_of([ntk, *others])), terms, source)
    out = reference.REFERENCES / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(ref, indent=0) + "\n")
    print(f"{out}: {ref['cells']} cells, terms {', '.join(terms)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
