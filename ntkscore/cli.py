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
    g.add_argument("--batch-size", type=int, default=32, help="images in the NTK batch (default 32)")
    g.add_argument("--seed", type=int, default=0, help="PRNG seed: initialisation, batch and attack noise")
    g.add_argument("--kernels", choices=["clean", "robust", "all"], default="all",
                   help="clean: K only; robust: + K̃_ε, K̄_ε; all (default): + K̃_2ε, K̄_2ε")
    g.add_argument("--beta", type=float, nargs="+", default=[0.0, 0.5, 1.0], help="β values of the mixed kernels")
    g.add_argument("--attack", choices=["pgd", "fgsm"], default="pgd")
    g.add_argument("--eps", type=float, default=8.0, help="ℓ∞ radius in /255 units (default 8)")
    g.add_argument("--step-size", type=float, default=2.0, help="PGD step in /255 units (default 2)")
    g.add_argument("--steps", type=int, default=7, help="PGD steps (default 7)")
    g.add_argument("--output", choices=["trace", "sum", "full"], default="trace", help="NTK output mode")
    g.add_argument("--bn-mode", choices=["batch", "identity"], default="batch")
    g.add_argument("--channels", type=int, default=16, help="C of the network (default 16)")
    g.add_argument("--cells", type=int, default=5, help="N cells per stage (default 5)")
    g.add_argument("--inputs", choices=["data", "random"], default="data",
                   help="data: CIFAR images from --data; random: uniform noise (no files needed)")
    g.add_argument("--data", default=None, help="data directory (default $NTKSCORE_DATA or ../shared/data)")


def _settings(args):
    from .score import ScoreSettings

    return ScoreSettings(dataset=args.dataset, batch_size=args.batch_size, seed=args.seed, kernels=args.kernels,
                         betas=tuple(args.beta), attack=args.attack, eps=args.eps / 255, step_size=args.step_size / 255,
                         steps=args.steps, output=args.output, bn_mode=args.bn_mode, inputs=args.inputs,
                         channels=args.channels, cells_per_stage=args.cells)


def _score_table(result) -> str:
    from .theory import SCORE_NAMES

    kernels: dict[str, dict[str, float]] = {}
    for name, value in result.metrics.items():
        kernel, _, quantity = name.rpartition(".")
        if kernel:
            kernels.setdefault(kernel, {})[quantity] = value
    cols = [q for q in SCORE_NAMES if any(q in v for v in kernels.values())]
    lines = [f"arch     {result.arch}", f"params   {result.metrics['params']:.0f}    "
             f"FLOPs {result.metrics['flops'] / 1e6:.2f} M    time {result.seconds:.1f} s",
             f"flags    {', '.join(result.flags) or '-'}", ""]
    lines.append(f"{'kernel':<16}" + "".join(f"{c:>16}" for c in cols))
    for kernel, values in kernels.items():
        lines.append(f"{kernel:<16}" + "".join(f"{values.get(c, float('nan')):>16.6g}" for c in cols))
    return "\n".join(lines)


def cmd_score(args) -> int:
    from .score import Scorer

    archs = [_parse_arch(a) for a in args.arch]
    scorer = Scorer(_settings(args), data_dir=args.data)
    for arch in archs:
        result = scorer(arch)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command != "space":
            _enable_compilation_cache()
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"ntkscore: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ntkscore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
