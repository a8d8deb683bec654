"""Training-free search: constraints, the Pareto front, resuming through the rank file, a short live search."""

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_SETTINGS

from ntkscore import ScoreSettings, search
from ntkscore.cell import cost
from ntkscore.cell.space import Arch
from ntkscore.study.search import TARGET, Constraints, SearchResult, evolution, parse_quantity, plot_search, run_search


class CountingEvaluator:
    """A synthetic landscape: value = the number of nor_conv_3x3 edges + a small cell-specific term, robustness its
    negative; each new cell costs one 'second'."""

    def __init__(self):
        self.spent, self.rows = 0.0, {}

    def score(self, archs):
        out = []
        for a in archs:
            key = a.to_string()
            if key not in self.rows:
                self.spent += 1.0
                v = sum(o == 3 for o in a.ops) + 1e-3 * sum(a.ops)
                self.rows[key] = {"arch": key, "value": v, "robustness": -v + 1e-2 * (a.ops[0] == 4)}
            out.append(self.rows[key])
        return out


@pytest.mark.parametrize("strategy", ["random", "evolution", "coarse_to_fine"])
def test_constraints_are_respected(strategy):
    limit = Constraints(max_params=0.5e6, max_flops=60e6)
    result = run_search(strategy, "value", 80, CountingEvaluator(), CountingEvaluator(), limit, seed=1)
    assert len(result.ranked()) > 0
    for arch in result.table["arch"]:
        a = Arch.from_string(arch)
        assert cost.num_params(a, TARGET) <= 0.5e6 and cost.flops(a, TARGET) <= 60e6
    with pytest.raises(ValueError, match="no cell satisfies"):
        run_search("random", "value", 10, CountingEvaluator(), constraints=Constraints(max_params=1.0))


def test_evolution_climbs_where_random_search_wanders():
    budget = 150
    evolved = run_search("evolution", "value", budget, CountingEvaluator(), seed=0).top(1)["value"].iloc[0]
    sampled = run_search("random", "value", budget, CountingEvaluator(), seed=0).top(1)["value"].iloc[0]
    assert evolved >= 6 > sampled  # all six edges nor_conv_3x3 is the optimum of the landscape


def test_the_front_is_non_dominated_and_complete(tmp_path):
    result = run_search("random", "both", 300, CountingEvaluator(), seed=2)
    assert plot_search(result, tmp_path / "search.png").stat().st_size > 10_000
    final, front = result.ranked(), result.front()
    v = final[["value", "robustness"]].to_numpy()
    on_front = set(front["arch"])
    for arch, (a, b) in zip(final["arch"], v):
        dominated = np.any((v[:, 0] >= a) & (v[:, 1] >= b) & ((v[:, 0] > a) | (v[:, 1] > b)))
        assert dominated != (arch in on_front), arch


def test_parse_quantity():
    assert parse_quantity("10m", {"s": 1, "m": 60, "h": 3600}, "--budget") == 600
    assert parse_quantity("0.5M", {"k": 1e3, "M": 1e6}, "--max-params") == 5e5
    with pytest.raises(ValueError, match="--budget: expected a number"):
        parse_quantity("ten", {"s": 1}, "--budget")


def _predictor_at(settings):
    """A learned ``value`` fitted at ``settings`` on a synthetic rank table (a search needs its objective there)."""
    from dataclasses import asdict

    from ntkscore.study import learn

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"zc.meco": rng.normal(size=40), "K.trace": rng.uniform(1, 2, 40)})
    return learn.fit_predictor(table, table["zc.meco"] + table["K.trace"], ["zc.meco", "K.trace"], "value",
                               "synthetic", asdict(settings), folds=0)


def test_a_search_by_a_score_that_is_not_computed_is_refused_before_it_starts(tmp_path):
    settings = ScoreSettings(**TINY_SETTINGS)
    with pytest.raises(ValueError, match="cannot search by value: 'value' was fitted on features computed at other "
                                         "settings"):
        search("value", 30, settings=settings, out=tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


def test_a_short_live_search_returns_k_cells_and_resumes_without_rescoring(tmp_path):
    settings = ScoreSettings(**TINY_SETTINGS)
    out = tmp_path / "search.csv"
    mine = [_predictor_at(settings)]
    first = search("value", 30, settings=settings, out=out, seed=0, predictors=mine)
    assert len(first.top(5)) == 5 and first.seconds < 60
    scored = pd.read_csv(out)
    assert len(scored) == len(first.ranked()) and not scored["arch"].duplicated().any()
    again = search("value", 10, strategy="random", settings=settings, out=out, seed=0, predictors=mine)
    rows = pd.read_csv(out)
    assert set(scored["arch"]) <= set(rows["arch"]) and not rows["arch"].duplicated().any()
    kept = rows.set_index("arch").loc[scored["arch"], "value"].to_numpy()
    np.testing.assert_array_equal(kept, scored["value"].to_numpy())  # nothing lost, nothing rescored
    assert isinstance(again, SearchResult)


def test_evolution_stops_when_no_new_admissible_cell_appears():
    limit = Constraints(max_params=cost.num_params(Arch((0,) * 6), TARGET))  # only parameter-free cells
    rows = evolution(CountingEvaluator(), 10_000, np.random.default_rng(0), limit, "value")
    assert 0 < len(rows) == len({r["arch"] for r in rows})


def test_dead_cells_are_clipped_from_the_plot_and_the_benchmark_join_keeps_one_cell_column(tmp_path, data_dir,
                                                                                         monkeypatch):
    import matplotlib.axes

    from ntkscore.study.search import with_benchmark

    class WithDeadCells(CountingEvaluator):  # a few cells far below the rest, as dead cells score
        def score(self, archs):
            return [{**row, "value": -9.0} if Arch.from_string(row["arch"]).ops[:2] == (0, 0) else row
                    for row in super().score(archs)]

    result = run_search("random", "value", 300, WithDeadCells(), seed=3)
    assert (result.ranked()["value"] == -9.0).any()
    notes = []
    monkeypatch.setattr(matplotlib.axes.Axes, "annotate", lambda self, text, *a, **k: notes.append(text))
    plot_search(result, tmp_path / "search.png")
    assert notes and "not shown" in notes[0]
    top = with_benchmark(result.top(5), data_dir / "nasrobbench201" / "cifar10.csv",
                         data_dir / "nb201" / "cifar10_clean_acc.csv")
    assert "arch_str" not in top.columns and {"arch", "val_pgd_8.0_acc", "test_acc"} <= set(top.columns)
