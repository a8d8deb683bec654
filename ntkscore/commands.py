"""The commands of the ``ntkscore`` command line (:mod:`ntkscore.cli` parses the arguments): each reads its
arguments, calls the library and prints. Library code never prints; these functions do."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .outputs import writable


def parse_arch(text: str, data=None):
    """An NB201 string, 6 comma-separated op indices, or an NB201 index 0–15624 (looked up in the benchmark's
    ``nb201/meta.json`` under the data directory)."""
    from .cell.space import as_arch

    text = text.strip()
    if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
        from .study.benchmarks import arch_of_index

        return arch_of_index(int(text), data)
    if text and all(part.strip().isdigit() for part in text.split(",")) and "," in text:
        return as_arch(tuple(int(p) for p in text.split(",")))
    return as_arch(text)


def settings_of(args):
    from .scores.settings import ScoreSettings

    if not 0.0 <= args.eps <= 255.0:
        raise ValueError(f"--eps is in /255 pixel units and must be in 0..255 (8 is the benchmark's), got {args.eps:g}")
    if args.step_size <= 0.0 and args.steps > 0:
        raise ValueError(f"--step-size is in /255 pixel units and must be positive, got {args.step_size:g}")
    if args.input_size == 0:
        args.input_size = None
    if args.input_size is not None and (args.input_size < 4 or args.input_size % 4):
        raise ValueError(f"--input-size must be a multiple of 4 and at least 4 (two stride-2 blocks), "
                         f"got {args.input_size}")
    settings = ScoreSettings(dataset=args.dataset, batch_size=args.batch_size, seed=args.seed, kernels=args.kernels,
                         betas=tuple(args.beta), attack=args.attack, eps=args.eps / 255, step_size=args.step_size / 255,
                         steps=args.steps, output=args.output, bn_mode=args.bn_mode, inputs=args.inputs, engine=args.engine,
                         channels=args.channels, cells_per_stage=args.cells_per_stage, input_size=args.input_size,
                         proxies=args.proxies, proxy_batch_size=args.proxy_batch_size, family=args.family,
                         fisher_batch_size=args.fisher_batch_size, init=args.init,
                         cpu_library_fusions=args.cpu_library_fusions)
    default = ScoreSettings().steps
    if settings.attack == "pgd" and settings.steps > 10 * default and settings.kernels in ("robust", "all"):
        print(f"ntkscore: PGD with {settings.steps} steps ({default} by default): each cell's attack runs inside one "
              f"compiled program, so nothing more is printed until a cell is done, about "
              f"{settings.steps / default:,.0f}× the attack time of the default per cell", file=sys.stderr)
    return settings


def predictors_of(args):
    """The predictors a command applies: the shipped ones, each replaced by a ``--predictor`` file of its name."""
    from .scores import predictor

    chosen = {p.name: p for p in predictor.shipped_predictors()}
    for path in getattr(args, "predictor", None) or []:
        p = predictor.load(path)
        chosen[p.name] = p
    return tuple(chosen.values())


def _score_table(result) -> str:
    """The summary (the two scores and what they mean), the zero-cost terms, the NTK family and the kernel table."""
    from .kernels.family import KERNELS as FAMILY_KERNELS
    from .kernels.family import LAYER_AGGREGATES, PROXIES
    from .kernels.theory import SCORE_NAMES

    kernels: dict[str, dict[str, float]] = {}
    for name, value in result.metrics.items():
        kernel, _, quantity = name.rpartition(".")
        if kernel and not name.startswith(("zc.", "features.")) and "/" not in kernel and quantity in SCORE_NAMES \
                and not kernel.endswith(".layers"):
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

    archs = [parse_arch(a, args.data) for a in args.arch]
    scorer = Scorer(settings_of(args), data_dir=args.data, arch_batch=args.arch_batch, predictors=predictors_of(args))
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
    indices = None
    if args.action == "show":
        from .inputs.data import data_dir
        from .study.benchmarks import nb201_indices

        try:
            indices = nb201_indices(data_dir(args.data) / "nb201" / "meta.json")
        except FileNotFoundError:  # no data directory: the benchmark's numbering is not shown
            pass
    for text in args.arch:
        arch = parse_arch(text, args.data)
        info = {"arch": arch.to_string(), "ops": list(arch.ops), "canonical": arch.canonical().to_string(),
                "canonical_key": arch.canonical_string(), "dead": arch.is_dead,
                "params": cost.num_params(arch), "flops": cost.flops(arch),
                "cost_of": "the benchmark's network: C16 N5, 32×32 images, 10 classes"}
        if indices is not None:  # the benchmark's own numbering, where its index map is at hand
            info["nb201_index"], info["isomorph_index"] = indices.get(arch.to_string(), (None, None))
        if args.action == "canonical":
            print(info["canonical"])
        else:
            print(json.dumps(info) if args.json else "\n".join(f"{k:<16}{v}" for k, v in info.items()) + "\n")
    return 0


def cmd_rank(args) -> int:
    from tqdm import tqdm

    from .scores.scorer import Scorer
    from .study.rank import rank, read_arch_file, select_archs

    writable(args.out, "--out")
    archs = read_arch_file(args.archs) if args.archs else None
    archs = select_archs(None if args.all else args.sample, args.sample_seed, archs)
    settings = settings_of(args)
    if args.ray is not None:
        from .study.cluster import rank_on_ray

        if args.predictor:
            raise ValueError("--predictor is not supported with --ray: rank with the shipped scores, then apply "
                             "your predictor to the file with 'ntkscore correlate --predictor FILE'")

        results = rank_on_ray(archs, settings, args.out, address=None if args.ray == "local" else args.ray,
                              workers=args.workers, chunk_size=args.chunk_size, gpus_per_worker=args.gpus_per_worker,
                              data_dir=args.data, resume=args.resume)
    else:
        scorer = Scorer(settings, data_dir=args.data, arch_batch=args.arch_batch, predictors=predictors_of(args))
        for name, reason in scorer.not_computed.items():
            print(f"ntkscore: {name} is not computed (its column stays empty): {reason}", file=sys.stderr)
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
    for flag in ("out", "csv", "plot"):
        if getattr(args, flag):
            writable(getattr(args, flag), f"--{flag}")
    if args.benchmark:  # the tables are read after the search: check they are there before it
        from .inputs.data import data_dir

        for table in ("nasrobbench201/cifar10.csv", "nb201/cifar10_clean_acc.csv"):
            if not (data_dir(args.data) / table).is_file():
                raise FileNotFoundError(f"--benchmark needs {data_dir(args.data) / table}")
    sizes = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
    constraints = search_lib.Constraints(
        None if args.max_params is None else search_lib.parse_quantity(args.max_params, sizes, "--max-params"),
        None if args.max_flops is None else search_lib.parse_quantity(args.max_flops, sizes, "--max-flops"))
    bar = tqdm(total=round(budget), unit="s", desc=f"{args.strategy} search", file=sys.stderr, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")
    start, cells = time.perf_counter(), [0]

    def progress() -> None:  # the budget is wall time: the bar shows it, and the cells scored so far
        cells[0] += 1
        bar.n = min(time.perf_counter() - start, budget)
        bar.set_postfix(cells=cells[0], refresh=True)

    with bar:
        result = search_lib.search(args.objective, budget, strategy=args.strategy, constraints=constraints,
                                   settings=settings_of(args), out=args.out, seed=args.search_seed, data_dir=args.data,
                                   progress=progress, predictors=predictors_of(args))
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
    return list(dict.fromkeys(shipped + [c for c in columns if c.startswith("zc.")] + kernel))


def cmd_correlate(args) -> int:
    import pandas as pd
    from tqdm import tqdm

    from .inputs.data import data_dir
    from .scores import predictor
    from .study import benchmarks, evaluate, learn

    from .study.rank import read_rank_table

    writable(args.out_dir, "--out-dir", folder=True)
    scores, notes = read_rank_table(args.scores)
    for note in notes:
        print(f"{args.scores}: {note}", file=sys.stderr)
    own = [predictor.load(p) for p in args.predictor or []]
    predictors = list({p.name: p for p in (*predictor.shipped_predictors(), *own)}.values())
    if own:  # the user's predictors score the file's cells (at its settings only)
        scores, reasons = learn.apply_predictors(scores, own)
        for name, reason in reasons.items():
            print(f"{name} is not computed: {reason}")
    if not args.include_training:
        scores, excluded = learn.without_training_cells(scores, predictors, args.data)
        if excluded:
            print(f"{excluded} cells excluded: the predictors of {', '.join(p.name for p in predictors if p.name in scores)}"
                  " were fitted on them (--include-training keeps them)")
    root = None if (args.robbench and args.nb201 and args.proxies) else data_dir(args.data)
    robbench = args.robbench or (root / "nasrobbench201" / "cifar10.csv")
    nb201 = args.nb201 or (root / "nb201" / "cifar10_clean_acc.csv")
    proxies = args.proxies if args.proxies is not None else (root / "zero_cost" / "nb201_cifar10_proxies.csv")
    joined, baselines = evaluate.join_benchmarks(scores, robbench, nb201, None if str(proxies) == "none" else proxies,
                                                 args.metrics or benchmarks.ROBBENCH_METRICS)
    dropped = len(scores) - len(joined)
    print(f"{len(scores)} cells in {args.scores}; {len(joined)} with a NAS-RobBench-201 row"
          + (f" ({dropped} without one dropped)" if dropped else ""))
    for what, column in (("an NB201 test_acc", "test_acc"), ("published proxies", next(
            (b for b in baselines if b.startswith("proxy.")), None))):
        if column is not None and (missing := int(joined[column].isna().sum())):
            print(f"{missing} of them have no {what}: rows using it are correlated on the other "
                  f"{len(joined) - missing} (n in each row)")
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




def cmd_fit(args) -> int:
    from .study import evaluate, learn

    writable(args.out, "--out")
    table, y, target_name, settings = learn.labelled_table(args.scores, args.target, args.labels, args.seed,
                                                           args.data)
    features = learn.features_of(list(table.columns), args.features)
    print(f"{len(y)} labelled cells of {args.scores}; target {target_name}; {len(features)} features "
          f"({', '.join(args.features)}); 5-fold cross-validation:")
    if features:
        comparison = learn.compare(table, y, features, seed=args.seed)
        print(evaluate.to_markdown(comparison.rename(columns={"regret_top1": "top-1 regret"})))
    predictor = learn.fit_labelled(table, y, target_name, settings, args.features, args.name, args.seed,
                                   str(args.scores))
    path = predictor.save(args.out)
    print(f"wrote {path}: '{args.name}' over {len(predictor.features)} features, valid at the settings of "
          f"{args.scores} only; use it with --predictor {path}")
    return 0


def cmd_train(args) -> int:
    from dataclasses import asdict

    from .train import TrainSettings, train

    if args.checkpoint:
        writable(args.checkpoint, "--checkpoint")
    elif args.extend:
        raise ValueError("--extend continues the run saved in --checkpoint; give its --checkpoint")
    arch = parse_arch(args.arch, args.data)
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta=args.beta,
                             eps=args.eps / 255, step_size=args.step_size / 255, steps=args.steps,
                             channels=args.channels, cells_per_stage=args.cells_per_stage, input_size=args.input_size,
                             train_images=args.train_images, test_images=args.test_images, seed=args.seed,
                             apgd_steps=args.apgd_steps, augment=args.augment, attack_bn=args.attack_bn,
                             cycle_momentum=args.cycle_momentum, init=args.init)
    result = train(arch, settings, data_dir=args.data, checkpoint=args.checkpoint, extend=args.extend,
                   progress=lambda epoch, loss: print(f"epoch {epoch}/{settings.epochs}  loss {loss:.4f}",
                                                      file=sys.stderr, flush=True))
    summary = {"arch": result["arch"], "epochs": result["epochs"], "schedule": result["schedule"],
               "seconds": round(result["seconds"], 1), "accuracy": result["accuracy"], "settings": asdict(settings)}
    if args.json:
        print(json.dumps(summary))
    else:
        cycles = result["schedule"]
        restarted = f" (one-cycle schedules ending at epochs {', '.join(map(str, cycles))})" if len(cycles) > 1 else ""
        print(f"{result['arch']}: {result['epochs']} epochs{restarted}, {result['seconds']:.0f} s this run")
        for name, value in result["accuracy"].items():
            print(f"  {name:<10}{100 * value:6.2f}%")
    return 0
