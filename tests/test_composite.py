import math

import numpy as np
import pandas as pd
import pytest

from ntkscore import composite

METRICS = {"K_rob_all@1.lambda_min": 0.25, "K_rob.lambda_min": 2.0, "K_rob.condition": 40.0, "K_rob.bound": 0.5,
           "K_rob.trace": 16.0, "params": 1000.0}


def test_candidates_follow_their_formulas():
    got = composite.composite_scores(METRICS)
    assert got["composite.paper"] == 0.25
    assert got["composite.robust_lambda_min"] == 2.0
    assert got["composite.robust_condition"] == pytest.approx(-math.log(40.0))
    assert got["composite.robust_bound"] == pytest.approx(math.log(2.0))
    assert got["composite.robust_lambda_min+params"] == pytest.approx(math.log(2000.0))
    assert got["composite.robust_bound+params"] == pytest.approx(math.log(2000.0))
    assert got["composite.robust_lambda_min/trace"] == pytest.approx(math.log(2.0 / 16.0))
    assert got["composite.robust_lambda_min/trace+params"] == pytest.approx(math.log(2.0 / 16.0 * 1000.0))
    assert got["composite.robust_bound/trace+params"] == pytest.approx(math.log(1000.0 / (0.5 * 4.0)))
    # the cell-kernel candidates need the K_rob/cells.* metrics of the layerwise engine, absent here
    assert set(got) == {composite.PREFIX + n for n in composite.CANDIDATES if not n.startswith("cells_")}


def test_aggregate_controls_drop_or_swap_each_ntk_term():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({**{k: rng.uniform(0.5, 2.0, 30) * v for k, v in METRICS.items()},
                          "zc.jacov": rng.normal(size=30), "zc.meco": rng.uniform(1, 2, 30)})
    got = composite.aggregate_controls(table)
    name = "aggregate.rank(ntk,jacobian,correlation)"
    terms = {t: composite.TERMS[t](table) for t in ("jacobian", "correlation", "complexity")}
    np.testing.assert_allclose(got[f"{name} − ntk"], composite.log_rank_sum([terms["jacobian"], terms["correlation"]]))
    np.testing.assert_allclose(got[f"{name}: params for ntk"], composite.log_rank_sum(
        [terms["complexity"], terms["jacobian"], terms["correlation"]]))
    # complexity is already a term: swapping trainability for it is the same as dropping it, so no second column
    assert "aggregate.rank(trainability,complexity) − trainability" in got
    assert "aggregate.rank(trainability,complexity): params for trainability" not in got
    assert not any("jacobian,correlation) − jacobian" in k for k in got)  # only NTK terms get controls


def test_rescaling_a_factor_does_not_change_a_ranking_and_dead_cells_rank_last():
    table = pd.DataFrame({k: [v, v * 3, v / 7] for k, v in METRICS.items()})
    table.loc[2, "K_rob.lambda_min"] = 0.0  # a dead cell's zero kernel
    scores = composite.composite_scores(table)["composite.robust_lambda_min+params"]
    rescaled = composite.composite_scores(table.assign(params=table["params"] * 1e6))["composite.robust_lambda_min+params"]
    assert np.all(np.isfinite(scores)) and np.argmin(scores) == 2
    assert list(np.argsort(scores)) == list(np.argsort(rescaled))


def test_clean_only_metrics_give_no_robust_candidates():
    assert composite.composite_scores({"K.lambda_min": 1.0, "params": 5.0}) == {}


def test_bound_of_a_rescaled_kernel_matches_the_trace_normalised_candidate():
    from ntkscore.theory import spectral_scores

    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 9))
    kernel = a @ a.T
    y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    raw, unit = spectral_scores(kernel, y), spectral_scores(kernel / np.trace(kernel), y)
    metrics = {"K_rob.bound": raw["bound"], "K_rob.trace": raw["trace"], "params": 10.0}
    got = composite.CANDIDATES["robust_bound/trace+params"](metrics)
    assert got == pytest.approx(-math.log(unit["bound"]) + math.log(10.0), rel=1e-6)


def test_log_rank_sum_is_az_nas_aggregation():
    first, second = np.array([3.0, 1.0, 2.0, 2.0]), np.array([10.0, 40.0, 20.0, 30.0])
    got = composite.log_rank_sum([first, second])
    ranks_first, ranks_second = np.array([4, 1, 2.5, 2.5]), np.array([1, 4, 2, 3])
    assert np.allclose(got, np.log(ranks_first / 4) + np.log(ranks_second / 4))
    assert composite.log_rank_sum([first * 1e9 + 5]) == pytest.approx(composite.log_rank_sum([first]))
    with pytest.raises(ValueError, match="equal length"):
        composite.log_rank_sum([first, second[:3]])


def test_aggregates_need_a_population_and_their_terms():
    table = pd.DataFrame({k: [v, v * 3, v / 7] for k, v in METRICS.items()})
    got = composite.aggregate_scores(table)
    needs_zero_cost = {"pattern", "jacobian", "paths", "correlation"}  # rounds 4 and 5 need the zc.* columns
    assert set(got) == {composite.AGGREGATE_PREFIX + n for n, terms in composite.AGGREGATES.items()
                        if not needs_zero_cost & set(terms)}
    zero_cost = table.assign(**{"zc.naswot": [3.0, 1.0, 2.0], "zc.jacov": [1.0, 2.0, 3.0], "zc.synflow": [2.0, 2.0, 1.0],
                                "zc.meco": [0.5, 4.0, 2.0]})
    assert set(composite.aggregate_scores(zero_cost)) == {composite.AGGREGATE_PREFIX + n for n in composite.AGGREGATES}
    best_on_both = composite.log_rank_sum([np.log(table["K_rob.lambda_min"]), np.log(table["params"])])
    assert np.allclose(got["aggregate.rank(trainability,complexity)"], best_on_both)
    assert composite.aggregate_scores({"K.lambda_min": np.ones(3)}) == {}


def test_cell_kernel_candidates_rank_a_zero_cell_kernel_last():
    table = pd.DataFrame({"K_rob/cells.lambda_min": [0.0, 0.5], "K_rob/cells.trace": [0.0, 8.0],
                          "K_rob/cells.bound": [1e15, 0.5], "params": [1e5, 1e3]})
    got = composite.composite_scores(table)
    for name in ("cells_lambda_min", "cells_lambda_min/trace+params", "cells_bound/trace+params"):
        values = got[composite.PREFIX + name]
        assert values[0] < values[1] and np.isfinite(values).all(), name
    assert got["composite.cells_bound/trace+params"][1] == pytest.approx(math.log(1e3 / (0.5 * math.sqrt(8.0))))
