import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from ntkscore import composite, reference

TERMS = ("ntk", "pattern", "jacobian", "paths", "correlation")


def table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"K_rob.bound": rng.uniform(0.1, 2, n), "K_rob.trace": rng.uniform(1, 100, n),
                         "params": rng.integers(10_000, 2_000_000, n).astype(float),
                         "zc.naswot": rng.normal(500, 20, n), "zc.jacov": rng.normal(-100, 10, n),
                         "zc.synflow": rng.normal(50, 5, n), "zc.meco": rng.uniform(0, 20, n)})


def test_quantile_is_the_mid_rank_of_one_more_member():
    values = [1.0, 2.0, 2.0, 3.0]
    assert reference.quantile(values, 2.0) == pytest.approx((1 + 0.5 * 2 + 0.5) / 5)
    assert reference.quantile(values, 0.0) == pytest.approx(0.5 / 5)
    assert reference.quantile(values, 9.0) == pytest.approx(4.5 / 5)
    assert reference.quantile(values, float("nan")) == pytest.approx(0.5 / 5)


def test_members_get_their_population_aggregate():
    """For a member of the reference, F_t = r_t/(N+1) where the population aggregate uses r_t/N: the same order,
    shifted by T·log(N/(N+1)) (no ties in continuous data)."""
    t = table()
    ref = reference.build(t, {"channels": 16}, TERMS, "test")
    name = composite.AGGREGATE_PREFIX + "rank(ntk,pattern,jacobian,paths)"
    population = composite.aggregate_scores(t)[name]
    single = np.array([reference.reference_aggregates(row, ref)[name] for _, row in t.iterrows()])
    np.testing.assert_allclose(single, population + 4 * np.log(len(t) / (len(t) + 1)), atol=1e-12)
    np.testing.assert_array_equal(rankdata(single), rankdata(population))


def test_thinned_reference_keeps_the_extremes():
    t = table(3000)
    ref = reference.build(t, {}, ("pattern",), "test", max_values=101)
    values = ref["terms"]["pattern"]
    assert len(values) == 101 and values == sorted(values)
    assert values[0] == t["zc.naswot"].min() and values[-1] == t["zc.naswot"].max()


def test_find_matches_relevant_settings_only(tmp_path):
    import json

    ref = reference.build(table(), {"channels": 16, "seed": 0, "primary": "x", "eps": 8 / 255}, TERMS, "test")
    (tmp_path / "a.json").write_text(json.dumps(ref))
    assert reference.find({"channels": 16, "seed": 0, "primary": "y", "engine": "jacobian", "eps": 8 / 255},
                          tmp_path) is not None
    assert reference.find({"channels": 8, "seed": 0, "eps": 8 / 255}, tmp_path) is None
    assert reference.reference_aggregates({"params": 1.0}, ref) == {}  # terms missing: nothing, not an error
    assert reference.reference_aggregates(table().iloc[0], None) == {}


def test_scorer_ranks_a_cell_within_a_reference(tmp_path):
    """End to end on the tiny network: a reference built from three scored cells turns the rank aggregates into
    per-cell metrics (and the default into ``Score.value``); without one, ``value`` says why it is missing."""
    import json
    from dataclasses import replace

    from conftest import TINY_SETTINGS

    from ntkscore.score import Scorer, ScoreSettings

    settings = ScoreSettings(**TINY_SETTINGS, proxy_batch_size=8)
    cells = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|",
             "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|",
             "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"]
    plain = Scorer(settings, references=tmp_path)
    rows = pd.DataFrame([plain(c).metrics for c in cells])
    ref = reference.build(rows, plain.reference_settings, TERMS, "test")
    (tmp_path / "tiny.json").write_text(json.dumps(ref))
    images = tmp_path / "images.npz"
    np.savez(images, x=np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8),
             y=np.arange(40) % 10)
    other_images = Scorer(replace(settings, inputs="data"), images=images, references=tmp_path)
    assert other_images.reference_settings["batches"] != plain.reference_settings["batches"]
    assert other_images.reference is None  # another batch is another population
    s = Scorer(settings, references=tmp_path)(cells[2])
    name = "rank(ntk,pattern,jacobian,correlation)"
    expected = sum(np.log(reference.quantile(ref["terms"][t], float(composite.TERMS[t](s.metrics))))
                   for t in composite.AGGREGATES[name])
    name = composite.AGGREGATE_PREFIX + name
    assert s.metrics[name] == pytest.approx(expected)
    aggregate = {"primary": name}
    assert replace(s, settings={**s.settings, **aggregate}).value == s.metrics[name]
    with pytest.raises(KeyError, match="no reference sample"):
        replace(plain(cells[2]), settings={**s.settings, **aggregate}).value
