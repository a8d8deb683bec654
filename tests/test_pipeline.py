"""The fused per-cell program and its architecture-batched (vmap over cells) form: same kernels, one compilation."""

import pytest
from conftest import TINY_SETTINGS, compilations
from test_layerwise import CELLS
from test_ntk import _rel

from ntkscore.cell import network
from ntkscore.cell.space import Arch
from ntkscore.kernels import pipeline
from ntkscore.kernels.precision import scoring_precision
from ntkscore.scores.scorer import Scorer, ScoreSettings
from ntkscore.study.rank import rank

SPEC = ScoreSettings(**TINY_SETTINGS)


@pytest.fixture(scope="module")
def scorers():
    """One cell per step and three per step, with the same weights and batch; every test here shares their programs
    (the single-cell one is the one every test of :data:`TINY_SETTINGS` runs)."""
    return Scorer(SPEC, arch_batch=1), Scorer(SPEC, arch_batch=3)


def test_batched_kernels_equal_one_cell_at_a_time(scorers):
    """vmap over cells (every branch evaluated, unselected ones with zero cotangents) changes no kernel: a step of
    three cells, then one cell padded to three."""
    single, batched = scorers
    archs = [Arch.from_string(a) for a in CELLS]
    with scoring_precision():  # as a Scorer runs them
        got = batched._kernels_of_batch(archs[:3]) + batched._kernels_of_batch(archs[3:])
        expected = [single._kernels_of_cell(arch)[0] for arch in archs]
    assert len(got) == len(CELLS)
    for arch, (kernels, family), expected in zip(archs, got, expected):
        assert family == {} and set(kernels) == set(pipeline.KERNEL_SETS["all"])
        assert kernels["K"].shape == (len(network.GROUPS), SPEC.batch_size, SPEC.batch_size)
        for name in pipeline.KERNEL_SETS["all"]:
            assert _rel(kernels[name], expected[name]) < 1e-5, (arch.to_string(), name)


def test_score_many_matches_single_cell_scores_with_one_compilation(scorers):
    single, batched = scorers
    cells = CELLS + ["|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_3x3~1|skip_connect~2|"]
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


def test_rank_sends_cells_in_device_steps_and_resumes(tmp_path, scorers):
    scorer = scorers[1]
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
