import numpy as np
import pandas as pd
import pytest

from ntkscore.scores.aggregate import log_rank_sum, rank_aggregate


def test_log_rank_sum_is_az_nas_aggregation():
    first, second = np.array([3.0, 1.0, 2.0, 2.0]), np.array([10.0, 40.0, 20.0, 30.0])
    got = log_rank_sum([first, second])
    ranks_first, ranks_second = np.array([4, 1, 2.5, 2.5]), np.array([1, 4, 2, 3])
    assert np.allclose(got, np.log(ranks_first / 4) + np.log(ranks_second / 4))
    assert log_rank_sum([first * 1e9 + 5]) == pytest.approx(log_rank_sum([first]))
    with pytest.raises(ValueError, match="equal length"):
        log_rank_sum([first, second[:3]])


def test_rank_aggregate_orients_each_metric():
    # a lower condition number is better: the cell with the smallest one ranks first under that term
    table = pd.DataFrame({"K.condition": [10.0, 2.0, 5.0], "params": [1.0, 3.0, 2.0]})
    got = rank_aggregate(table, ["K.condition", "params"])
    assert np.allclose(got, np.log(np.array([1, 3, 2]) / 3) * 2)
    with pytest.raises(KeyError, match="zc.meco"):
        rank_aggregate(table, ["zc.meco"])
