"""Every matmul and convolution of a score runs at HIGHEST precision, whatever the backend's default (TF32 on GPUs);
the scoring programs compile with or without XLA:CPU's library fusions as ``cpu_library_fusions`` says."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FEWEST_SETTINGS

from ntkscore import Scorer, ScoreSettings, proxies, score_model
from ntkscore.kernels import pipeline
from ntkscore.kernels.precision import LIBRARY_FUSIONS_OFF, compiler_options


def _precisions(text: str) -> list[str]:
    """The precision of every convolution and dot in a StableHLO module's text ('DEFAULT' where unset)."""
    out = []
    for line in text.splitlines():
        if "stablehlo.convolution" in line or "stablehlo.dot_general" in line:
            out.append("HIGHEST" if line.count("HIGHEST") >= 2 else "DEFAULT")
    return out


def test_scoring_programs_are_traced_and_lowered_at_highest_precision(monkeypatch):
    seen = {}

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            seen[name] = jax.config.jax_default_matmul_precision
            seen.setdefault("args", {})[name] = (args, kwargs)
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(pipeline, "cell_kernels", spy("kernels", pipeline.cell_kernels))
    monkeypatch.setattr(proxies, "proxy_scores", spy("proxies", proxies.proxy_scores))
    # programs other tests compile: the kernels of FEWEST_SETTINGS, the zero-cost pass of test_proxies
    scorer = Scorer(ScoreSettings(**{**FEWEST_SETTINGS, "proxies": True}))
    scorer("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
    assert seen["kernels"] == seen["proxies"] == "highest"
    args, kwargs = seen["args"]["kernels"]
    program = jax.jit(pipeline._cell_kernels, static_argnames=("spec", "config"))

    def lowered() -> str:
        return program.lower(args[0], jnp.asarray(args[1], jnp.int32), *args[2:], **kwargs).as_text()

    with jax.default_matmul_precision(seen["kernels"]):
        found = _precisions(lowered())
    assert len(found) > 20 and set(found) == {"HIGHEST"}  # the attack's and the kernels' convolutions and dots
    assert "DEFAULT" in _precisions(lowered())  # the check can fail: outside the context the backend decides


def test_cpu_library_fusions_off_compiles_with_xla_s_own_kernels():
    """On a CPU XLA hands this convolution and reduction to YNNPACK by default; the option of
    ``cpu_library_fusions=False`` compiles them without (an option a jaxlib no longer knows fails here)."""
    assert compiler_options(True) is None
    if jax.default_backend() != "cpu":
        assert compiler_options(False) is None
        return
    assert compiler_options(False) == LIBRARY_FUSIONS_OFF
    x, w = jnp.ones((64, 16, 16, 8)), jnp.ones((3, 3, 8, 8))

    def f(x, w):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return (jax.nn.relu(y) ** 2).sum(axis=(1, 2))

    default = jax.jit(f).lower(x, w).compile().as_text()
    without = jax.jit(f, compiler_options=compiler_options(False)).lower(x, w).compile().as_text()
    assert "ynn" in default and "ynn" not in without


def test_cpu_library_fusions_are_off_where_they_apply_and_refused_off_elsewhere():
    assert ScoreSettings().cpu_library_fusions is False  # the layerwise engine's programs
    assert ScoreSettings(engine="jacobian").cpu_library_fusions is True  # op by op, XLA's defaults
    assert ScoreSettings(output="full").cpu_library_fusions is True
    assert ScoreSettings(cpu_library_fusions=True).cpu_library_fusions is True
    with pytest.raises(ValueError, match="cpu_library_fusions must be True, False or None"):
        ScoreSettings(cpu_library_fusions="no")
    with pytest.raises(ValueError, match="compiles the layerwise engine's programs.*engine='jacobian'"):
        Scorer(ScoreSettings(**{**FEWEST_SETTINGS, "engine": "jacobian", "cpu_library_fusions": False}))
    x, y = np.zeros((2, 4), np.float32), np.zeros(2, np.int32)
    with pytest.raises(ValueError, match="score_model compiles with XLA's defaults"):
        score_model(lambda p, v: v @ p, np.ones((4, 3), np.float32), x, y, cpu_library_fusions=False)
