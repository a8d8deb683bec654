"""Programs kept as ``jax.export`` artifacts: stored once, loaded without tracing, the same results, and the function
itself wherever an artifact cannot be used."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FEWEST_SETTINGS

from ntkscore import ScoreSettings, Scorer, exported


@partial(jax.jit, static_argnames="power")
def spectrum_sum(params, x, power: int):
    """A pytree argument, a static one, and an eigendecomposition (a LAPACK custom call on a CPU)."""
    gram = (x * params["scale"]) @ x.T
    return jnp.linalg.eigvalsh(gram) ** power + params["shift"]


ARGS = ({"scale": jnp.float32(2.0), "shift": jnp.arange(4.0)}, jnp.arange(12.0).reshape(4, 3) / 7.0)


def test_an_artifact_is_stored_once_and_loaded_without_tracing(tmp_path, monkeypatch):
    expected = np.asarray(spectrum_sum(*ARGS, power=2))
    np.testing.assert_allclose(np.asarray(exported.Programs(tmp_path)(spectrum_sum, *ARGS, power=2)), expected,
                               rtol=1e-6)
    stored = list(tmp_path.glob(f"*{exported.SUFFIX}"))
    assert len(stored) == 1
    traced = []
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: traced.append(a) or (_ for _ in ()).throw(RuntimeError))
    again = exported.Programs(tmp_path)  # a new process's view: nothing loaded yet
    np.testing.assert_allclose(np.asarray(again(spectrum_sum, *ARGS, power=2)), expected, rtol=1e-6)
    assert traced == [] and list(tmp_path.glob(f"*{exported.SUFFIX}")) == stored
    again(spectrum_sum, *ARGS, power=3)  # other static arguments: another program; export is refused here, so
    assert len(traced) == 1 and len(list(tmp_path.glob(f"*{exported.SUFFIX}"))) == 1  # it ran as it is


def test_the_key_follows_static_arguments_shapes_and_precision():
    key = exported.artifact_key(spectrum_sum, ARGS, {"power": 2})
    assert key != exported.artifact_key(spectrum_sum, ARGS, {"power": 3})
    assert key != exported.artifact_key(spectrum_sum, (ARGS[0], jnp.zeros((5, 3))), {"power": 2})
    with jax.default_matmul_precision("highest"):
        assert key != exported.artifact_key(spectrum_sum, ARGS, {"power": 2})
    assert key == exported.artifact_key(spectrum_sum, ARGS, {"power": 2})


def test_a_damaged_artifact_or_no_directory_calls_the_function(tmp_path):
    expected = np.asarray(spectrum_sum(*ARGS, power=2))
    key = exported.artifact_key(spectrum_sum, ARGS, {"power": 2})
    (tmp_path / f"{key}{exported.SUFFIX}").write_bytes(b"not a program")
    np.testing.assert_allclose(np.asarray(exported.Programs(tmp_path)(spectrum_sum, *ARGS, power=2)), expected,
                               rtol=1e-6)
    off = exported.Programs(None)
    assert off.directory is None
    np.testing.assert_allclose(np.asarray(off(spectrum_sum, *ARGS, power=2)), expected, rtol=1e-6)


def test_compiler_options_reach_every_program_stored_or_traced(tmp_path):
    """The options are XLA's, given to each compilation: an unknown one fails the stored and the traced program alike
    (a known one: tests/test_precision.py)."""
    bad = {"xla_cpu_no_such_option": ""}
    for programs in (exported.Programs(tmp_path, compiler_options=bad), exported.Programs(None, compiler_options=bad)):
        with pytest.raises(Exception, match="No such compile option: 'xla_cpu_no_such_option'"):
            programs(spectrum_sum, *ARGS, power=2)
    assert list(tmp_path.glob(f"*{exported.SUFFIX}"))  # the stored program does not depend on them
    np.testing.assert_allclose(np.asarray(exported.Programs(tmp_path)(spectrum_sum, *ARGS, power=2)),
                               np.asarray(spectrum_sum(*ARGS, power=2)), rtol=1e-6)


def test_scores_through_artifacts_equal_the_traced_programs():
    settings = ScoreSettings(**FEWEST_SETTINGS)
    cell = "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
    through = Scorer(settings)
    assert through._programs.directory is not None
    loaded, traced = through(cell).metrics, Scorer(settings, cache=False)(cell).metrics
    assert set(loaded) == set(traced)
    for name, value in traced.items():
        assert loaded[name] == pytest.approx(value, rel=1e-5, abs=1e-9), name




@pytest.mark.parametrize("stored", [True, False])
def test_a_program_compiled_ahead_runs_without_tracing_again(tmp_path, stored):
    traces = []

    @partial(jax.jit, static_argnames="power")
    def counted(x, power: int):
        traces.append(power)
        return jnp.sort(x) ** power

    x = jnp.array([3.0, 1.0, 2.0])
    programs = exported.Programs(tmp_path if stored else None)
    programs.compile(counted, x, power=2)
    compiled = programs._loaded[exported.artifact_key(counted, (x,), {"power": 2})]
    assert isinstance(compiled, jax.stages.Compiled) and traces == [2]
    programs.compile(counted, x, power=2)  # compiling again keeps the compiled program
    assert programs._loaded[exported.artifact_key(counted, (x,), {"power": 2})] is compiled
    np.testing.assert_allclose(np.asarray(programs(counted, x, power=2)), [1.0, 4.0, 9.0])
    assert traces == [2]
    if stored:  # a new process's view: the artifact is loaded and compiled, not traced
        exported.Programs(tmp_path).compile(counted, x, power=2)
        assert traces == [2]
