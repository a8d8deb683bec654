"""Recorded study (issue #6): which NTK quantity tracks NAS-RobBench-201 robustness, and the default score chosen
on a development split of the whole NB201 space.

    python benchmarks/robust_score.py --run      # score (resumable), then write the report; ~2 h on 2 CPU cores
    python benchmarks/robust_score.py            # the report only, from the score files already in runs/space/
    python benchmarks/robust_score.py --real benchmarks/results/scores_300.csv.gz \
        --real-proxies benchmarks/results/proxies_real.csv.gz
                                                 # the recorded report (+ the committed real-shape tables)
    python benchmarks/robust_score.py --keep-default --proxies runs/space_real/proxies_seed0.csv \
        --out runs/robust_score_real_proxies.md
                                                 # the default with its zero-cost terms at the real shape, on the
                                                 # cells that file has (`ntkscore rank --all --kernels none`)

``--run`` first scores, with ``ntkscore rank`` at the cheap settings :data:`CHEAP` (C = 8, N = 1, 16×16 images,
B = 20, PGD-7 at ε = 8/255, all five kernels), all 6466 unique cells (``runs/space/seed0.csv``), then all of them
again with another seed (``seed1.csv``), and a seeded 10% sample under each other variant of :data:`VARIANTS`
(B = 10, ε = 4/255, BN in eval mode), and the zero-cost terms (:data:`PROXY_SETTINGS`) of every cell with seeds 0
and 1 (``proxies_seed0.csv``, ``proxies_seed1.csv``; files from before session 6 lack ``zc.meco``: move them away
and rerun, as a run resumes past the cells a file already has),
for the stability and factor tables. ``--real`` adds a transfer check against a file scored at the real shape.

Protocol. The candidates are the handful of fixed formulas in :data:`ntkscore.composite.CANDIDATES` and the rank
aggregates of :data:`ntkscore.composite.AGGREGATES` (computed over all scored cells; nothing is fitted). Round 1
(session 3) was fixed before any whole-space score existed; round 2 (session 4) after round 1's results were seen. The cells are split once, by a seeded permutation of their isomorphism keys, into a 20% development set
and an 80% test set; the candidate with the highest Kendall τ against PGD-8 accuracy on the development set becomes
the default, and every number in the report's main table is then measured on the test set (and, for reference, on
all cells). All scores, #params, FLOPs and the published proxies are compared on the same cells (those in the proxy
table). Writes ``benchmarks/results/robust_score.{md,csv}``.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from ntkscore import composite, evaluate
from ntkscore.benchmarks import canonical_keys
from ntkscore.cli import main as ntkscore_main
from ntkscore.data import data_dir

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"test_acc": "NB201 clean", "val_pgd_8.0_acc": "PGD-8", "autoattack": "AutoAttack"}
SELECT_ON = "val_pgd_8.0_acc"
KERNELS = ("K", "K_rob", "K_rob2", "K_all@0.5", "K_all@1", "K_rob_all@0.5", "K_rob_all@1")
CHEAP = ["--channels", "8", "--cells", "1", "--input-size", "16", "--batch-size", "20", "--no-proxies"]
"""Chosen by ``benchmarks/cheap_settings.py`` (transfer to the real shape, no accuracies); session 3 used B = 10."""
VARIANTS = {"seed1": ["--seed", "1"], "b10": ["--batch-size", "10"], "eps4": ["--eps", "4", "--step-size", "1"],
            "bn_identity": ["--bn-mode", "identity"]}
SAMPLE = ["--sample", "647", "--sample-seed", "1"]
PROXY_SETTINGS = ["--kernels", "none", "--channels", "16", "--cells", "1", "--input-size", "16"]
"""The zero-cost terms (:mod:`ntkscore.proxies`), scored in their own run: chosen by ``benchmarks/proxy_settings.py``
(transfer to the real shape, no accuracies)."""
PROXY_SEEDS = {"seed0": ["--seed", "0"], "seed1": ["--seed", "1"]}
WHOLE_SPACE_VARIANTS = ("seed1",)
"""Variants scored on every cell, not just the sample: whole-space seed stability and two-initialisation averages."""
QUANTITIES = ("lambda_min", "condition", "trace", "bound", "effective_rank")


def with_candidates(scores: pd.DataFrame) -> pd.DataFrame:
    """The score table with every candidate as a column, computed from its columns: the per-cell composites, and
    the rank aggregates over all the cells of this table (the population a user of ``ntkscore rank`` would rank)."""
    scores = scores.assign(**composite.composite_scores(scores))
    return scores.assign(**composite.aggregate_scores(scores))


def candidate_names() -> list[str]:
    return [composite.PREFIX + n for n in composite.CANDIDATES] + \
        [composite.AGGREGATE_PREFIX + n for n in composite.AGGREGATES if n not in composite.ABLATIONS]


def with_proxies(scores: pd.DataFrame, path) -> pd.DataFrame:
    """``scores`` with the ``zc.*`` columns of the proxy run ``path`` (same cells, matched by ``arch``)."""
    if path is None or not Path(path).exists():
        return scores
    zc = pd.read_csv(path)
    zc = zc[["arch"] + [c for c in zc.columns if c.startswith("zc.")]]
    return scores.drop(columns=[c for c in scores.columns if c.startswith("zc.")]).merge(zc, on="arch", how="left")


ROUND_ONE = ("paper", "robust_lambda_min", "robust_condition", "robust_bound", "robust_lambda_min+params",
             "robust_bound+params")
"""The candidates fixed in session 3 before any whole-space score existed; the others were added in session 4."""


ROUND_FOUR_TERMS = ("ntk", "pattern", "jacobian", "paths")


def round_of(candidate: str) -> int:
    """1 and 2 as above; 3: the cell-kernel candidates; 4 (session 5): aggregates of the NTK score with the
    zero-cost factors of :mod:`ntkscore.proxies`; 5 (session 6): those with the feature-correlation term."""
    name = candidate.removeprefix(composite.PREFIX).removeprefix(composite.AGGREGATE_PREFIX)
    if name in ROUND_ONE:
        return 1
    if name.startswith("cells_"):
        return 3
    terms = composite.AGGREGATES.get(name, ())
    if "correlation" in terms:
        return 5
    return 4 if any(t in ROUND_FOUR_TERMS for t in terms) else 2


def shown(path) -> str:
    """``path`` relative to the repository when it is inside it (for the report's text)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def proxy_compute(path: Path) -> str:
    """The zero-cost run's settings and cost, for the report's compute line."""
    if not path.exists():
        return ""
    zc = pd.read_csv(path)
    seconds = pd.to_numeric(zc["seconds"], errors="coerce")
    shape = {c.removeprefix("setting."): zc[c].iloc[0] for c in ("setting.channels", "setting.cells_per_stage",
                                                                   "setting.input_size")}
    return (f" Zero-cost terms ({shown(path)}, C{shape['channels']} N{shape['cells_per_stage']}, input size "
            f"{shape['input_size'] if shape['input_size'] == shape['input_size'] else 32}, 64 images): "
            f"{seconds.median():.3f} s per cell (median), {seconds.sum() / 60:.1f} min in all.")


def benchmark_join(scores: pd.DataFrame, root: Path, proxies: bool = False):
    """``scores`` joined with NAS-RobBench-201, NB201 clean accuracy (and the proxy table) under ``root``."""
    return evaluate.join_benchmarks(scores, root / "nasrobbench201" / "cifar10.csv",
                                    root / "nb201" / "cifar10_clean_acc.csv",
                                    root / "zero_cost" / "nb201_cifar10_proxies.csv" if proxies else None)


def split(keys, dev_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the development cells: a seeded permutation of the sorted isomorphism keys."""
    order = np.random.default_rng(seed).permutation(sorted(set(keys)))
    dev = set(order[: int(round(dev_fraction * len(order)))])
    return np.array([k in dev for k in keys])


def tau(table: pd.DataFrame, column: str, target: str) -> float:
    return float(kendalltau(evaluate.oriented(column, table[column]), table[target]).statistic)


def stability(a: pd.DataFrame, b: pd.DataFrame, columns) -> pd.DataFrame:
    """Kendall τ between two score files (e.g. two seeds) on their common cells, per column."""
    a = a.assign(_key=canonical_keys(a["arch"])).drop_duplicates("_key").set_index("_key")
    b = b.assign(_key=canonical_keys(b["arch"])).drop_duplicates("_key").set_index("_key")
    common = a.index.intersection(b.index)
    rows = [{"score": c, "n": len(common), "tau_between": kendalltau(a.loc[common, c], b.loc[common, c]).statistic}
            for c in columns if c in a and c in b]
    return pd.DataFrame(rows)


FACTOR_COLUMNS = ("composite.", "aggregate.", "K.lambda_min", "K_rob.lambda_min", "K_rob2.lambda_min", "K_rob.bound", "K.trace",
                  "K_rob.effective_rank", "K_all@0.5.lambda_min", "K_rob_all@0.5.lambda_min", "K_rob.condition")


def factor_table(base: pd.DataFrame, variants: dict[str, str], columns, root: Path) -> list[str]:
    """τ against PGD-8 of the main quantities under each variant's settings, on the cells common to all files;
    ``mean of seeds`` averages the log of each positive quantity over the base and every ``seed*`` variant."""
    tables = {"base": base} | {label: with_candidates(pd.read_csv(path)) for label, path in variants.items()}
    keyed = {k: t.assign(_key=canonical_keys(t["arch"])).drop_duplicates("_key").set_index("_key")
             for k, t in tables.items()}
    common = sorted(set.intersection(*(set(t.index) for t in keyed.values())))
    columns = [c for c in columns if c.startswith(FACTOR_COLUMNS) and all(c in t for t in keyed.values())]
    seeds = [k for k in keyed if k == "base" or k.startswith("seed")]
    if len(seeds) > 1:
        stacked = np.stack([evaluate.oriented(c, keyed[k].loc[common, c]) for k in seeds for c in columns])
        stacked = stacked.reshape(len(seeds), len(columns), len(common))
        positive = (stacked > 0).all(axis=(0, 2))
        mean = np.where(positive[:, None], np.log(np.abs(stacked)).mean(0), stacked.mean(0))
        keyed["mean of seeds"] = pd.DataFrame(mean.T, index=common, columns=columns).assign(
            arch=keyed["base"].loc[common, "arch"])
    target = benchmark_join(keyed["base"].loc[common].reset_index(drop=True), root)[0]
    target = target.assign(_key=canonical_keys(target["arch"])).set_index("_key")[SELECT_ON]
    lines = ["", f"## Factors: τ against PGD-8 on the {len(common)} cells scored under every setting", "",
             "Columns: the base run and each variant (" + "; ".join(f"{k} = {shown(v)}" for k, v in variants.items()) +
             ")" + ("; *mean of seeds* averages each quantity's log over the seeds." if len(seeds) > 1 else "."), "",
             "| score | " + " | ".join(keyed) + " |", "|---|" + "---|" * len(keyed)]
    for c in columns:
        taus = []
        for t in keyed.values():
            values = evaluate.oriented(c, t.loc[target.index, c]) if t is not keyed.get("mean of seeds") \
                else t.loc[target.index, c].to_numpy()
            taus.append(f"{kendalltau(values, target.to_numpy()).statistic:.3f}")
        lines.append(f"| {c} | " + " | ".join(taus) + " |")
    return lines


def averaging_table(scores: pd.DataFrame, other: pd.DataFrame, joined: pd.DataFrame, dev: np.ndarray,
                    columns) -> list[str]:
    """Test-split τ against PGD-8 of each column from one initialisation, the other, and their mean
    (an average of log-space candidates is the log of the geometric mean of their factors)."""
    test_keys = set(canonical_keys(joined["arch"][~dev]))
    target = joined.assign(_key=canonical_keys(joined["arch"])).set_index("_key")[SELECT_ON]
    a, b = (t.assign(_key=canonical_keys(t["arch"])).drop_duplicates("_key").set_index("_key") for t in (scores, other))
    common = sorted(test_keys & set(a.index) & set(b.index))
    lines = ["", f"## Averaging two initialisations ({len(common)} test cells scored with both seeds)", "",
             "| score | seed 0 | seed 1 | mean of both | τ between seeds |", "|---|---|---|---|---|"]
    for c in columns:
        if c not in a or c not in b:
            continue
        x, y = (evaluate.oriented(c, t.loc[common, c]) for t in (a, b))
        taus = [kendalltau(v, target[common]).statistic for v in (x, y, (x + y) / 2)]
        lines.append(f"| {c} | " + " | ".join(f"{t:.3f}" for t in taus) + f" | {kendalltau(x, y).statistic:.3f} |")
    return lines


def table_text(result: pd.DataFrame, order) -> list[str]:
    lines = ["| score | " + " | ".join(f"{TARGETS[m]} τ [95% CI] | ρ | top-1% | top-5%" for m in TARGETS) + " |",
             "|---|" + "---|---|---|---|" * len(TARGETS)]
    for name in order:
        cells = []
        for metric in TARGETS:
            r = result[(result.score == name) & (result.metric == metric)].iloc[0]
            cells.append(f"{r.kendall_tau:.3f} [{r.tau_lo:.2f}, {r.tau_hi:.2f}] | {r.spearman_rho:.3f} | "
                         f"{r['top1%']:.2f} | {r['top5%']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="store_true", help="score the space and the variants first (resumable)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "space"), help="where the score files are")
    p.add_argument("--scores", help="the whole-space score file (default RUNS/seed0.csv)")
    p.add_argument("--stability", help="a second score file (another seed) for seed-to-seed τ (default RUNS/seed1.csv)")
    p.add_argument("--real", help="score file at the real shape (C16 N5) for a transfer check")
    p.add_argument("--real-proxies", help="the zero-cost terms of the --real cells at the real shape")
    p.add_argument("--proxies", help="the zero-cost terms of the whole space (default RUNS/proxies_seed0.csv; another "
                   "file, e.g. scored at the real shape, also turns off the seed comparison unless --stability)")
    p.add_argument("--variants", nargs="+", default=[], metavar="LABEL=CSV",
                   help="score files of the same cells under other settings (seed, B, ε, BN mode) for the factor table")
    p.add_argument("--keep-default", action="store_true",
                   help="report the library's default (composite.DEFAULT) instead of choosing again on dev")
    p.add_argument("--data", default=None)
    p.add_argument("--dev-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=300)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "robust_score.md"))
    args = p.parse_args(argv)
    runs = Path(args.runs)
    if args.run:
        data = ["--data", args.data] if args.data else []
        for label, extra in {"seed0": None, **VARIANTS}.items():
            which = ["--all"] if extra is None or label in WHOLE_SPACE_VARIANTS else SAMPLE
            rc = ntkscore_main(["rank", *which, *CHEAP, *(extra or []), *data, "--out", str(runs / f"{label}.csv")])
            if rc:
                return rc
        for label, extra in PROXY_SEEDS.items():
            rc = ntkscore_main(["rank", "--all", *PROXY_SETTINGS, *extra, *data,
                                "--out", str(runs / f"proxies_{label}.csv")])
            if rc:
                return rc
    found = {k: p for k in ("seed0", *VARIANTS) for p in (runs / f"{k}.csv", runs / f"{k}.csv.gz") if p.exists()}
    args.scores = args.scores or str(found.get("seed0", runs / "seed0.csv"))
    if not args.proxies:  # seed 1 has the cheap zero-cost terms: compare seeds only with the default ones
        args.stability = args.stability or (str(found["seed1"]) if "seed1" in found else None)
    args.variants = args.variants or [f"{k}={found[k]}" for k in VARIANTS if k in found]
    root = data_dir(args.data)
    proxies = Path(args.proxies) if args.proxies else runs / "proxies_seed0.csv"
    table = pd.read_csv(args.scores)
    full, baselines = benchmark_join(table, root, proxies=True)
    full_keys = canonical_keys(full.dropna(subset=baselines + list(TARGETS))["arch"])
    dev_keys = {k for k, d in zip(full_keys, split(full_keys, args.dev_fraction, args.split_seed)) if d}
    paired = None
    if args.proxies:  # only the cells that file has scored (a run may be partial); the same cells, cheap terms
        table = table[table["arch"].isin(set(pd.read_csv(proxies)["arch"]))].reset_index(drop=True)
        paired = with_candidates(with_proxies(table, runs / "proxies_seed0.csv"))
    scores = with_candidates(with_proxies(table, proxies))
    joined, baselines = benchmark_join(scores, root, proxies=True)
    n_unique = len(scores)
    joined = joined.dropna(subset=baselines + list(TARGETS))
    candidates = [c for c in candidate_names() if c in joined]  # round 3 needs K_rob/cells.*: not in older tables
    theory = [f"{k}.{q}" for q in QUANTITIES for k in KERNELS if f"{k}.{q}" in joined]
    dev = np.array([k in dev_keys for k in canonical_keys(joined["arch"])])  # the split of all cells, always
    choice = pd.DataFrame([{"candidate": c, "dev_tau_pgd8": tau(joined[dev], c, SELECT_ON)} for c in candidates])
    chosen = choice.sort_values("dev_tau_pgd8", ascending=False).iloc[0]["candidate"]
    if args.keep_default:  # a measurement under other settings: the library's default, not a new choice
        chosen = composite.DEFAULT
    paper = composite.PREFIX + "paper"
    groups = [c for c in joined.columns if "/" in c and c.endswith((".trace_share", ".lambda_min"))]
    native = [c for c in joined.columns if c.startswith("zc.")] + \
        [composite.AGGREGATE_PREFIX + n for n in composite.ABLATIONS if composite.AGGREGATE_PREFIX + n in joined]
    columns = candidates + native + [c for c in theory if c not in ("K_rob_all@1.lambda_min",)] + baselines + groups
    parts = {"test": joined[~dev], "all": joined}
    results = {name: evaluate.correlate(part, columns, list(TARGETS), n_boot=args.bootstrap, seed=0)
               for name, part in parts.items()}
    pd.concat([r.assign(split=n) for n, r in results.items()]).to_csv(Path(args.out).with_suffix(".csv"), index=False)
    test = results["test"]
    by_pgd = test[test.metric == SELECT_ON].set_index("score")["kendall_tau"].sort_values(ascending=False)
    by_pgd_groups, by_pgd = by_pgd[by_pgd.index.isin(groups)], by_pgd[~by_pgd.index.isin(groups)]

    settings = {c.removeprefix("setting."): scores[c].iloc[0] for c in scores.columns if c.startswith("setting.")}
    seconds = pd.to_numeric(scores["seconds"], errors="coerce")
    lines = [f"# A robustness score for NAS-RobBench-201 (issue #6): {n_unique} unique cells scored", "",
             "Command: `python benchmarks/robust_score.py " + " ".join(argv if argv is not None else sys.argv[1:]) + "`",
             "", f"Scored with: {', '.join(f'{k}={v}' for k, v in settings.items() if k not in ('primary',))}.",
             f"Compute: {seconds.median():.2f} s per cell (median), {seconds.sum() / 3600:.2f} h in all "
             f"(`seconds` column of {shown(args.scores)}; device: "
             f"{scores['device'].iloc[0] if 'device' in scores else 'see the run notes'})." + proxy_compute(proxies), "",
             f"{len(joined)} cells have every benchmark metric, #params, FLOPs and the published proxies; the "
             f"development split holds {int(dev.sum())} of them (seed {args.split_seed}), the test split "
             f"{int((~dev).sum())}.", "", "## Choice among the candidates (development split only)", "",
             "Round 1: fixed in session 3 before any whole-space score existed. Round 2: added in session 4, after "
             "round 1's development *and test* numbers had been seen (so round 2 is not blind to the test split; "
             "see the README). Round 3: cell-kernel candidates (session 4, judged on fresh real-shape cells). "
             "Round 4 (session 5): rank aggregates of the NTK score with the zero-cost factors of "
             "`ntkscore.proxies`, fixed after a look at the *development* split only (published proxies' "
             "aggregates there). Round 5 (session 6): the same aggregates with the feature-correlation term "
             "`zc.meco`, fixed after a look at 500 *development* cells. The test split was not looked at before "
             "the choice below.", "",
             "| candidate | round | τ vs PGD-8 on dev |", "|---|---|---|"]
    lines += [f"| {r.candidate}{' **(chosen)**' if r.candidate == chosen else ''} | {round_of(r.candidate)} | "
              f"{r.dev_tau_pgd8:.3f} |" for r in choice.itertuples()]
    t_default, t_paper = by_pgd[chosen], by_pgd[paper]
    best_other = by_pgd.drop(candidates).index[0]
    everyone = results["all"]
    t_all = everyone[(everyone.score == chosen) & (everyone.metric == SELECT_ON)].kendall_tau.iloc[0]
    lines += ["", "## Test split (80%): default, the paper's score, baselines and proxies", "",
              f"Default **{chosen}**: τ = {t_default:.3f} against PGD-8 on the test split; the paper's score "
              f"(λ_min of K̃_all at β = 1) τ = {t_paper:.3f} → the default is "
              f"{'better' if t_default > t_paper else 'not better'} by {t_default - t_paper:+.3f}. "
              f"Best non-candidate column: {best_other} (τ = {by_pgd[best_other]:.3f}). "
              f"Goal τ ≥ 0.75: {'reached' if t_default >= 0.75 else 'not reached'} on the test split; over all "
              f"{len(joined)} cells τ = {t_all:.3f} ({'reached' if t_all >= 0.75 else 'not reached'}).", ""]
    params_tau = {m: test[(test.score == "baseline.params") & (test.metric == m)].kendall_tau.iloc[0] for m in TARGETS}
    default_tau = {m: test[(test.score == chosen) & (test.metric == m)].kendall_tau.iloc[0] for m in TARGETS}
    lines += ["Against #params on the test split: " + "; ".join(
        f"{TARGETS[m]} {default_tau[m]:.3f} vs {params_tau[m]:.3f} ({'beats' if default_tau[m] > params_tau[m] else 'does not beat'})"
        for m in TARGETS) + ".", ""]
    published = [c for c in baselines if c.startswith("proxy.")]
    best = {m: test[(test.metric == m) & test.score.isin(published)].sort_values("kendall_tau").iloc[-1] for m in TARGETS}
    lines += ["Against the best published zero-cost proxy on each metric (test split): " + "; ".join(
        f"{TARGETS[m]} {default_tau[m]:.3f} vs {best[m].score} {best[m].kendall_tau:.3f} "
        f"({'beats' if default_tau[m] > best[m].kendall_tau else 'does not beat'})" for m in TARGETS) + ".", ""]
    if paired is not None:
        cheap = benchmark_join(paired, root, proxies=True)[0].dropna(subset=baselines + list(TARGETS))
        cheap = cheap[~np.array([k in dev_keys for k in canonical_keys(cheap["arch"])])]
        lines += [f"The same {len(cheap)} test cells with the cheap zero-cost terms ({shown(runs / 'proxies_seed0.csv')}, "
                  "aggregates ranked within the same cells): " + "; ".join(
                      f"{TARGETS[m]} {tau(cheap, chosen, m):.3f}" for m in TARGETS) + ".", ""]
    lines += table_text(test, list(by_pgd.index))
    all_cells = results["all"]
    order = all_cells[all_cells.metric == SELECT_ON].sort_values("kendall_tau", ascending=False).score
    order = [c for c in order if c not in groups]
    lines += ["", f"## All {len(joined)} cells (development + test)", ""] + table_text(all_cells, order)
    if groups:
        lines += ["", "## Per-group contributions to K̃_ε (test split)", "",
                  "K̃_ε = Σ_g K̃_ε,g over the parameter groups of the network (stem, the three stages of cells, the "
                  "two residual reduction blocks, the classifier head); `trace_share` = tr K̃_ε,g / tr K̃_ε, "
                  "`lambda_min` = λ_min(K̃_ε,g).", ""] + table_text(test, list(by_pgd_groups.index))
    everything = with_candidates(benchmark_join(scores, root)[0]).dropna(subset=[SELECT_ON])
    lines += ["", f"Default over all {len(everything)} scored cells with PGD-8 accuracy (proxies not required): "
              f"τ = {tau(everything, chosen, SELECT_ON):.3f}; #params τ = {tau(everything, 'baseline.params', SELECT_ON):.3f}."]
    if args.stability:
        other = with_candidates(with_proxies(pd.read_csv(args.stability), runs / "proxies_seed1.csv"))
        stab = stability(scores, other, candidates + theory)
        lines += ["", "## Seed-to-seed stability", "",
                  f"Kendall τ between the scores of {shown(args.scores)} and {shown(args.stability)} (another initialisation, "
                  f"batch and attack noise) on their {int(stab.n.iloc[0])} common cells:", "",
                  "| score | τ between seeds |", "|---|---|"]
        lines += [f"| {r.score} | {r.tau_between:.3f} |" for r in stab.sort_values("tau_between", ascending=False).itertuples()]
        lines += averaging_table(scores, other, joined, dev, candidates + ["K.lambda_min", "K_rob.lambda_min",
                                                                           "K_rob.bound", "K_rob.condition"])
    if args.real:
        real = with_candidates(with_proxies(pd.read_csv(args.real), args.real_proxies))
        stab = stability(scores, real, candidates + theory)
        real_joined = benchmark_join(real, root)[0]
        lines += ["", "## Transfer to the real shape (C16 N5, 32×32, B = 16)", "",
                  f"On the {len(real_joined)} cells of {shown(args.real)}: the default's τ against PGD-8 there is "
                  f"{tau(real_joined, chosen, SELECT_ON):.3f} (the paper's score: {tau(real_joined, paper, SELECT_ON):.3f}, "
                  f"#params: {tau(real_joined, 'baseline.params', SELECT_ON):.3f}). Kendall τ between the "
                  "cheap and the real-shape value of each score on the common cells, and each score's τ against "
                  "PGD-8 at the real shape:", "",
                  "| score | τ cheap vs real | τ vs PGD-8, real shape |", "|---|---|---|"]
        lines += [f"| {r.score} | {r.tau_between:.3f} | {tau(real_joined, r.score, SELECT_ON):.3f} |"
                  for r in stab.sort_values("tau_between", ascending=False).itertuples()]
    if args.variants:
        lines += factor_table(scores, dict(v.split("=", 1) for v in args.variants), candidates + theory, root)
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
