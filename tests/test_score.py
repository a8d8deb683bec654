import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FEWEST_SETTINGS, TINY_SETTINGS

from ntkscore import Score, Scorer, ScoreSettings, score, score_model
from ntkscore.kernels import ntk
from ntkscore.scores.result import ScoreNotComputed

MIXED = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DEAD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
PARAM_FREE = "|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|avg_pool_3x3~2|"


@pytest.fixture(scope="module")
def scorer():
    return Scorer(ScoreSettings(**TINY_SETTINGS))


def test_scores_are_finite_deterministic_and_one_program(scorer):
    before = ntk.ntk_pairs._cache_size()
    a = scorer(MIXED)
    after_first = ntk.ntk_pairs._cache_size()
    b = Scorer(ScoreSettings(**TINY_SETTINGS))(MIXED)
    for cell in (DEAD, PARAM_FREE, "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"):
        scorer(cell)
    assert ntk.ntk_pairs._cache_size() - before <= 1 and ntk.ntk_pairs._cache_size() == after_first
    assert a.metrics == b.metrics
    assert all(np.isfinite(v) for v in a.metrics.values())
    # the shipped learned scores exist at their own settings only: at these they are not computed, and say why
    assert "value" not in a.metrics and "robustness" not in a.metrics
    with pytest.raises(ScoreNotComputed, match=r"fitted on features computed at other settings \(.*channels: "
                                               r"fitted at 8, given 4.*'ntkscore fit'"):
        a.value
    with pytest.raises(ScoreNotComputed, match="'robustness' was fitted"):
        a.robustness
    assert a.metrics["K_rob_all@1.lambda_min"] > 0
    assert {"K.lambda_min", "K_rob.bound", "K_all@0.5.condition", "K_rob_all@0.trace", "params", "flops",
            "zc.meco", "zc.naswot"} <= set(a.metrics)
    assert not [m for m in a.metrics if m.startswith(("composite.", "aggregate."))]  # no candidate registries
    row = a.to_dict()
    assert row["arch"] == MIXED and row["setting.batch_size"] == 6


def test_summary_says_what_the_scores_mean(scorer):
    s = scorer(MIXED)
    text = repr(s)
    assert text.startswith(f"Score(arch={MIXED!r}, params=") and "value" not in text and len(text) < 300
    summary = s.summary()
    assert summary.count("not computed: ") == 2 and "'ntkscore fit'" in summary
    assert f"params      {s['params']:.0f}    FLOPs" in summary and "nan" not in summary
    with pytest.raises(KeyError, match="was not computed"):
        s["K.nonexistent"]


def test_different_seeds_differ_and_share_their_programs():
    """Another seed draws other weights, images and attack noise, which are the programs' arguments: it scores
    otherwise, and stores no new program (the programs' key holds only the settings they read)."""
    from ntkscore import compilation_cache, exported

    a = score(MIXED, **TINY_SETTINGS, seed=0)
    stored = sorted((compilation_cache.cache_dir() / "exported").glob(f"*{exported.SUFFIX}"))
    b = score(MIXED, **TINY_SETTINGS, seed=1)
    assert a.metrics["K.lambda_min"] != b.metrics["K.lambda_min"]
    assert stored and sorted((compilation_cache.cache_dir() / "exported").glob(f"*{exported.SUFFIX}")) == stored


def test_dead_and_parameter_free_cells_are_flagged_not_nan(scorer):
    dead, free = scorer(DEAD), scorer(PARAM_FREE)
    for s in (dead, free):
        assert all(np.isfinite(v) for v in s.metrics.values()), s.metrics
    assert dead.flags[0] == "dead_cell" and any(f.startswith("singular:") for f in dead.flags)
    assert free.flags[0] == "parameter_free_cell"


def test_kernel_relations_hold(scorer):
    s = scorer(MIXED)
    # K_all(0) is K, K_all(1) is K̃_ε, K̃_all(0) is K̃_ε, K̃_all(1) is K̃_2ε
    assert s["K_all@0.lambda_min"] == s["K.lambda_min"]
    assert s["K_all@1.trace"] == s["K_rob.trace"] == s["K_rob_all@0.trace"]
    assert s["K_rob_all@1.bound"] == s["K_rob2.bound"]


def test_per_group_shares_sum_to_one_and_unused_groups_are_zero(scorer):
    from ntkscore.cell.network import GROUPS

    mixed, free = scorer(MIXED), scorer(PARAM_FREE)
    for s in (mixed, free):
        shares = [s[f"K_rob/{g}.trace_share"] for g in GROUPS]
        assert sum(shares) == pytest.approx(1.0) and min(shares) >= 0.0
    # a parameter-free cell uses no cell parameters: the three stages contribute nothing to the kernel
    assert all(free[f"K_rob/stage{i}.trace_share"] == 0.0 for i in (1, 2, 3))
    assert all(mixed[f"K_rob/stage{i}.trace_share"] > 0.0 for i in (1, 2, 3))


def test_clean_only_and_fgsm_settings():
    clean = score(MIXED, **{**TINY_SETTINGS, "kernels": "clean"})
    assert "K_rob.lambda_min" not in clean.metrics and "K.lambda_min" in clean.metrics
    fgsm = score(MIXED, **FEWEST_SETTINGS, attack="fgsm")  # the robust kernels alone: the smallest program
    assert np.isfinite(fgsm["K_rob.trace"]) and fgsm["K_rob.trace"] != fgsm["K.trace"]
    assert fgsm.settings["attack"] == "fgsm" and "K_rob2.trace" not in fgsm.metrics


def test_score_model_on_any_jax_model():
    def mlp(params, x):
        return jnp.tanh(x.reshape(x.shape[0], -1) @ params["w"]) @ params["v"]

    params = {"w": jax.random.normal(jax.random.PRNGKey(0), (12, 32)) / 4,
              "v": jax.random.normal(jax.random.PRNGKey(1), (32, 3)) / 6}
    x = jax.random.uniform(jax.random.PRNGKey(2), (6, 2, 2, 3))
    s = score_model(mlp, params, x, jnp.arange(6) % 3, steps=3)
    assert isinstance(s, Score) and np.isfinite(s["K_rob.lambda_min"]) and s.arch is None
    assert s.metrics["params"] == 12 * 32 + 32 * 3 and "K_rob2.trace" in s.metrics
    for name in ("value", "robustness"):  # learned on NB201 cells: never applied to another model
        with pytest.raises(ScoreNotComputed, match="not on arbitrary models"):
            getattr(s, name)
    with pytest.raises(ValueError, match="y \\(n,\\) integer labels"):
        score_model(mlp, params, x, jnp.arange(5))
    with pytest.raises(ValueError, match="the model failed on one sample"):
        score_model(lambda p, x: x @ p["w"], params, x, jnp.arange(6) % 3)
    with pytest.raises(ValueError, match="labels must be integers in 0..2"):
        score_model(mlp, params, x, jnp.arange(6))
    with pytest.raises(ValueError, match="inputs must be in \\[0, 1\\].*divide by 255"):
        score_model(mlp, params, x * 255, jnp.arange(6) % 3)
    with pytest.raises(ValueError, match="at least two samples"):
        score_model(mlp, params, x[:1], jnp.arange(1))
    with pytest.raises(ValueError, match="x hold non-finite values"):
        score_model(mlp, params, x.at[0, 0, 0, 0].set(jnp.nan), jnp.arange(6) % 3)
    with pytest.raises(ValueError, match="params hold non-finite values"):
        score_model(mlp, {**params, "w": params["w"].at[0, 0].set(jnp.inf)}, x, jnp.arange(6) % 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=1), "batch_size must be an int ≥ 2"), (dict(kernels="some"), "kernels must be one of"),
    (dict(betas=(0.5, 2.0)), "each beta must be in"), (dict(dataset="mnist"), "unknown dataset"),
    (dict(attack="cw"), "attack must be"), (dict(output="diag"), "output must be one of"),
    (dict(bn_mode="train"), "bn_mode must be one of"),  # training's BN: no per-sample Jacobians
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScoreSettings(**kwargs)
