"""Recorded study: the one-term linear baselines ``value`` (predicted PGD-8 accuracy) and ``robustness`` (predicted
robustness residual), chosen on development cells, reported on test cells with their controls.

    python benchmarks/score_design.py            # from the committed tables; no scoring (~1 min)
    python benchmarks/score_design.py --development-only    # select and report without reading any test cell

Protocol, fixed before the test cells were read. The CIFAR-10 cells are split by
:func:`ntkscore.study.evaluate.development_keys` (1257 development, 5028 test). The baseline formulas are chosen at the
default settings, on the development cells of the committed real-shape tables (:data:`REAL_TABLES`,
:data:`REAL_PROXIES`: C16 N5, 32×32, B = 16): :func:`ntkscore.study.fit.forward_selection` picks the terms of ``value``
from :data:`ZERO_COST_REAL` and :data:`NTK_REAL` (5-fold cross-validated τ against PGD-8; at most
:data:`REAL_MAX_TERMS` terms, each with a gain ≥ :data:`REAL_MIN_GAIN`), and an NTK term stays only if its
formula's cross-validated τ beats both controls, the same formula without it and with log #params in its place;
``robustness`` is selected the same way from :data:`NTK_REAL` alone against the robustness residual
(:func:`ntkscore.study.evaluate.robustness_residual`: the PGD-8 rank after a line on the NAS-RobBench-201
clean-accuracy rank, computed within each split). The weights are least-squares fits on those development cells,
written to ``benchmarks/results/score_design.json``, which :mod:`ntkscore.scores.formula` holds as its ``BASELINES``.

The same protocol is then run at the cheap settings over the whole space (:data:`KERNEL_TABLE`: NTK quantities and
the NTK family of every unique cell at C = 8, N = 1, 16×16, B = 20; :data:`PROXY_TABLE`: the zero-cost terms of
every cell at C = 16, N = 1, 16×16; :data:`RUNS` scored them), with the per-group NTK terms, ``features.lambda_min``
and, as a variant, the NTK family in the pools. Those ``cheap:`` formulas are reported too; the baseline
ones are also measured there. Every control formula is refitted on the development cells the same way.
Writes ``benchmarks/results/score_design.{md,csv,json}``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ntkscore.inputs.data import data_dir
from ntkscore.kernels import family
from ntkscore.scores import formula
from ntkscore.scores.aggregate import log_rank_sum
from ntkscore.study import evaluate, fit, rank
from ntkscore.study.benchmarks import canonical_keys

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
KERNEL_TABLE = RESULTS / "ntk_family_space.csv.gz"
PROXY_TABLE = RESULTS / "proxies_space.csv.gz"
REAL_TABLES = (RESULTS / "scores_300.csv.gz", RESULTS / "real_shape_holdout.scores.csv.gz")
REAL_PROXIES = RESULTS / "proxies_real.csv.gz"
RUNS = (
    "ntkscore rank --sample 6466 --sample-seed 1 --channels 8 --cells 1 --input-size 16 --batch-size 20 "
    "--no-proxies --kernels robust --family --out runs/family/space.csv",
    "ntkscore rank --sample 6466 --sample-seed 1 --kernels none --channels 16 --cells 1 --input-size 16 "
    "--out runs/space/proxies.csv",
    "gzip -c runs/family/space.csv > benchmarks/results/ntk_family_space.csv.gz; "
    "gzip -c runs/space/proxies.csv > benchmarks/results/proxies_space.csv.gz",
)
PGD8, CLEAN, ROBUST_CLEAN, AUTOATTACK = "val_pgd_8.0_acc", "test_acc", "val_acc", "autoattack"
RESIDUAL, RATIO = "robustness_residual", "pgd8/clean"
TARGETS = {PGD8: "PGD-8", CLEAN: "NB201 clean", AUTOATTACK: "AutoAttack", RESIDUAL: "robustness residual",
           RATIO: "PGD-8 / clean"}
ZERO_COST = ("zc.meco", "zc.jacov", "zc.naswot", "zc.synflow", "features.lambda_min", "params", "multiply_adds")
SPECTRAL = ("lambda_min", "lambda_max", "condition", "trace", "effective_rank", "bound")
GROUPS = ("stem", "stage1", "reduction1", "stage2", "reduction2", "stage3", "head")
NTK = tuple(f"{k}.{q}" for k in ("K", "K_rob", "K_all@0.5", "K_rob/cells") for q in SPECTRAL) + \
    tuple(f"K_rob/{g}.{q}" for g in GROUPS for q in ("trace_share", "lambda_min"))
FAMILY = tuple(f"{k}.{q}" for k in family.KERNELS for q in family.PROXIES + family.LAYER_AGGREGATES + family.DECILES)
ZERO_COST_REAL = ("zc.meco", "zc.jacov", "zc.naswot", "zc.synflow", "params", "multiply_adds")
NTK_REAL = tuple(f"{k}.{q}" for k in ("K", "K_rob", "K_all@0.5") for q in SPECTRAL)
"""The pools at the real shape: what every committed real-shape table has (and the whole-space table too, so the
baseline formulas can be measured there)."""
REAL_MAX_TERMS, REAL_MIN_GAIN = 4, 0.005
"""Fewer terms and a larger gain per term at the real shape: its development split holds ~100 cells."""
MIN_GAIN = 0.002


def load_whole_space(kernels: Path, proxies: Path) -> pd.DataFrame:
    k = rank.read_scores(kernels)  # older tables under current column names
    z = rank.read_scores(proxies)
    z = z[["arch"] + [c for c in z.columns if c.startswith(("zc.", "features."))]]
    return k.merge(z, on="arch", how="inner")


def with_targets(part: pd.DataFrame) -> pd.DataFrame:
    """The residual (within ``part``) and the PGD-8 / clean ratio as target columns."""
    return part.assign(**{RESIDUAL: evaluate.robustness_residual(part[PGD8], part[ROBUST_CLEAN]),
                          RATIO: part[PGD8] / part[ROBUST_CLEAN]})


def select(dev: pd.DataFrame, pool, target: str, ntk_terms=(), max_terms: int = 8, min_gain: float = MIN_GAIN
           ) -> tuple[list, list[str], list[str]]:
    """Forward selection on ``dev``, then the controls rule for each NTK term: ``(steps, chosen, dropped)``."""
    pool = [c for c in pool if c in dev and np.isfinite(formula.term(dev, c)).any()]
    steps = fit.forward_selection(dev, pool, dev[target], max_terms=max_terms, min_gain=min_gain)
    chosen = list(steps[-1][0]) if steps else []
    dropped = []
    for t in [c for c in chosen if c in ntk_terms]:
        with_it = fit.cross_validated_tau(dev, chosen, dev[target])
        without = [c for c in chosen if c != t]
        substituted = list(dict.fromkeys([("params" if c == t else c) for c in chosen]))
        controls = [fit.cross_validated_tau(dev, v, dev[target]) for v in (without, substituted) if v]
        if controls and with_it <= max(controls):
            chosen, dropped = without, dropped + [t]
    return steps, chosen, dropped


def controls_of(dev: pd.DataFrame, name: str, terms, target: str, ntk_terms) -> dict[str, formula.Formula]:
    """The formula over ``terms`` and, for each NTK term, the same refitted without it and with log #params in
    its place (all least squares on ``dev``)."""
    out = {name: fit.least_squares(dev, terms, dev[target], name)}
    for t in [c for c in terms if c in ntk_terms]:
        without = [c for c in terms if c != t]
        if without:
            out[f"{name} − {t}"] = fit.least_squares(dev, without, dev[target], f"{name} − {t}")
        swapped = list(dict.fromkeys("params" if c == t else c for c in terms))
        if swapped != without:
            out[f"{name}: params for {t}"] = fit.least_squares(dev, swapped, dev[target], f"{name}: params for {t}")
    return out


def aggregate(part: pd.DataFrame, terms) -> np.ndarray:
    """A rank aggregate Σ_t log(r_t/N) over ``part``'s cells (:func:`ntkscore.scores.aggregate.log_rank_sum`)."""
    return log_rank_sum([formula.term(part, t) for t in terms])


def ntk_term(part: pd.DataFrame) -> np.ndarray:
    """The per-cell NTK score that serves as the ``ntk`` term of the NTK rank aggregate:
    ``−log bound(K̃_ε / tr K̃_ε) + log #params = −log bound(K̃_ε) − ½ log tr K̃_ε + log #params``."""
    return (formula.term(part, "K_rob.bound") - 0.5 * formula.term(part, "K_rob.trace")
            + formula.term(part, "params"))


def steps_text(title: str, steps, dropped) -> list[str]:
    lines = [f"**{title}** (cross-validated τ on the development cells after each added term):", ""]
    lines += [f"{i + 1}. + `{terms[-1]}` → {tau:.3f}" for i, (terms, tau) in enumerate(steps)]
    if dropped:
        lines += ["", "Dropped by the controls rule (not better than without it or with log #params in its place): "
                  + ", ".join(f"`{d}`" for d in dropped)]
    return lines + [""]


def split(table: pd.DataFrame, root: Path, dev_keys) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``table`` joined with the benchmarks, restricted to the split's population: (development, test) cells."""
    joined, _ = evaluate.join_benchmarks(table, root / "nasrobbench201" / "cifar10.csv",
                                         root / "nb201" / "cifar10_clean_acc.csv")
    population = set(evaluate.benchmarked_keys(root))
    keys = canonical_keys(joined["arch"])
    joined = joined[[k in population for k in keys]].reset_index(drop=True)
    is_dev = np.array([k in dev_keys for k in canonical_keys(joined["arch"])])
    return with_targets(joined[is_dev]), with_targets(joined[~is_dev])


def design(dev: pd.DataFrame, zero_cost, ntk, family=(), prefix: str = "", **selection):
    """The protocol on ``dev``: ``(formulas, selections)`` — ``value`` and ``robustness`` with their controls,
    the zero-cost-only ``value`` and, with ``family``, both with the NTK family in the pool."""
    value_steps, value_terms, value_dropped = select(dev, zero_cost + ntk, PGD8, ntk, **selection)
    zc_steps, zc_terms, _ = select(dev, zero_cost, PGD8, **selection)
    rob_steps, rob_terms, _ = select(dev, ntk, RESIDUAL, **selection)
    formulas = {**controls_of(dev, prefix + "value", value_terms, PGD8, ntk),
                prefix + "value, zero-cost pool only": fit.least_squares(dev, zc_terms, dev[PGD8], "zc"),
                **controls_of(dev, prefix + "robustness", rob_terms, RESIDUAL, ntk)}
    selections = [(prefix + "value", value_steps, value_dropped), (prefix + "value, zero-cost pool only", zc_steps, []),
                  (prefix + "robustness", rob_steps, [])]
    if family:
        fam_steps, fam_terms, fam_dropped = select(dev, zero_cost + ntk + family, PGD8, ntk + family, **selection)
        robfam_steps, robfam_terms, _ = select(dev, ntk + family, RESIDUAL, **selection)
        formulas[prefix + "value, NTK family in the pool"] = fit.least_squares(dev, fam_terms, dev[PGD8], "fam")
        formulas[prefix + "robustness, NTK family in the pool"] = fit.least_squares(dev, robfam_terms, dev[RESIDUAL],
                                                                                   "robfam")
        selections += [(prefix + "value, NTK family in the pool", fam_steps, fam_dropped),
                       (prefix + "robustness, NTK family in the pool", robfam_steps, [])]
    return formulas, selections


def with_columns(part: pd.DataFrame, formulas) -> pd.DataFrame:
    """``part`` with each formula (where its metrics were scored) and the reference aggregates as columns."""
    cols = {}
    for n, f in formulas.items():
        try:
            values = f(part)
        except KeyError:
            continue
        cols[n] = np.where(part[list(f.weights)].notna().all(axis=1), values, np.nan) if f.weights else values
    cols["rank(params,jacobian,correlation)"] = aggregate(part, ("params", "zc.jacov", "zc.meco"))
    cols["rank(ntk,jacobian,correlation)"] = log_rank_sum(
        [ntk_term(part), formula.term(part, "zc.jacov"), formula.term(part, "zc.meco")])
    return part.assign(**cols)


def load_real_shape() -> pd.DataFrame:
    """The real-shape NTK tables of every kernel, with the real-shape zero-cost terms, one row per cell."""
    ntk = pd.concat([rank.read_scores(t) for t in REAL_TABLES]).drop_duplicates("arch")
    zc = rank.read_scores(REAL_PROXIES)
    return ntk.drop(columns=[c for c in ntk.columns if c.startswith("zc.")]).merge(
        zc[["arch"] + [c for c in zc.columns if c.startswith("zc.")]], on="arch", how="inner")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="data directory (default $NTKSCORE_DATA or ../shared/data)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples of τ's CI")
    p.add_argument("--out", default=str(RESULTS / "score_design.md"))
    p.add_argument("--development-only", action="store_true",
                   help="read no test cell: select and report on the development splits only")
    args = p.parse_args(argv)
    root = data_dir(args.data)
    dev_keys = evaluate.development_keys(root)
    real_dev, real_test = split(load_real_shape(), root, dev_keys)
    shipped, real_selections = design(real_dev, ZERO_COST_REAL, NTK_REAL, max_terms=REAL_MAX_TERMS,
                                      min_gain=REAL_MIN_GAIN)
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        {"value": shipped["value"].weights, "robustness": shipped["robustness"].weights}, indent=1) + "\n")
    whole = load_whole_space(KERNEL_TABLE, PROXY_TABLE)
    cheap_dev, cheap_test = split(whole, root, dev_keys)
    family_pool = tuple(c for c in FAMILY if c in cheap_dev)  # the quantities the committed table holds
    cheap, cheap_selections = design(cheap_dev, ZERO_COST, NTK, family_pool, prefix="cheap: ")
    if args.development_only:
        real_test, cheap_test = real_dev, cheap_dev
    both = {**{k: shipped[k] for k in ("value", "robustness")}, **cheap}
    def measure(part, formulas, n_boot):
        part = with_columns(part, formulas)
        return evaluate.correlate(part, [c for c in shown(formulas) if c in part], list(TARGETS), n_boot=n_boot)

    results = {"real shape, test": measure(real_test, shipped, args.bootstrap),
               "whole space, test": measure(cheap_test, both, args.bootstrap),
               "real shape, dev": measure(real_dev, shipped, 0), "whole space, dev": measure(cheap_dev, both, 0)}
    pd.concat([r.assign(split=k) for k, r in results.items()]).to_csv(Path(args.out).with_suffix(".csv"), index=False)
    lines = report(argv, whole, (real_dev, real_test, cheap_dev, cheap_test), results, shipped, cheap,
                   real_selections, cheap_selections, args.development_only)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} and its .csv/.json")
    return 0


def shown(formulas) -> list[str]:
    return list(formulas) + ["rank(params,jacobian,correlation)", "rank(ntk,jacobian,correlation)"] + \
        list(ZERO_COST[:5]) + ["baseline.params", "K.trace", "K.lambda_min", "K_rob.lambda_min", "K_rob.bound"]


def table(result: pd.DataFrame, names, targets) -> list[str]:
    head = "| score | cells | " + " | ".join(f"τ {TARGETS[t]}" for t in targets) + " | top-1% PGD-8 | " \
        "top-5% PGD-8 | top-1 pick's PGD-8 |"
    lines = [head, "|" + "---|" * (len(targets) + 5)]
    by = result.set_index(["score", "metric"])
    for n in names:
        if (n, PGD8) not in by.index:
            continue
        taus = []
        for t in targets:
            row = by.loc[(n, t)]
            ci = f" [{row.tau_lo:.2f}, {row.tau_hi:.2f}]" if np.isfinite(row.tau_lo) and t in (PGD8, RESIDUAL) else ""
            taus.append(f"{row.kendall_tau:.3f}{ci}")
        pgd = by.loc[(n, PGD8)]
        lines.append(f"| {n} | {pgd.n} | " + " | ".join(taus) + f" | {pgd['top1%']:.2f} | {pgd['top5%']:.2f} | "
                     f"{pgd.top1_acc:.3f} |")
    return lines


def goal_line(result: pd.DataFrame, name: str, target: str, goal: float, rivals) -> str:
    by = result[result.metric == target].set_index("score")["kendall_tau"]
    tau = by[name]
    best_rival = by[[r for r in rivals if r in by.index]].idxmax()
    verdict = "met" if tau >= goal and tau > by[best_rival] else "**not met**"
    return (f"- `{name}`: τ {TARGETS[target]} = {tau:.3f} (goal ≥ {goal:.2f}: {tau - goal:+.3f}); best rival "
            f"`{best_rival}` {by[best_rival]:.3f} ({tau - by[best_rival]:+.3f}) — {verdict}")


def report(argv, whole, parts, results, shipped, cheap, real_selections, cheap_selections, dev_only) -> list[str]:
    real_dev, real_test, cheap_dev, cheap_test = parts
    settings = {c.removeprefix("setting."): whole[c].iloc[0] for c in whole.columns if c.startswith("setting.")}
    test = "development (in-sample)" if dev_only else "test"
    clean_tau = evaluate.correlate(cheap_test, [ROBUST_CLEAN], [PGD8], n_boot=0).kendall_tau.iloc[0]
    lines = ["# The one-term linear baselines: `value` and `robustness`", "",
             "Command: `python benchmarks/score_design.py" + "".join(" " + a for a in (argv or [])) + "`", "",
             "Targets: NAS-RobBench-201 CIFAR-10 PGD-8 and AutoAttack accuracy (adversarially trained), NB201 clean "
             "test accuracy (standard training), the **robustness residual** (the PGD-8 rank minus a least-squares "
             "line on the NAS-RobBench-201 clean-accuracy rank, within each split: which cells keep more of their "
             f"accuracy under attack; τ(clean, PGD-8) = {clean_tau:.3f} on the whole-space test cells) and "
             "PGD-8 / clean. Every score is oriented larger = better; bracketed: bootstrap 95% CI of τ. "
             "`A − t` is the formula `A` refitted without its term `t`, `A: params for t` refitted with log #params "
             "in `t`'s place: a term carries signal only where `A` beats both.", "",
             "## The baseline formulas (fitted at the real shape)", "",
             f"Fitted on the {len(real_dev)} development cells of the committed real-shape tables (C16 N5, 32×32, "
             "B = 16, PGD-7 ε = 8/255; zero-cost terms on 64 images: " +
             ", ".join(f"`{t.name}`" for t in REAL_TABLES + (REAL_PROXIES,)) + f"), at most {REAL_MAX_TERMS} terms "
             f"with a cross-validated gain ≥ {REAL_MIN_GAIN} each, from the zero-cost terms, #params, FLOPs and the "
             "spectral quantities of K, K̃_ε and K_all(0.5):", ""]
    for title, steps, dropped in real_selections:
        lines += steps_text(title, steps, dropped)
    lines += [f"- `value` = {shipped['value'].formula(3)}", f"- `robustness` = {shipped['robustness'].formula(3)}", "",
              f"## Real shape, {test} cells ({len(real_test)})", ""]
    lines += table(results[f"real shape, {'dev' if dev_only else 'test'}"], shown(shipped), list(TARGETS))
    whole_result = results[f"whole space, {'dev' if dev_only else 'test'}"]
    zero_cost = list(ZERO_COST[:5]) + ["baseline.params"]
    lines += ["", "## Goals", "",
              "On the whole-space test split (the baseline formulas on the cheap-settings metrics below, a transfer: "
              "they were fitted at the real shape):", "",
              goal_line(whole_result, "value", PGD8, 0.80, ["zc.meco", "rank(params,jacobian,correlation)"]),
              goal_line(whole_result, "robustness", RESIDUAL, 0.50, zero_cost + ["value"]), "",
              f"On the real-shape {test} cells:", "",
              goal_line(results[f"real shape, {'dev' if dev_only else 'test'}"], "value", PGD8, 0.80,
                        ["zc.meco", "rank(params,jacobian,correlation)"]),
              goal_line(results[f"real shape, {'dev' if dev_only else 'test'}"], "robustness", RESIDUAL, 0.50,
                        zero_cost + ["value"]), "",
              "## The same protocol at the cheap settings over the whole space", "",
              f"`{KERNEL_TABLE.name}`: NTK quantities of {len(pd.read_csv(KERNEL_TABLE))} cells at "
              f"C{settings['channels']} N{settings['cells_per_stage']}, {settings['input_size']}×"
              f"{settings['input_size']}, B = {settings['batch_size']}, kernels {settings['kernels']}, with the NTK "
              f"family; `{PROXY_TABLE.name}`: zero-cost terms at C16 N1, 16×16, 64 images. {len(cheap_dev)} "
              f"development and {len(cheap_test)} test cells. Scored with:", "", *[f"    {r}" for r in RUNS], "",
              f"Pools: the zero-cost terms with `features.lambda_min`; the NTK quantities with the per-group "
              f"`K_rob/<group>` terms; at most 8 terms, gain ≥ {MIN_GAIN}. These `cheap:` formulas: "
              "a formula fitted at one shape does not carry over to another (the transfer rows below).", ""]
    for title, steps, dropped in cheap_selections:
        lines += steps_text(title, steps, dropped)
    lines += [f"- `cheap: value` = {cheap['cheap: value'].formula(3)}",
              f"- `cheap: robustness` = {cheap['cheap: robustness'].formula(3)}", "",
              f"### Whole space, {test} cells ({len(cheap_test)}); `value` and `robustness` are the baseline formulas",
              ""]
    lines += table(whole_result, shown({**{k: shipped[k] for k in ("value", "robustness")}, **cheap}), list(TARGETS))
    return lines


if __name__ == "__main__":
    sys.exit(main())
