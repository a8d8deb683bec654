import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY
from jax.flatten_util import ravel_pytree

from ntkscore.cell import network
from ntkscore.kernels.ntk import empirical_ntk_fn, ntk_pairs
from ntkscore.kernels.pipeline import CellNetwork


def _jacobian(apply_fn, params, x):
    """Reference (n·k × P) Jacobian by jax.jacrev of the flattened parameters."""
    flat, unravel = ravel_pytree(params)
    j = jax.jit(jax.jacrev(lambda w: apply_fn(unravel(w), x)))(flat)
    return np.asarray(j.reshape(-1, flat.size), np.float64)


def _jacobians(apply_fn, params, x, z):
    """Reference Jacobians of ``x`` and ``z`` from one Jacobian of the concatenated batch ``[x; z]`` (one
    compilation; the functions tested here have no coupling between samples)."""
    j = _jacobian(apply_fn, params, jnp.concatenate([x, z]))
    rows = j.shape[0] * x.shape[0] // (x.shape[0] + z.shape[0])
    return j[:rows], j[rows:]


def _kernel(jx, jz, n, m, output):
    """The NTK of ``output`` from the Jacobians of ``n`` and ``m`` samples."""
    k = jx.shape[0] // n
    full = jx @ jz.T
    if output == "full":
        return full
    if output == "trace":
        return np.einsum("iaja->ij", full.reshape(n, k, m, k))
    return full.reshape(n, k, m, k).sum(axis=(1, 3))


def _reference(apply_fn, params, x, z, output):
    return _kernel(*_jacobians(apply_fn, params, x, z), x.shape[0], z.shape[0], output)


def _rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b)


@pytest.fixture(scope="module")
def cell_model():
    params = network.init(jax.random.PRNGKey(0), TINY)
    ops = jnp.asarray((3, 2, 4, 1, 3, 1), jnp.int32)
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 8, 8, 3))
    z = jax.random.uniform(jax.random.PRNGKey(2), (3, 8, 8, 3))
    stats = network.batch_statistics(params, ops, x, TINY)
    return params, ops, stats, x, z


@pytest.mark.parametrize("output", ["trace"])  # sum and full are checked on the MLP below (compile time)
def test_cell_network_ntk_equals_jacobian_product(cell_model, output):
    params, ops, stats, x, z = cell_model
    fn = CellNetwork(TINY)
    # the reference uses the batch-statistics network as a plain function of the batch: per sample = batch rows
    batch_fn = lambda p, b: network.apply(p, ops, b, TINY, stats)  # noqa: E731
    got = ntk_pairs(fn, params, [x, z], [(ops, stats), (ops, stats)], ((0, 0), (0, 1), (1, 0)), output, 3)
    jx, jz = _jacobians(batch_fn, params, x, z)
    ref_xx, ref_xz = _kernel(jx, jx, 4, 4, output), _kernel(jx, jz, 4, 3, output)
    assert _rel(got[0], ref_xx) < 1e-5
    assert _rel(got[1], ref_xz) < 1e-5
    np.testing.assert_allclose(np.asarray(got[2]), np.asarray(got[1]).T, rtol=1e-5, atol=1e-5 * np.abs(ref_xz).max())
    k = np.asarray(got[0], np.float64)
    assert np.allclose(k, k.T, rtol=1e-5, atol=1e-6 * np.abs(k).max())
    assert np.linalg.eigvalsh(0.5 * (k + k.T))[0] > -1e-5 * np.abs(k).max()


def _mlp(params, x):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
    return h @ params["w2"]


@pytest.mark.parametrize("trace_axes, output", [((-1,), "trace"), ((), "full"), ((-1,), "sum")])
def test_empirical_ntk_fn_for_any_model(trace_axes, output):
    params = {"w1": jax.random.normal(jax.random.PRNGKey(0), (6, 16)), "b1": jnp.zeros(16),
              "w2": jax.random.normal(jax.random.PRNGKey(1), (16, 3))}
    x = jax.random.normal(jax.random.PRNGKey(2), (5, 6))
    z = jax.random.normal(jax.random.PRNGKey(3), (2, 6))
    ntk_fn = empirical_ntk_fn(_mlp, trace_axes=trace_axes, output=output, logit_chunk=2)
    assert _rel(ntk_fn(x, z, params), _reference(_mlp, params, x, z, output)) < 1e-5
    assert _rel(ntk_fn(x, None, params), _reference(_mlp, params, x, x, output)) < 1e-5


def _relu_ntk(x, z):
    """Infinite-width NTK of f(x) = a·relu(W x/√d)/√m, W, a ~ N(0, 1) (Jacot et al.; arc-cosine kernels):

    Θ(x, z) = uᵀv · (π − θ)/(2π) + |u||v| (sin θ + (π − θ) cos θ)/(2π),  u = x/√d, v = z/√d, θ = ∠(u, v).
    The first term is the gradient w.r.t. W (E[a² 1{w·u>0} 1{w·v>0}]), the second w.r.t. a (E[relu relu]).
    """
    d = x.shape[1]
    u, v = x / np.sqrt(d), z / np.sqrt(d)
    nu, nv = np.linalg.norm(u, axis=1), np.linalg.norm(v, axis=1)
    dot = u @ v.T
    cos = np.clip(dot / np.outer(nu, nv), -1.0, 1.0)
    theta = np.arccos(cos)
    return dot * (np.pi - theta) / (2 * np.pi) + np.outer(nu, nv) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)


def test_wide_relu_mlp_approaches_the_analytic_ntk():
    def mlp(params, x):
        d, m = params["w"].shape
        return jax.nn.relu(x @ params["w"] / jnp.sqrt(d)) @ params["a"] / jnp.sqrt(m)

    x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (6, 5)), np.float64)
    exact = _relu_ntk(x, x)
    ntk_fn = empirical_ntk_fn(mlp)
    errors = []
    for width in (64, 256, 1024, 4096):
        errs = []
        for seed in range(4):
            kw, ka = jax.random.split(jax.random.PRNGKey(seed))
            params = {"w": jax.random.normal(kw, (5, width)), "a": jax.random.normal(ka, (width, 1))}
            errs.append(_rel(ntk_fn(jnp.asarray(x, jnp.float32), None, params), exact))
        errors.append(np.mean(errs))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.05 and errors[0] > 2 * errors[-1], errors


def test_bad_output_modes():
    with pytest.raises(ValueError, match="output must be one of"):
        empirical_ntk_fn(_mlp, output="diag")
    with pytest.raises(ValueError, match="trace_axes must be"):
        empirical_ntk_fn(_mlp, trace_axes=(0,))
