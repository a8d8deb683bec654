"""``ntkscore`` command line: a thin shell over the library (parsing, printing, exit codes)."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .commands import cmd_correlate, cmd_data, cmd_fit, cmd_rank, cmd_score, cmd_search, cmd_space, cmd_train

DEFAULT_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _add_score_options(p: argparse.ArgumentParser) -> None:
    from .scores.settings import ScoreSettings

    d = ScoreSettings()
    g = p.add_argument_group("scoring settings (defaults: the shipped scores' settings; value and robustness are "
                             "computed at those only, or with --predictor at its own)")
    g.add_argument("--dataset", default="cifar10",
                   help="cifar10 (default), cifar100 or ImageNet16-120; the images are DATA/images/<dataset>_train.npz "
                        "(cifar10: cifar10_train_5000.npz), see 'ntkscore data --help'")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"images in the NTK batch (default {d.batch_size})")
    g.add_argument("--seed", type=int, default=0, help="PRNG seed: initialisation, batch and attack noise")
    g.add_argument("--kernels", choices=["clean", "robust", "all", "none"], default=d.kernels,
                   help=f"clean: K only; robust: + K̃_ε, K̄_ε; all: + K̃_2ε, K̄_2ε; none: the proxies only (default {d.kernels})")
    g.add_argument("--no-proxies", dest="proxies", action="store_false",
                   help="skip the zero-cost proxy terms (NASWOT, jacov, synflow, MeCo; see ntkscore.proxies)")
    g.add_argument("--proxy-batch-size", type=int, default=64, help="images in the proxies' batch (default 64)")
    g.add_argument("--family", action=argparse.BooleanOptionalAction, default=d.family,
                   help="the NTK family (TE-NAS, NASI, KNAS, LGA, Fisher/VKDNW, per-layer spectra; see "
                        f"ntkscore.kernels.family; default {'on' if d.family else 'off'}; --no-family to skip)")
    g.add_argument("--fisher-batch-size", type=int, default=4,
                   help="images of the batch whose Fisher spectrum is computed (default 4)")
    g.add_argument("--beta", type=float, nargs="+", default=[0.0, 0.5, 1.0], help="β values of the mixed kernels")
    g.add_argument("--attack", choices=["pgd", "fgsm"], default="pgd")
    g.add_argument("--eps", type=float, default=8.0, help="ℓ∞ radius in /255 units (default 8)")
    g.add_argument("--step-size", type=float, default=2.0, help="PGD step in /255 units (default 2)")
    g.add_argument("--steps", type=int, default=7, help="PGD steps (default 7)")
    g.add_argument("--output", choices=["trace", "sum", "full"], default="trace", help="NTK output mode")
    g.add_argument("--bn-mode", choices=["batch", "identity"], default="batch")
    g.add_argument("--init", choices=["kaiming", "torch"], default=d.init,
                   help="initialisation: kaiming (Kaiming-normal fan-out convs, classifier N(0, 0.01²)) or torch "
                        "(PyTorch's default, which the benchmarks trained from)")
    g.add_argument("--cpu-library-fusions", action=argparse.BooleanOptionalAction, default=None,
                   help="on a CPU, compile the layerwise engine's programs with XLA:CPU's YNNPACK library fusions "
                        "(default off: XLA's own kernels, the shipped scores' setting and a faster first score on a "
                        "small CPU); --cpu-library-fusions moves the scores at float32 rounding, and value and "
                        "robustness are not computed there. The Jacobian engine always runs with XLA's defaults")
    g.add_argument("--engine", choices=["layerwise", "jacobian"], default="layerwise",
                   help="NTK engine: layerwise (default, fastest) or per-sample Jacobians (the reference)")
    g.add_argument("--channels", type=int, default=d.channels, help=f"C of the network (default {d.channels}; the benchmark's is 16)")
    g.add_argument("--cells-per-stage", "--cells", dest="cells_per_stage", type=int, default=d.cells_per_stage,
                   help=f"N cells per stage (default {d.cells_per_stage}; the benchmark's is 5)")
    g.add_argument("--input-size", type=int, default=d.input_size,
                   help=f"image side (default {d.input_size}; 0: the dataset's, 32 for CIFAR); smaller sizes "
                        "area-downsample the images")
    g.add_argument("--inputs", choices=["data", "random"], default="data",
                   help="data: CIFAR images from --data; random: uniform noise (no files needed)")
    g.add_argument("--data", default=None, help="data directory (default $NTKSCORE_DATA or ../shared/data)")
    g.add_argument("--predictor", action="append", metavar="FILE",
                   help="a predictor file written by 'ntkscore fit' (repeatable); it replaces the shipped score of "
                        "its name and is applied only at the settings it was fitted at")
    g.add_argument("--arch-batch", default="auto", type=_arch_batch,
                   help="cells per device step: 'auto' (default: 1 on a CPU, 16 on a GPU/TPU) or a positive int; "
                        ">1 runs the architecture-batched program (every op evaluated, vmap over cells)")


def _arch_batch(text: str) -> int | None:
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive int, got {text!r}")
    return int(text)


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

    p = sub.add_parser("score", help="score one or more cells: value (predicted PGD-8 rank), robustness (predicted "
                       "robustness residual) and every kernel quantity")
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
                   help="value: predicted PGD-8 rank (default); robustness: predicted robustness residual; both: "
                        "by value, with the Pareto front of the two")
    p.add_argument("--budget", default="10m", help="wall time, compilation included: 90s, 10m, 1h (default 10m)")
    p.add_argument("--strategy", choices=["evolution", "random", "coarse_to_fine"], default="evolution")
    p.add_argument("--max-params", help="limit on the #params of the C16 N5 network, e.g. 0.5M")
    p.add_argument("--max-flops", help="limit on its FLOPs per 32×32 image, counted as NAS-Bench-Suite-Zero's NB201 table counts them, e.g. 100M")
    p.add_argument("--top", type=int, default=5, help="how many cells to report (default 5)")
    p.add_argument("--search-seed", type=int, default=0, help="seed of the strategy (cell order, mutations)")
    p.add_argument("--out", default="runs/search.csv", help="rank file of every score (resumable; reused)")
    p.add_argument("--benchmark", action="store_true", help="add NAS-RobBench-201 / NB201 accuracies (needs DATA)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.add_argument("--csv", help="write the top cells to this CSV")
    p.add_argument("--plot", help="write a PNG of the scored cells (objective vs #params) to this path")
    _add_score_options(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("train", help="multi-objective adversarial training of one cell ((1-β) clean + β PGD loss) by "
                       "the NAS-RobBench-201 authors' recipe, then clean, FGSM, PGD-20, APGD-CE and APGD-DLR "
                       "accuracy at 3 and 8/255 (checkpointed, resumable)")
    p.add_argument("arch", help="NB201 string, 6 comma-separated op indices or an NB201 index")
    p.add_argument("--beta", type=float, default=1.0, help="weight of the adversarial loss (default 1: PGD training)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.1, help="peak of the one-cycle learning rate (default 0.1)")
    p.add_argument("--eps", type=float, default=8.0, help="training attack's radius in /255 (default 8)")
    p.add_argument("--step-size", type=float, default=2.0, help="its step in /255 (default 2)")
    p.add_argument("--steps", type=int, default=7, help="its PGD steps (default 7)")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells-per-stage", type=int, default=5)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--train-images", type=int, default=None, help="training images (default: the whole file)")
    p.add_argument("--test-images", type=int, default=1000)
    p.add_argument("--apgd-steps", type=int, default=100, help="APGD iterations at evaluation (default 100; 0: none)")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no random crop and flip of the training batches (the authors' recipe has them)")
    p.add_argument("--attack-bn", choices=["eval", "batch"], default="eval",
                   help="BN statistics of the training attack: 'eval' (running, the authors') or 'batch'")
    p.add_argument("--no-cycle-momentum", dest="cycle_momentum", action="store_false",
                   help="fixed momentum 0.9 instead of OneCycleLR's 0.95-0.85-0.95 cycle")
    p.add_argument("--init", choices=["torch", "kaiming"], default="torch",
                   help="initialisation (default torch: PyTorch's default, what the benchmark trained from)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", help="save after every epoch; rerunning with the same file resumes")
    p.add_argument("--extend", action="store_true",
                   help="continue the finished run in --checkpoint to --epochs: the extra epochs get a one-cycle "
                   "schedule of their own (a warm restart; not the same as a run of that many epochs)")
    p.add_argument("--data", default=None, help="data directory (default $NTKSCORE_DATA or ../shared/data)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("fit", help="fit a learned score to labelled cells of a rank file (few-shot: e.g. 100 cells "
                       "you trained), with its cross-validated τ beside the controls",
                       description="Fit a predictor (LightGBM over the rank file's NTK and zero-cost metrics) to the "
                       "labels of the cells that have one, print its 5-fold cross-validated Kendall τ, top-5%% "
                       "precision and top-1 regret beside the controls (zero-cost only, NTK only, a one-hot surrogate "
                       "on the same labels), and write it to --out; then '--predictor FILE' applies it in score, rank, "
                       "search and correlate, at the rank file's settings only.")
    p.add_argument("scores", help="CSV written by 'ntkscore rank' (its features and settings)")
    p.add_argument("--target", required=True,
                   help="labels: 'nasrobbench201:COLUMN' (e.g. nasrobbench201:val_pgd_8.0_acc), 'nb201:test_acc', "
                        "'residual' (the robustness residual), or a CSV of your own with columns arch,accuracy "
                        "(arch: NB201 string or index)")
    p.add_argument("--features", nargs="+", default=["ntk", "zero_cost"],
                   help="feature groups: ntk (= paper family per_group per_layer), paper, family, per_group, "
                        "per_layer, zero_cost (default: ntk zero_cost)")
    p.add_argument("--name", default="value", help="the score's name (default value: replaces the shipped value)")
    p.add_argument("--out", default="runs/predictor.json", help="predictor file to write")
    p.add_argument("--labels", type=int, default=None, help="use only this many labelled cells (a seeded sample)")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds, the sample and the booster")
    p.add_argument("--data", default=None, help="data directory with the benchmark tables (benchmark targets)")
    p.set_defaults(func=cmd_fit)

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
                   help="metrics to plot against (default: val_pgd_8.0_acc; --plot-metric with no metric: no plots)")
    p.add_argument("--out-dir", default="runs/correlate", help="where tables and plots go")
    p.add_argument("--predictor", action="append", metavar="FILE",
                   help="apply a predictor file ('ntkscore fit') to the file's cells, as a column of its name")
    p.add_argument("--include-training", action="store_true",
                   help="keep the cells the predictors were fitted on (excluded by default)")
    p.set_defaults(func=cmd_correlate)
    return parser


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings, in every subcommand, that take one value."""
    names = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                names |= _value_options(sub)
        elif action.option_strings and action.nargs is None and not isinstance(
                action, (argparse._StoreConstAction, argparse._CountAction, argparse._HelpAction,
                         argparse._VersionAction)):
            names |= set(action.option_strings)
    return names


def _attach_negative_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--budget -5m`` → ``--budget=-5m``: argparse reads a value that starts with '-' and is not a plain number
    as an option, and would say only "expected one argument"; attached, the value reaches its own check."""
    options, out, i = _value_options(parser), [], 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv) and argv[i + 1][:1] == "-" and argv[i + 1][1:2].isdigit():
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    from .study.cluster import ClusterError, RayUnavailable

    parser = build_parser()
    args = parser.parse_args(_attach_negative_values(parser, sys.argv[1:] if argv is None else list(argv)))
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
