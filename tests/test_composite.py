import math

import numpy as np
import pandas as pd
import pytest

from ntkscore import composite

METRICS = {"K_rob_all@1.lambda_min": 0.25, "K_rob.lambda_min": 2.0, "K_rob.condition": 40.0, "K_rob.bound": 0.5,
           "params": 1000.0}


def test_candidates_follow_their_formulas():
    got = composite.composite_scores(METRICS)
    assert got["composite.paper"] == 0.25
    assert got["composite.robust_lambda_min"] == 2.0
    assert got["composite.robust_condition"] == pytest.approx(-math.log(40.0))
    assert got["composite.robust_bound"] == pytest.approx(math.log(2.0))
    assert got["composite.robust_lambda_min+params"] == pytest.approx(math.log(2000.0))
    assert got["composite.robust_bound+params"] == pytest.approx(math.log(2000.0))
    assert set(got) == {composite.PREFIX + n for n in composite.CANDIDATES}
    assert composite.DEFAULT in composite.CANDIDATES


def test_rescaling_a_factor_does_not_change_a_ranking_and_dead_cells_rank_last():
    table = pd.DataFrame({k: [v, v * 3, v / 7] for k, v in METRICS.items()})
    table.loc[2, "K_rob.lambda_min"] = 0.0  # a dead cell's zero kernel
    scores = composite.composite_scores(table)["composite.robust_lambda_min+params"]
    rescaled = composite.composite_scores(table.assign(params=table["params"] * 1e6))["composite.robust_lambda_min+params"]
    assert np.all(np.isfinite(scores)) and np.argmin(scores) == 2
    assert list(np.argsort(scores)) == list(np.argsort(rescaled))


def test_clean_only_metrics_give_no_robust_candidates():
    assert composite.composite_scores({"K.lambda_min": 1.0, "params": 5.0}) == {}
