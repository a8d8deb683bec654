"""Every matmul and convolution of a score runs at HIGHEST precision, whatever the backend's default (TF32 on GPUs)."""

import jax
import jax.numpy as jnp
from conftest import FEWEST_SETTINGS

from ntkscore import Scorer, ScoreSettings, proxies
from ntkscore.kernels import pipeline


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
