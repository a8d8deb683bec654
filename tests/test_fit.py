"""Formula fitting on synthetic tables whose generating weights are known."""

import numpy as np
import pandas as pd
import pytest

from ntkscore.scores import formula
from ntkscore.study import fit


def _table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.DataFrame({"zc.jacov": rng.normal(size=n), "zc.naswot": rng.normal(size=n),
                      "K.trace": np.exp(rng.normal(size=n)), "K.condition": np.exp(rng.normal(size=n)),
                      "noise": rng.normal(size=n)})
    # the target is monotone in 2·jacov + log tr K − log κ: three of the five terms, one of them negated
    target = np.tanh(2 * t["zc.jacov"] + np.log(t["K.trace"]) - np.log(t["K.condition"])
                     + 0.05 * rng.normal(size=n))
    return t, target


def test_term_orients_and_logs():
    m = {"K.condition": 100.0, "K.trace": np.e, "zc.jacov": -3.0, "K.lambda_min": -1e-9}
    assert formula.term(m, "K.condition") == pytest.approx(-np.log(100.0))
    assert formula.term(m, "K.trace") == pytest.approx(1.0)
    assert formula.term(m, "zc.jacov") == -3.0
    assert formula.term(m, "K.lambda_min") == pytest.approx(np.log(formula.FLOOR))  # a singular kernel: lowest


def test_least_squares_recovers_the_generating_direction():
    t, target = _table()
    f = fit.least_squares(t, ["zc.jacov", "K.trace", "K.condition"], target)
    w = np.array(list(f.weights.values()))
    np.testing.assert_allclose(w / w[0], [1.0, 0.5, 0.5], atol=0.08)  # K.condition's term is −log κ
    assert f(t.iloc[0]) == pytest.approx(sum(v * formula.term(t.iloc[0], k) for k, v in f.weights.items()))


def test_forward_selection_finds_the_generating_terms_and_stops():
    t, target = _table()
    steps = fit.forward_selection(t, list(t.columns), target)
    chosen = steps[-1][0]
    assert chosen[0] == "zc.jacov" and set(chosen[:3]) == {"zc.jacov", "K.trace", "K.condition"}
    assert "noise" not in chosen and steps[-1][1] > 0.85
    assert [tau for _, tau in steps] == sorted(tau for _, tau in steps)


def test_missing_metric_names_itself():
    f = formula.Formula("value", {"zc.meco": 1.0})
    with pytest.raises(KeyError, match="value needs the metrics \\['zc.meco'\\]"):
        f({"params": 1.0})


def test_linear_baselines_are_those_of_the_recorded_study():
    """``ntkscore.scores.formula``'s baselines are what ``benchmarks/score_design.py`` fitted (its committed JSON)."""
    import json
    from pathlib import Path

    recorded = json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / "score_design.json").read_text())
    for f, name in zip(formula.BASELINES, ("value", "robustness")):
        assert list(f.weights) == list(recorded[name])
        assert dict(f.weights) == pytest.approx(recorded[name], rel=1e-5)


def test_controls_drop_a_term_or_put_log_params_in_its_place_with_its_spread():
    t, _ = _table()
    t = t.assign(params=np.exp(3 * t["noise"]))
    f = formula.Formula("f", {"zc.jacov": 2.0, "K.trace": 1.0})
    got = formula.controls(f, t)
    np.testing.assert_allclose(got["f − K.trace"], 2.0 * t["zc.jacov"])
    # log #params scaled to K.trace's spread: w · σ(log tr K) / σ(log #params) = 1 · 1 / 3 (to sampling error)
    swapped = got["f: params for K.trace"] - 2.0 * t["zc.jacov"]
    scale = np.std(np.log(t["K.trace"])) / np.std(np.log(t["params"]))
    np.testing.assert_allclose(swapped, scale * np.log(t["params"]), rtol=1e-10)
    assert 0.25 < scale < 0.42
