"""``ntkscore`` command line: a thin shell over the library (parsing, printing, exit codes)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__

DEFAULT_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _parse_arch(text: str, data=None):
    """An NB201 string, 6 comma-separated op indices, or an NB201 index 0–15624 (looked up in the benchmark's
    ``nb201/meta.json`` under the data directory)."""
    from .cell.space import as_arch

    text = text.strip()
    if text.isdigit():
        from .inputs.data import data_dir
        from .study.benchmarks import load_meta

        path = data_dir(data) / "nb201" / "meta.json"
        if not path.is_file():
            raise FileNotFoundError(f"an NB201 index needs the benchmark's index map {path}; give the cell as a string")
        meta = load_meta(path).set_index("arch_index")["arch_str"]
        if int(text) not in meta.index:
            raise ValueError(f"NB201 index {text} is out of range; expected 0..{meta.index.max()}")
        return as_arch(meta[int(text)])
    if text and all(part.strip().isdigit() for part in text.split(",")) and "," in text:
        return as_arch(tuple(int(p) for p in text.split(",")))
    return as_arch(text)


def _add_score_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scoring settings")
    g.add_argument("--dataset", default="cifar10",
                   help="cifar10 (default), cifar100 or ImageNet16-120; the images are DATA/images/<dataset>_train.npz "
                        "(cifar10: cifar10_train_5000.npz), see 'ntkscore data --help'")
    g.add_argument("--batch-size", type=int, default=16, help="images in the NTK batch (default 16)")
    g.add_argument("--seed", type=int, default=0, help="PRNG seed: initialisation, batch and attack noise")
    g.add_argument("--kernels", choices=["clean", "robust", "all", "none"], default="all",
                   help="clean: K only; robust: + K̃_ε, K̄_ε; all (default): + K̃_2ε, K̄_2ε; none: the proxies only")
    g.add_argument("--no-proxies", dest="proxies", action="store_false",
                   help="skip the zero-cost proxy terms (NASWOT, jacov, synflow, MeCo; see ntkscore.proxies)")
    g.add_argument("--proxy-batch-size", type=int, default=64, help="images in the proxies' batch (default 64)")
    g.add_argument("--family", action="store_true",
                   help="also compute the NTK family (TE-NAS, NASI, KNAS, LGA, Fisher/VKDNW, per-layer spectra; see "
                        "ntkscore.kernels.family; about 1.23x the time at the real shape)")
    g.add_argument("--fisher-batch-size", type=int, default=4,
                   help="images of the batch whose Fisher spectrum is computed (default 4)")
    g.add_argument("--beta", type=float, nargs="+", default=[0.0, 0.5, 1.0], help="β values of the mixed kernels")
    g.add_argument("--attack", choices=["pgd", "fgsm"], default="pgd")
    g.add_argument("--eps", type=float, default=8.0, help="ℓ∞ radius in /255 units (default 8)")
    g.add_argument("--step-size", type=float, default=2.0, help="PGD step in /255 units (default 2)")
    g.add_argument("--steps", type=int, default=7, help="PGD steps (default 7)")
    g.add_argument("--output", choices=["trace", "sum", "full"], default="trace", help="NTK output mode")
    g.add_argument("--bn-mode", choices=["batch", "identity"], default="batch")
    g.add_argument("--engine", choices=["layerwise", "jacobian"], default="layerwise",
                   help="NTK engine: layerwise (default, fastest) or per-sample Jacobians (the reference)")
    g.add_argument("--channels", type=int, default=16, help="C of the network (default 16)")
    g.add_argument("--cells-per-stage", "--cells", dest="cells_per_stage", type=int, default=5,
                   help="N cells per stage (default 5)")
    g.add_argument("--input-size", type=int, default=None,
                   help="image side (default: the dataset's, 32 for CIFAR); smaller sizes area-downsample the images")
    g.add_argument("--inputs", choices=["data", "random"], default="data",
                   help="data: CIFAR images from --data; random: uniform noise (no files needed)")
    g.add_argument("--data", default=None, help="data directory (default $NTKSCORE_DATA or ../shared/data)")
    g.add_argument("--arch-batch", default="auto", type=_arch_batch,
                   help="cells per device step: 'auto' (default: 1 on a CPU, 16 on a GPU/TPU) or a positive int; "
                        ">1 runs the architecture-batched program (every op evaluated, vmap over cells)")


def _arch_batch(text: str) -> int | None:
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive int, got {text!r}")
    return int(text)


def _settings(args):
    from .scores.settings import ScoreSettings

    if not 0.0 <= args.eps <= 255.0:
        raise ValueError(f"--eps is in /255 pixel units and must be in 0..255 (8 is the benchmark's), got {args.eps:g}")
    if args.step_size <= 0.0 and args.steps > 0:
        raise ValueError(f"--step-size is in /255 pixel units and must be positive, got {args.step_size:g}")
    if args.input_size is not None and (args.input_size < 4 or args.input_size % 4):
        raise ValueError(f"--input-size must be a multiple of 4 and at least 4 (two stride-2 blocks), "
                         f"got {args.input_size}")
    return ScoreSettings(dataset=args.dataset, batch_size=args.batch_size, seed=args.seed, kernels=args.kernels,
                         betas=tuple(args.beta), attack=args.attack, eps=args.eps / 255, step_size=args.step_size / 255,
                         steps=args.steps, output=args.output, bn_mode=args.bn_mode, inputs=args.inputs, engine=args.engine,
                         channels=args.channels, cells_per_stage=args.cells_per_stage, input_size=args.input_size,
                         proxies=args.proxies, proxy_batch_size=args.proxy_batch_size, family=args.family,
                         fisher_batch_size=args.fisher_batch_size)


def _score_table(result) -> str:
    """The summary (the two scores and what they mean), the zero-cost terms, the NTK family and the kernel table."""
    from .kernels.family import KERNELS as FAMILY_KERNELS
    from .kernels.family import LAYER_AGGREGATES, PROXIES
    from .kernels.theory import SCORE_NAMES

    kernels: dict[str, dict[str, float]] = {}
    for name, value in result.metrics.items():
        kernel, _, quantity = name.rpartition(".")
        if kernel and not name.startswith(("zc.", "features.")) and "/" not in kernel and "." not in kernel:
            kernels.setdefault(kernel, {})[quantity] = value  # per-group and per-layer quantities: --json
    cols = [q for q in SCORE_NAMES if any(q in v for v in kernels.values())]
    lines = [result.summary()]
    zero_cost = "  ".join(f"{n.removeprefix('zc.')} {v:.5g}" for n, v in result.metrics.items() if n.startswith("zc."))
    if zero_cost:
        lines.append(f"{'proxies':<12}{zero_cost}")
    for kernel in FAMILY_KERNELS:
        shown = [f"{q} {result.metrics[f'{kernel}.{q}']:.5g}" for q in PROXIES + LAYER_AGGREGATES
                 if f"{kernel}.{q}" in result.metrics]
        if shown:
            lines.append(f"{'family':<12}{kernel}: " + "  ".join(shown))
    if kernels:
        lines.append("")
        lines.append(f"{'kernel':<16}" + "".join(f"{c:>16}" for c in cols))
        for kernel, values in kernels.items():
            lines.append(f"{kernel:<16}" + "".join(f"{values.get(c, float('nan')):>16.6g}" for c in cols))
    return "\n".join(lines)


def cmd_score(args) -> int:
    from .scores.scorer import Scorer

    archs = [_parse_arch(a, args.data) for a in args.arch]
    scorer = Scorer(_settings(args), data_dir=args.data, arch_batch=args.arch_batch)
    # one cell at a time streams each table as it is ready; batched steps come back together
    results = (scorer(a) for a in archs) if scorer.arch_batch == 1 else scorer.score_many(archs)
    for result in results:
        print(json.dumps(result.to_dict()) if args.json else _score_table(result) + "\n", flush=True)
    return 0


def cmd_space(args) -> int:
    from .cell import cost
    from .cell.space import all_archs, unique_archs

    if args.action == "list":
        archs = unique_archs() if args.unique else list(all_archs())
        for arch in archs[: args.limit]:
            print(arch)
        return 0
    if not args.arch:
        raise ValueError("give one or more architectures (NB201 strings or 6 comma-separated op indices)")
    for text in args.arch:
        arch = _parse_arch(text, args.data)
        info = {"arch": arch.to_string(), "ops": list(arch.ops), "canonical": arch.canonical().to_string(),
                "canonical_key": arch.canonical_string(), "dead": arch.is_dead,
                "params": cost.num_params(arch), "flops": cost.flops(arch)}
        if args.action == "canonical":
            print(info["canonical"])
        else:
            print(json.dumps(info) if args.json else "\n".join(f"{k:<14}{v}" for k, v in info.items()) + "\n")
    return 0


def cmd_rank(args) -> int:
    from tqdm import tqdm

    from .scores.scorer import Scorer
    from .study.rank import rank, read_arch_file, select_archs

    archs = read_arch_file(args.archs) if args.archs else None
    archs = select_archs(None if args.all else args.sample, args.sample_seed, archs)
    settings = _settings(args)
    if args.ray is not None:
        from .study.cluster import rank_on_ray

        results = rank_on_ray(archs, settings, args.out, address=None if args.ray == "local" else args.ray,
                              workers=args.workers, chunk_size=args.chunk_size, gpus_per_worker=args.gpus_per_worker,
                              data_dir=args.data, resume=args.resume)
    else:
        scorer = Scorer(settings, data_dir=args.data, arch_batch=args.arch_batch)
        results = rank(archs, scorer, args.out, resume=args.resume)
    bar = tqdm(total=len(archs), unit="cell", desc="ranking", file=sys.stderr, dynamic_ncols=True)
    new = 0
    try:
        for result in results:
            bar.update(1)
            new += result is not None
    finally:
        bar.close()
    print(f"{new} new cells scored; {len(archs)} in {args.out}")
    _print_top(args.out, set(a.to_string() for a in archs))
    return 0


def _print_top(path, archs, k: int = 5) -> None:
    """The ``k`` best cells of the run by each shipped score (the columns ``value`` and ``robustness``)."""
    import pandas as pd

    table = pd.read_csv(path)
    table = table[table["arch"].isin(archs)]
    for name in ("value", "robustness"):
        if name not in table or table[name].isna().all():
            continue
        print(f"best {min(k, len(table))} of {len(table)} by {name}:")
        print(table.nlargest(k, name)[["arch", name, "params"]].to_string(index=False))
    if {"value", "robustness"} <= set(table.columns):
        from .study.rank import pareto_front

        front = table[pareto_front(table[["value", "robustness"]])].sort_values("value", ascending=False)
        print(f"{len(front)} cells on the Pareto front of value and robustness:")
        print(front[["arch", "value", "robustness", "params"]].to_string(index=False))


def cmd_search(args) -> int:
    from tqdm import tqdm

    from .study import search as search_lib

    budget = search_lib.parse_quantity(args.budget, {"s": 1, "m": 60, "h": 3600}, "--budget")
    sizes = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
    constraints = search_lib.Constraints(
        None if args.max_params is None else search_lib.parse_quantity(args.max_params, sizes, "--max-params"),
        None if args.max_flops is None else search_lib.parse_quantity(args.max_flops, sizes, "--max-flops"))
    bar = tqdm(unit="cell", desc=f"{args.strategy} search", file=sys.stderr, dynamic_ncols=True)
    with bar:
        result = search_lib.search(args.objective, budget, strategy=args.strategy, constraints=constraints,
                                   settings=_settings(args), out=args.out, seed=args.search_seed, data_dir=args.data,
                                   progress=bar.update)
    top = result.top(args.top)
    if args.benchmark:
        from .inputs.data import data_dir

        root = data_dir(args.data)
        top = search_lib.with_benchmark(top, root / "nasrobbench201" / "cifar10.csv",
                                        root / "nb201" / "cifar10_clean_acc.csv")
    shown = top.drop(columns=["stage", "order"]).dropna(axis=1, how="all")  # robustness when it was computed
    if args.csv:
        shown.to_csv(args.csv, index=False)
    if args.plot:
        search_lib.plot_search(result, args.plot, args.top)
    if args.json:
        print(json.dumps({"strategy": result.strategy, "objective": result.objective, "seconds": result.seconds,
                          "scored": int((result.table.stage == result.final_stage).sum()),
                          "top": shown.to_dict("records")}))
        return 0
    final = result.ranked()
    print(f"{result.strategy} search by {args.objective}: {len(final)} cells scored in {result.seconds:.0f} s "
          f"(scores in {args.out}); the best {len(shown)}:")
    print(shown.assign(params=shown["params"] / 1e6, flops=shown["flops"] / 1e6)
          .rename(columns={"params": "params (M)", "flops": "FLOPs (M)"}).to_string(index=False))
    if args.objective == "both":
        print(f"{len(result.front())} cells on the Pareto front of value and robustness")
    return 0


def cmd_data(args) -> int:
    from .inputs.data import DATASETS, data_dir, npz_from_pickles

    if args.action == "convert":
        if not args.dataset or not args.files or not args.out:
            raise ValueError("usage: ntkscore data convert DATASET FILE... --out OUT.npz")
        images, classes = npz_from_pickles(args.files, args.out, args.dataset)
        print(f"wrote {images} images of {classes} classes to {args.out}")
        return 0
    root = data_dir(args.data)
    for name, info in DATASETS.items():
        path = root / info.file
        print(f"{name:<16}{path}  {'present' if path.is_file() else 'missing'}")
    return 0


CORRELATE_TARGET = "val_pgd_8.0_acc"
"""The metric ``correlate`` prints and plots by default: NAS-RobBench-201 PGD-8 accuracy."""


def _default_score_columns(columns) -> list[str]:
    """The shipped scores and their controls, the zero-cost terms, #params, and the main quantities of each kernel."""
    main = ("lambda_min", "bound", "trace", "condition", "effective_rank")
    shipped = [c for c in columns if c.split(" ")[0].split(":")[0] in ("value", "robustness")]
    kernel = [c for c in columns if "." in c and not c.startswith(("setting.", "zc.")) and "/" not in c
              and c.rsplit(".", 1)[1] in main]
    return shipped + [c for c in columns if c.startswith("zc.")] + kernel


def cmd_correlate(args) -> int:
    import pandas as pd
    from tqdm import tqdm

    from .inputs.data import data_dir
    from .scores import formula
    from .study import benchmarks, evaluate

    scores = pd.read_csv(args.scores)
    if "arch" not in scores.columns:
        raise ValueError(f"{args.scores} has no 'arch' column; expected a file written by 'ntkscore rank'")
    extra = {k: v for k, v in formula.formula_scores(scores).items() if k not in scores}
    for f in formula.SHIPPED:  # each term of a shipped score: without it, and with log #params in its place
        if (f.name in scores or f.name in extra) and all(t in scores for t in f.weights):
            extra.update(formula.controls(f, scores))
    scores = pd.concat([scores, pd.DataFrame(extra, index=scores.index)], axis=1)
    root = None if (args.robbench and args.nb201 and args.proxies) else data_dir(args.data)
    robbench = args.robbench or (root / "nasrobbench201" / "cifar10.csv")
    nb201 = args.nb201 or (root / "nb201" / "cifar10_clean_acc.csv")
    proxies = args.proxies if args.proxies is not None else (root / "zero_cost" / "nb201_cifar10_proxies.csv")
    joined, baselines = evaluate.join_benchmarks(scores, robbench, nb201, None if str(proxies) == "none" else proxies,
                                                 args.metrics or benchmarks.ROBBENCH_METRICS)
    dropped = len(scores) - len(joined)
    print(f"{len(scores)} cells in {args.scores}; {len(joined)} joined with every benchmark table"
          + (f" ({dropped} dropped: no row in NAS-RobBench-201, NB201 or the published proxies)" if dropped else ""))
    if len(joined) < 3:
        raise ValueError("fewer than 3 cells joined with the benchmark tables; nothing to correlate")
    metrics = list(args.metrics or benchmarks.ROBBENCH_METRICS) + ["test_acc"]
    if {"val_pgd_8.0_acc", "val_acc"} <= set(joined.columns):  # what robustness predicts
        joined = joined.assign(robustness_residual=evaluate.robustness_residual(joined["val_pgd_8.0_acc"],
                                                                                joined["val_acc"]),
                               **{"pgd8/clean": joined["val_pgd_8.0_acc"] / joined["val_acc"]})
        metrics += ["robustness_residual", "pgd8/clean"]
    target = CORRELATE_TARGET if CORRELATE_TARGET in metrics else metrics[0]
    metrics = [target] + [m for m in metrics if m != target]
    columns = args.score or _default_score_columns(list(scores.columns))
    bar = tqdm(total=len(columns + baselines) * len(metrics), unit="pair", desc="correlating", file=sys.stderr,
               dynamic_ncols=True)
    with bar:
        table = evaluate.correlate(joined, columns + baselines, metrics, n_boot=args.bootstrap, seed=0,
                                   progress=bar.update)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "correlations.csv", index=False)
    (out / "correlations.md").write_text(evaluate.to_markdown(table) + "\n")
    shown = args.plot or [c for c in ("value", "robustness") if c in columns] + \
        [c for c in columns if c not in ("value", "robustness")][:4] + baselines[:3]
    for metric in args.plot_metric:
        evaluate.plot_rank_rank(joined, shown, metric, out / f"rank_rank_{metric}.png", stats=table)
    view = table[table.metric == target].sort_values("kendall_tau", ascending=False)
    print(f"Kendall τ [95% bootstrap CI] with {target} (every metric in {out}/correlations.md):")
    print(view[["score", "n", "kendall_tau", "tau_lo", "tau_hi", "spearman_rho", "top1%", "top5%", "top1_acc"]]
          .to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ntkscore", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"ntkscore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("space", help="list, convert and canonicalise NB201 cells")
    p.add_argument("action", choices=["list", "show", "canonical"])
    p.add_argument("arch", nargs="*", help="NB201 strings, 6 comma-separated op indices, or NB201 indices 0-15624 "
                   "(show/canonical)")
    p.add_argument("--unique", action="store_true", help="list one representative per isomorphism class")
    p.add_argument("--limit", type=int, default=None, help="list at most this many")
    p.add_argument("--json", action="store_true")
    p.add_argument("--data", default=None, help="data directory holding nb201/meta.json (for NB201 indices)")
    p.set_defaults(func=cmd_space)

    p = sub.add_parser("data", help="where each dataset's images are expected, and converting the official releases",
                       description="'ntkscore data where' lists the image file of each dataset under the data "
                       "directory; 'ntkscore data convert DATASET FILE... --out OUT.npz' converts the official pickled "
                       "batches (CIFAR python pickles, NB201's ImageNet16 batches) to ntkscore's .npz format.")
    p.add_argument("action", choices=["where", "convert"])
    p.add_argument("dataset", nargs="?", choices=["cifar10", "cifar100", "ImageNet16-120"])
    p.add_argument("files", nargs="*", help="pickled batches to convert")
    p.add_argument("--out", help="the .npz to write (e.g. DATA/images/cifar100_train.npz)")
    p.add_argument("--data", default=None, help="data directory (default $NTKSCORE_DATA or ../shared/data)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("score", help="score one or more cells: value (predicted PGD-8 accuracy), robustness "
                       "(accuracy kept under attack) and every kernel quantity")
    p.add_argument("arch", nargs="*", default=[DEFAULT_ARCH],
                   help="NB201 strings, 6 comma-separated op indices or NB201 indices (default: a mixed conv cell)")
    p.add_argument("--json", action="store_true", help="one JSON object per cell instead of a table")
    _add_score_options(p)
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("rank", help="score many cells into a resumable CSV (progress bar with rate and ETA)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--sample", type=int, default=16, help="seeded sample of unique cells (default 16)")
    which.add_argument("--all", action="store_true", help="all 6466 unique cells")
    which.add_argument("--archs", help="file with one NB201 string per line")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the cell sample")
    p.add_argument("--out", default="runs/scores.csv", help="CSV to append to (default runs/scores.csv)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip cells already in --out (default on)")
    g = p.add_argument_group("many processes, GPUs and machines (Ray; pip install 'ntkscore[ray]')")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="score on a Ray cluster: a running cluster's ADDRESS (HOST:6379, or 'auto' on one of its "
                        "nodes), or no ADDRESS for a local cluster of --workers processes")
    g.add_argument("--workers", type=int, default=None, help="processes of a local Ray cluster (default: CPU count)")
    g.add_argument("--chunk-size", type=int, default=4, help="cells per Ray task (default 4)")
    g.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Ray task (e.g. 1 on GPU nodes)")
    _add_score_options(p)
    p.set_defaults(func=cmd_rank)

    p = sub.add_parser("search", help="the best cells by a shipped score, within a time budget and #params/FLOPs "
                       "limits (evolution, random or coarse-to-fine)")
    p.add_argument("--objective", choices=["value", "robustness", "both"], default="value",
                   help="value: predicted PGD-8 accuracy (default); robustness: accuracy kept under attack; both: "
                        "by value, with the Pareto front of the two")
    p.add_argument("--budget", default="10m", help="wall time, compilation included: 90s, 10m, 1h (default 10m)")
    p.add_argument("--strategy", choices=["evolution", "random", "coarse_to_fine"], default="evolution")
    p.add_argument("--max-params", help="limit on the #params of the C16 N5 network, e.g. 0.5M")
    p.add_argument("--max-flops", help="limit on its multiply-accumulates per 32×32 image, e.g. 100M")
    p.add_argument("--top", type=int, default=5, help="how many cells to report (default 5)")
    p.add_argument("--search-seed", type=int, default=0, help="seed of the strategy (cell order, mutations)")
    p.add_argument("--out", default="runs/search.csv", help="rank file of every score (resumable; reused)")
    p.add_argument("--benchmark", action="store_true", help="add NAS-RobBench-201 / NB201 accuracies (needs DATA)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.add_argument("--csv", help="write the top cells to this CSV")
    p.add_argument("--plot", help="write a PNG of the scored cells (objective vs #params) to this path")
    _add_score_options(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("correlate", help="correlate a score file with NAS-RobBench-201 / NAS-Bench-201 accuracies")
    p.add_argument("scores", help="CSV written by 'ntkscore rank'")
    p.add_argument("--data", default=None, help="data directory with nasrobbench201/, nb201/, zero_cost/")
    p.add_argument("--robbench", help="NAS-RobBench-201 CSV (default DATA/nasrobbench201/cifar10.csv)")
    p.add_argument("--nb201", help="NB201 clean accuracy CSV (default DATA/nb201/cifar10_clean_acc.csv)")
    p.add_argument("--proxies", help="zero-cost proxy CSV (default DATA/zero_cost/nb201_cifar10_proxies.csv; "
                   "'none' to skip)")
    p.add_argument("--metrics", nargs="+", help="benchmark metrics (default: all six NAS-RobBench-201 columns)")
    p.add_argument("--score", nargs="+", help="score columns (default: value, robustness and their controls, the "
                   "zero-cost terms and each kernel's λ_min, bound, trace, condition and effective rank)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the τ CI (0: none)")
    p.add_argument("--plot", nargs="+", help="score columns to plot (default: value, robustness, four more and "
                   "three baselines)")
    p.add_argument("--plot-metric", nargs="*", default=["val_pgd_8.0_acc"],
                   help="metrics to plot against (none given: no plots)")
    p.add_argument("--out-dir", default="runs/correlate", help="where tables and plots go")
    p.set_defaults(func=cmd_correlate)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .study.cluster import ClusterError, RayUnavailable

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, RayUnavailable, ClusterError) as err:
        print(f"ntkscore: error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ntkscore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
