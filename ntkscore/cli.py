"""``ntkscore`` command line: a thin shell over the library (parsing, printing, exit codes)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__

DEFAULT_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _enable_compilation_cache() -> None:
    """Persist compiled programs between CLI runs (the first compile of a shape takes tens of seconds on a CPU)."""
    import jax

    path = os.environ.get("NTKSCORE_CACHE", str(Path.home() / ".cache" / "ntkscore" / "xla"))
    if path.lower() != "off":
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _parse_arch(text: str):
    from .space import as_arch

    text = text.strip()
    if text and all(part.strip().isdigit() for part in text.split(",")) and "," in text:
        return as_arch(tuple(int(p) for p in text.split(",")))
    return as_arch(text)


def _add_score_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scoring settings")
    g.add_argument("--dataset", default="cifar10", help="cifar10 (default), cifar100 or ImageNet16-120")
    g.add_argument("--batch-size", type=int, default=16, help="images in the NTK batch (default 16)")
    g.add_argument("--seed", type=int, default=0, help="PRNG seed: initialisation, batch and attack noise")
    g.add_argument("--kernels", choices=["clean", "robust", "all", "none"], default="all",
                   help="clean: K only; robust: + K̃_ε, K̄_ε; all (default): + K̃_2ε, K̄_2ε; none: the proxies only")
    g.add_argument("--no-proxies", dest="proxies", action="store_false",
                   help="skip the zero-cost proxy terms (NASWOT, jacov, synflow, MeCo; see ntkscore.proxies)")
    g.add_argument("--proxy-batch-size", type=int, default=64, help="images in the proxies' batch (default 64)")
    g.add_argument("--family", action="store_true",
                   help="also compute the NTK family (TE-NAS, NASI, KNAS, LGA, Fisher/VKDNW, per-layer spectra; see "
                        "ntkscore.family; about 1.23x the time at the real shape)")
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
    g.add_argument("--cells", type=int, default=5, help="N cells per stage (default 5)")
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
    from .score import ScoreSettings

    return ScoreSettings(dataset=args.dataset, batch_size=args.batch_size, seed=args.seed, kernels=args.kernels,
                         betas=tuple(args.beta), attack=args.attack, eps=args.eps / 255, step_size=args.step_size / 255,
                         steps=args.steps, output=args.output, bn_mode=args.bn_mode, inputs=args.inputs, engine=args.engine,
                         channels=args.channels, cells_per_stage=args.cells, input_size=args.input_size,
                         proxies=args.proxies, proxy_batch_size=args.proxy_batch_size, family=args.family,
                         fisher_batch_size=args.fisher_batch_size)


def _score_table(result) -> str:
    from .family import KERNELS as FAMILY_KERNELS
    from .family import LAYER_AGGREGATES, PROXIES
    from .theory import SCORE_NAMES

    FAMILY_SHOWN = PROXIES + LAYER_AGGREGATES
    from .composite import AGGREGATE_PREFIX, PREFIX

    kernels: dict[str, dict[str, float]] = {}
    for name, value in result.metrics.items():
        kernel, _, quantity = name.rpartition(".")
        if kernel and not name.startswith((PREFIX, AGGREGATE_PREFIX, "zc.", "features.")) and "/" not in kernel \
                and "." not in kernel:  # per-group and per-layer aggregates: --json
            kernels.setdefault(kernel, {})[quantity] = value
    cols = [q for q in SCORE_NAMES if any(q in v for v in kernels.values())]
    primary = result.settings.get("primary", "")

    def shown(get, name):
        try:
            return f"{get():.6g} ({name})"
        except KeyError as err:
            return f"- ({err.args[0]})"

    value = shown(lambda: result.value, primary)
    robustness = shown(lambda: result.robustness, "robustness: NTK prediction of the accuracy kept under attack")
    candidates = "  ".join(f"{n.removeprefix(PREFIX).removeprefix(AGGREGATE_PREFIX)} {v:.4g}" for n, v in result.metrics.items()
                           if n.startswith((PREFIX, AGGREGATE_PREFIX)) and n != primary)
    lines = [f"arch     {result.arch}", f"score    {value}", f"robust   {robustness}",
             f"params   {result.metrics['params']:.0f}    FLOPs {result.metrics['flops'] / 1e6:.2f} M    "
             f"time {result.seconds:.1f} s",
             f"flags    {', '.join(result.flags) or '-'}", f"others   {candidates or '-'}"]
    zero_cost = "  ".join(f"{n.removeprefix('zc.')} {v:.5g}" for n, v in result.metrics.items() if n.startswith("zc."))
    if zero_cost:
        lines.append(f"proxies  {zero_cost}")
    for kernel in FAMILY_KERNELS:
        shown = [f"{q} {result.metrics[f'{kernel}.{q}']:.5g}" for q in FAMILY_SHOWN if f"{kernel}.{q}" in result.metrics]
        if shown:
            lines.append(f"{'family':<9}{kernel}: " + "  ".join(shown))
    lines.append("")
    lines.append(f"{'kernel':<16}" + "".join(f"{c:>16}" for c in cols))
    for kernel, values in kernels.items():
        lines.append(f"{kernel:<16}" + "".join(f"{values.get(c, float('nan')):>16.6g}" for c in cols))
    return "\n".join(lines)


def cmd_score(args) -> int:
    from .score import Scorer

    archs = [_parse_arch(a) for a in args.arch]
    scorer = Scorer(_settings(args), data_dir=args.data, arch_batch=args.arch_batch)
    # one cell at a time streams each table as it is ready; batched steps come back together
    results = (scorer(a) for a in archs) if scorer.arch_batch == 1 else scorer.score_many(archs)
    for result in results:
        print(json.dumps(result.to_dict()) if args.json else _score_table(result) + "\n", flush=True)
    return 0


def cmd_space(args) -> int:
    from . import cost
    from .space import all_archs, unique_archs

    if args.action == "list":
        archs = unique_archs() if args.unique else list(all_archs())
        for arch in archs[: args.limit]:
            print(arch)
        return 0
    if not args.arch:
        raise ValueError("give one or more architectures (NB201 strings or 6 comma-separated op indices)")
    for text in args.arch:
        arch = _parse_arch(text)
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

    from .rank import rank, read_arch_file, select_archs
    from .score import Scorer

    archs = read_arch_file(args.archs) if args.archs else None
    archs = select_archs(None if args.all else args.sample, args.sample_seed, archs)
    scorer = Scorer(_settings(args), data_dir=args.data, arch_batch=args.arch_batch)
    bar = tqdm(total=len(archs), unit="cell", desc="ranking", file=sys.stderr, dynamic_ncols=True)
    new = 0
    try:
        for result in rank(archs, scorer, args.out, resume=args.resume):
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
        from .rank import pareto_front

        front = table[pareto_front(table[["value", "robustness"]])].sort_values("value", ascending=False)
        print(f"{len(front)} cells on the Pareto front of value and robustness:")
        print(front[["arch", "value", "robustness", "params"]].to_string(index=False))


def cmd_correlate(args) -> int:
    import pandas as pd

    from . import benchmarks, composite, evaluate, formula
    from .data import data_dir

    scores = pd.read_csv(args.scores)
    if "arch" not in scores.columns:
        raise ValueError(f"{args.scores} has no 'arch' column; expected a file written by 'ntkscore rank'")
    missing = {k: v for k, v in composite.composite_scores(scores).items() if k not in scores}
    scores = scores.assign(**missing)  # files written before a candidate existed get it from their columns
    scores = scores.assign(**composite.aggregate_scores(scores))  # rank aggregates over this file's cells
    scores = scores.assign(**composite.aggregate_controls(scores))  # … without each NTK term, and params for it
    scores = scores.assign(**{k: v for k, v in formula.formula_scores(scores).items() if k not in scores})
    for f in formula.SHIPPED:  # each term of a shipped score: without it, and with log #params in its place
        if f.name in scores and f.weights:
            scores = scores.assign(**formula.controls(f, scores))
    root = None if (args.robbench and args.nb201 and args.proxies) else data_dir(args.data)
    robbench = args.robbench or (root / "nasrobbench201" / "cifar10.csv")
    nb201 = args.nb201 or (root / "nb201" / "cifar10_clean_acc.csv")
    proxies = args.proxies if args.proxies is not None else (root / "zero_cost" / "nb201_cifar10_proxies.csv")
    joined, baselines = evaluate.join_benchmarks(scores, robbench, nb201, None if str(proxies) == "none" else proxies,
                                                 args.metrics or benchmarks.ROBBENCH_METRICS)
    metrics = list(args.metrics or benchmarks.ROBBENCH_METRICS) + ["test_acc"]
    if {"val_pgd_8.0_acc", "val_acc"} <= set(joined.columns):  # what robustness predicts
        joined = joined.assign(robustness_residual=evaluate.robustness_residual(joined["val_pgd_8.0_acc"],
                                                                                joined["val_acc"]),
                               **{"pgd8/clean": joined["val_pgd_8.0_acc"] / joined["val_acc"]})
        metrics += ["robustness_residual", "pgd8/clean"]
    columns = args.score or [c for c in scores.columns if ("." in c or c.startswith(("value", "robustness")))
                             and not c.startswith("setting.")]
    table = evaluate.correlate(joined, columns + baselines, metrics, n_boot=args.bootstrap, seed=0)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "correlations.csv", index=False)
    (out / "correlations.md").write_text(evaluate.to_markdown(table) + "\n")
    for metric in args.plot_metric:
        evaluate.plot_rank_rank(joined, args.plot or columns[:6] + baselines[:3], metric, out / f"rank_rank_{metric}.png")
    view = table[table.metric == metrics[0]].sort_values("kendall_tau", ascending=False)
    print(f"{len(joined)} cells joined; correlations with {metrics[0]} (all metrics in {out}/correlations.md):")
    print(view[["score", "n", "kendall_tau", "tau_lo", "tau_hi", "spearman_rho", "top5%"]].to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ntkscore", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"ntkscore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("space", help="list, convert and canonicalise NB201 cells")
    p.add_argument("action", choices=["list", "show", "canonical"])
    p.add_argument("arch", nargs="*", help="NB201 strings or comma-separated op indices (show/canonical)")
    p.add_argument("--unique", action="store_true", help="list one representative per isomorphism class")
    p.add_argument("--limit", type=int, default=None, help="list at most this many")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_space)

    p = sub.add_parser("score", help="score one or more cells and print their theory scores")
    p.add_argument("arch", nargs="*", default=[DEFAULT_ARCH], help="NB201 strings (default: a mixed conv cell)")
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
    _add_score_options(p)
    p.set_defaults(func=cmd_rank)

    p = sub.add_parser("correlate", help="correlate a score file with NAS-RobBench-201 / NAS-Bench-201 accuracies")
    p.add_argument("scores", help="CSV written by 'ntkscore rank'")
    p.add_argument("--data", default=None, help="data directory with nasrobbench201/, nb201/, zero_cost/")
    p.add_argument("--robbench", help="NAS-RobBench-201 CSV (default DATA/nasrobbench201/cifar10.csv)")
    p.add_argument("--nb201", help="NB201 clean accuracy CSV (default DATA/nb201/cifar10_clean_acc.csv)")
    p.add_argument("--proxies", help="zero-cost proxy CSV (default DATA/zero_cost/nb201_cifar10_proxies.csv; "
                   "'none' to skip)")
    p.add_argument("--metrics", nargs="+", help="benchmark metrics (default: all six NAS-RobBench-201 columns)")
    p.add_argument("--score", nargs="+", help="score columns (default: every metric column of the file)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the τ CI (0: none)")
    p.add_argument("--plot", nargs="+", help="score columns to plot (default: the first six and baselines)")
    p.add_argument("--plot-metric", nargs="*", default=["val_pgd_8.0_acc"],
                   help="metrics to plot against (none given: no plots)")
    p.add_argument("--out-dir", default="runs/correlate", help="where tables and plots go")
    p.set_defaults(func=cmd_correlate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command != "space":
            _enable_compilation_cache()
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"ntkscore: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ntkscore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
