import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY, TINY_SETTINGS, compilations
from jax.flatten_util import ravel_pytree
from test_ntk import _jacobians, _rel

from ntkscore.cell import network
from ntkscore.cell.space import Arch
from ntkscore.kernels import layerwise
from ntkscore.scores.scorer import Scorer, ScoreSettings

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|skip_connect~2|",
    "|none~0|+|avg_pool_3x3~0|none~1|+|avg_pool_3x3~0|none~1|avg_pool_3x3~2|",  # parameter-free cell
    "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",  # dead cell
]
PAIRS = ((0, 0), (1, 1), (0, 1), (2, 2), (1, 2))


@pytest.fixture(scope="module")
def batches():
    params = network.init(jax.random.PRNGKey(0), TINY)
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    xs = [jax.random.uniform(k, (n, 8, 8, 3)) for k, n in zip(keys, (4, 3, 4))]
    return params, xs


@jax.jit
def _cell_jacobian(params, ops, x, stats):
    """Reference (n·k × P) Jacobian of the batch-statistics network by ``jax.jacrev`` (ops as data: one compile)."""
    flat, unravel = ravel_pytree(params)
    j = jax.jacrev(lambda w: network.apply(unravel(w), ops, x, TINY, stats))(flat)
    return j.reshape(-1, flat.size)


@pytest.mark.parametrize("arch", CELLS)
def test_layerwise_ntk_equals_jacobian_product(batches, arch):
    """Optimised engine vs. an independent reference: jacrev Jacobians of each batch (own BN statistics)."""
    params, xs = batches
    ops = jnp.asarray(Arch.from_string(arch).ops, jnp.int32)
    stats = [network.batch_statistics(params, ops, x, TINY) for x in xs]
    got = layerwise.cell_ntk_pairs(params, ops, xs, stats, TINY, PAIRS)
    jac = [np.asarray(_cell_jacobian(params, ops, x, s), np.float64) for x, s in zip(xs, stats)]
    for (a, b), k in zip(PAIRS, got):
        n, m = xs[a].shape[0], xs[b].shape[0]
        ref = np.einsum("iaja->ij", (jac[a] @ jac[b].T).reshape(n, 10, m, 10))
        assert k.shape == (n, m)
        assert _rel(k, ref) < 1e-5, (arch, a, b)


def _group_masks(params):
    """Flat 0/1 masks selecting the parameters of each of ``network.GROUPS`` (in ``ravel_pytree`` order)."""
    where = {"stem": ("stem", None), "head": ("head", None), "stage1": ("stages", 0), "stage2": ("stages", 1),
             "stage3": ("stages", 2), "reduction1": ("reductions", 0), "reduction2": ("reductions", 1)}
    masks = []
    for name in network.GROUPS:
        key, index = where[name]
        tree = jax.tree.map(jnp.zeros_like, params)
        if index is None:
            tree[key] = jax.tree.map(jnp.ones_like, tree[key])
        else:
            tree[key] = list(tree[key])
            tree[key][index] = jax.tree.map(jnp.ones_like, tree[key][index])
        masks.append(ravel_pytree(tree)[0])
    return masks


def test_per_group_kernels_are_the_jacobian_restricted_to_each_group(batches):
    params, xs = batches
    ops = jnp.asarray(Arch.from_string(CELLS[1]).ops, jnp.int32)
    stats = [network.batch_statistics(params, ops, x, TINY) for x in xs]
    grouped = layerwise.cell_ntk_pairs(params, ops, xs[:2], stats[:2], TINY, ((0, 1),), by_group=True)[0]
    total = layerwise.cell_ntk_pairs(params, ops, xs, stats, TINY, PAIRS)[PAIRS.index((0, 1))]  # the program above
    assert grouped.shape == (len(network.GROUPS), 4, 3)
    assert _rel(grouped.sum(0), total) < 1e-5
    ja, jb = (np.asarray(_cell_jacobian(params, ops, x, s), np.float64) for x, s in zip(xs[:2], stats))
    for g, mask in enumerate(_group_masks(params)):
        ref = np.einsum("iaja->ij", ((ja * np.asarray(mask)) @ jb.T).reshape(4, 10, 3, 10))
        assert np.abs(np.asarray(grouped[g]) - ref).max() <= 1e-5 * np.abs(np.asarray(total)).max(), g


@pytest.mark.parametrize("output", ["sum"])
def test_layerwise_sum_output_and_identity_bn(batches, output):
    params, xs = batches
    cfg = network.NetworkConfig(channels=4, cells_per_stage=1, input_size=8, bn_mode="identity")
    ops = jnp.asarray(Arch.from_string(CELLS[1]).ops, jnp.int32)
    got = layerwise.cell_ntk_pairs(params, ops, xs[:2], None, cfg, ((0, 1),), output)[0]
    ja, jb = _jacobians(lambda p, b: network.apply(p, ops, b, cfg), params, *xs[:2])  # no BN coupling
    ref = (ja @ jb.T).reshape(4, 10, 3, 10).sum(axis=(1, 3))
    assert _rel(got, ref) < 1e-5


def test_layerwise_rejects_full_output(batches):
    params, xs = batches
    with pytest.raises(ValueError, match="supports output 'trace' or 'sum'"):
        layerwise.cell_ntk_pairs(params, (3,) * 6, xs[:1], None, TINY, ((0, 0),), "full")


def test_engines_give_the_same_scores():
    settings = dict(TINY_SETTINGS, kernels="clean")
    fast = Scorer(ScoreSettings(**settings))(CELLS[1])
    ref = Scorer(ScoreSettings(**settings, engine="jacobian"))(CELLS[1])
    for name in ("K.trace", "K.lambda_max", "K.bound", "K.effective_rank"):
        assert fast[name] == pytest.approx(ref[name], rel=1e-4), name


def test_one_compilation_per_shape_across_cells():
    """After the first cell, scoring more cells compiles nothing (counted by JAX's backend-compile events)."""
    scorer = Scorer(ScoreSettings(**TINY_SETTINGS))
    scorer(CELLS[0])
    with compilations() as compiles:
        for arch in CELLS[1:]:
            scorer(arch)
    assert compiles == []


def _convs(jaxpr, in_branch=False):
    """``(in_branch, eqn)`` for every convolution in ``jaxpr`` and the jaxprs nested in its equations."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            yield in_branch, eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _convs(inner, in_branch or eqn.primitive.name == "cond")


def test_every_convolution_inside_an_edge_switch_is_canonical(batches):
    """XLA:CPU runs convolutions with transposed dimension numbers (JAX's own transpose rule) 20–30× slower inside
    a ``lax.switch`` branch: the NTK's and the attacks' backward passes must not put any there."""
    params, xs = batches
    ops = jnp.asarray((3, 2, 4, 1, 3, 0))
    canonical = jax.lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ("NHWC", "HWIO", "NHWC"))
    ntk = jax.make_jaxpr(lambda p, x: layerwise.cell_ntk_pairs(p, ops, [x], None, TINY, ((0, 0),)))(params, xs[0])
    attack = jax.make_jaxpr(jax.grad(lambda x: network.apply(params, ops, x, TINY,
                                                             layer=network.input_gradient_layer).sum()))(xs[0])
    for jaxpr in (ntk.jaxpr, attack.jaxpr):
        in_branches = [eqn for in_branch, eqn in _convs(jaxpr) if in_branch]
        assert len(in_branches) >= 4  # forward and backward of both convolution ops
        assert all(eqn.params["dimension_numbers"] == canonical for eqn in in_branches)
        assert all(eqn.params["lhs_dilation"] == (1, 1) for eqn in in_branches)
