"""score_model on Flax (linen, nnx) and Equinox models: the clean kernel's trace equals Σ_i ‖∂f(x_i)/∂θ‖² computed
independently with jax.jacrev over the model's own parameter pytree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkscore import score_model

X = jax.random.uniform(jax.random.PRNGKey(0), (6, 4, 4, 3))
Y = jnp.arange(6) % 3
SETTINGS = dict(kernels="robust", steps=2)


def jacobian_trace(apply_fn, params, x) -> float:
    """tr K = Σ_i Σ_a ‖∂f_a(x_i)/∂θ‖², one sample at a time (as score_model evaluates them)."""
    total = 0.0
    for i in range(x.shape[0]):
        jac = jax.jacrev(lambda p: apply_fn(p, x[i:i + 1])[0])(params)
        total += sum(float(jnp.sum(leaf ** 2)) for leaf in jax.tree.leaves(jac))
    return total


def test_equinox_model():
    eqx = pytest.importorskip("equinox")
    mlp = eqx.nn.MLP(48, 3, 16, 2, key=jax.random.PRNGKey(1))

    class Net(eqx.Module):
        mlp: eqx.nn.MLP

        def __call__(self, x):  # one example, as Equinox models are written
            return self.mlp(x.reshape(-1))

    net = Net(mlp)
    s = score_model(net, None, X, Y, **SETTINGS)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    expected = jacobian_trace(lambda p, x: jax.vmap(eqx.combine(p, static))(x), params, X)
    assert s["K.trace"] == pytest.approx(expected, rel=1e-4)
    assert s.metrics["params"] == sum(np.size(a) for a in jax.tree.leaves(params))
    assert np.isfinite(s["K_rob.lambda_min"]) and s["K_rob.trace"] != s["K.trace"]
    with pytest.raises(ValueError, match="carries its own parameters"):
        score_model(net, params, X, Y)


def test_flax_linen_module_apply():
    nn = pytest.importorskip("flax.linen")

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(4, (3, 3))(x))
            return nn.Dense(3)(x.reshape(x.shape[0], -1))

    model = CNN()
    variables = model.init(jax.random.PRNGKey(2), X[:1])
    s = score_model(model.apply, variables, X, Y, **SETTINGS)
    assert s["K.trace"] == pytest.approx(jacobian_trace(model.apply, variables, X), rel=1e-4)


def test_flax_nnx_module():
    nnx = pytest.importorskip("flax.nnx")

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(48, 16, rngs=rngs)
            self.out = nnx.Linear(16, 3, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.tanh(self.hidden(x.reshape(x.shape[0], -1))))

    model = MLP(nnx.Rngs(3))
    s = score_model(model, None, X, Y, **SETTINGS)
    graphdef, state = nnx.split(model)
    expected = jacobian_trace(lambda p, x: nnx.merge(graphdef, p)(x), state, X)
    assert s["K.trace"] == pytest.approx(expected, rel=1e-4)
    assert s.metrics["params"] == 48 * 16 + 16 + 16 * 3 + 3


def test_the_readme_example_runs():
    """``examples/score_a_model.py`` (the README's example) runs and prints both models' scores."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("equinox")
    pytest.importorskip("flax")
    script = Path(__file__).resolve().parents[1] / "examples" / "score_a_model.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, check=True).stdout
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["flax", "equinox"]
    assert all(float(line.split("λ_min(K̃_ε) ")[1].split()[0]) > 0 for line in lines)
