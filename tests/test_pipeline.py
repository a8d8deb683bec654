"""The fused per-cell program and its architecture-batched (vmap over cells) form: same kernels, one compilation."""

import jax
import numpy as np
import pytest
from conftest import TINY, TINY_SETTINGS, compilations
from test_layerwise import CELLS
from test_ntk import _rel

from ntkscore.cell import network
from ntkscore.cell.space import Arch
from ntkscore.kernels import pipeline
from ntkscore.scores.scorer import Scorer, ScoreSettings
from ntkscore.study.rank import rank

SPEC = ScoreSettings(**TINY_SETTINGS)


@pytest.fixture(scope="module")
def setup():
    params = network.init(jax.random.PRNGKey(0), TINY)
    kx, ky, kk = jax.random.split(jax.random.PRNGKey(1), 3)
    x = jax.random.uniform(kx, (5, 8, 8, 3))
    y = jax.random.randint(ky, (5,), 0, 10)
    return params, x, y, kk


def test_batched_kernels_equal_one_cell_at_a_time(setup):
    """vmap over cells (every branch evaluated, unselected ones with zero cotangents) changes no kernel."""
    params, x, y, key = setup
    ops = np.asarray([Arch.from_string(a).ops for a in CELLS], np.int32)
    batched, family = pipeline.batched_cell_kernels(params, ops, x, y, key, SPEC, TINY)
    assert len(batched) == 5 and batched[0].shape == (len(CELLS), len(network.GROUPS), 5, 5) and family == {}
    for i, row in enumerate(ops):
        single, _ = pipeline.cell_kernels(params, row, x, y, key, SPEC, TINY)
        for name, a, b in zip(pipeline.KERNEL_SETS["all"], batched, single):
            assert _rel(np.asarray(a[i]), np.asarray(b)) < 1e-5, (CELLS[i], name)


def test_score_many_matches_single_cell_scores_with_one_compilation():
    cells = CELLS + ["|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_3x3~1|skip_connect~2|"]
    single = Scorer(ScoreSettings(**TINY_SETTINGS), arch_batch=1)
    batched = Scorer(ScoreSettings(**TINY_SETTINGS), arch_batch=3)
    batched.score_many(cells[:1])  # compile the (padded) batch program once
    with compilations() as compiles:
        many = batched.score_many(cells)  # two steps: 3 cells, then 2 padded to 3
    assert compiles == []
    assert [s.arch for s in many] == [Arch.from_string(c).to_string() for c in cells]
    for got in many:
        ref = single(got.arch)
        assert got.flags == ref.flags
        for name in ("K.trace", "K_rob.lambda_max", "K_rob_all@0.5.bound", "K_all@1.effective_rank"):
            assert got[name] == pytest.approx(ref[name], rel=1e-4, abs=1e-9), (got.arch, name)
        assert got.seconds > 0


def test_rank_sends_cells_in_device_steps_and_resumes(tmp_path):
    scorer = Scorer(ScoreSettings(**TINY_SETTINGS), arch_batch=2)
    archs = [Arch.from_string(a) for a in CELLS]
    out = tmp_path / "scores.csv"
    assert sum(r is not None for r in rank(archs[:3], scorer, out)) == 3
    assert [r is None for r in rank(archs, scorer, out)] == [True, True, True, False]
    import pandas as pd

    table = pd.read_csv(out)
    assert sorted(table["arch"]) == sorted(a.to_string() for a in archs)


def test_arch_batch_default_by_device_kind_and_errors():
    assert pipeline.default_arch_batch("cpu") == 1
    assert pipeline.default_arch_batch("gpu") == pipeline.default_arch_batch("tpu") == pipeline.ACCELERATOR_ARCH_BATCH
    assert Scorer(ScoreSettings(**TINY_SETTINGS)).arch_batch == pipeline.default_arch_batch()
    with pytest.raises(ValueError, match="arch_batch must be a positive int"):
        Scorer(ScoreSettings(**TINY_SETTINGS), arch_batch=0)
    with pytest.raises(ValueError, match="needs the layerwise engine"):
        Scorer(ScoreSettings(**{**TINY_SETTINGS, "engine": "jacobian"}), arch_batch=2)
    with pytest.raises(ValueError, match="NTK family is computed one cell per device step"):
        Scorer(ScoreSettings(**{**TINY_SETTINGS, "family": True}), arch_batch=2)
