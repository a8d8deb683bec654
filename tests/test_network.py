import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import TINY
from jax import lax
from scipy.stats import spearmanr

from ntkscore.cell import conv, cost, network
from ntkscore.cell.space import OPS, Arch, all_archs

BEST = Arch((3,) * 6)
apply = jax.jit(network.apply, static_argnames="config")


@pytest.fixture(scope="module")
def tiny():
    params = network.init(jax.random.PRNGKey(0), TINY)
    x = jax.random.uniform(jax.random.PRNGKey(1), (5, 8, 8, 3))
    return params, x


def test_conv_and_its_weight_gradient_equal_xla():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 5))
    for k, stride in [(3, 1), (3, 2), (1, 1)]:
        w = jax.random.normal(jax.random.PRNGKey(k), (k, k, 5, 7))
        pad = (k - 1) // 2
        ref = lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad)] * 2,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
        np.testing.assert_allclose(conv.im2col_conv(x, w, stride), ref, rtol=1e-5, atol=1e-5)
        g = jax.random.normal(jax.random.PRNGKey(9), ref.shape)
        dx_ref, dw_ref = jax.vjp(lambda x, w: lax.conv_general_dilated(
            x, w, (stride, stride), [(pad, pad)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC")), x, w)[1](g)
        dx, dw = jax.vjp(lambda x, w: conv.im2col_conv(x, w, stride), x, w)[1](g)
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4)
        dx_only, dw_zero = jax.vjp(lambda x, w: conv.input_gradient_conv(x, w, stride), x, w)[1](g)
        np.testing.assert_allclose(dx_only, dx_ref, rtol=1e-4, atol=1e-4)
        assert not np.any(np.asarray(dw_zero))


def test_avg_pool_does_not_count_padding():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    y = network._avg_pool_3x3(x)
    assert float(y[0, 0, 0, 0]) == pytest.approx(np.mean([0, 1, 4, 5]))
    assert float(y[0, 1, 1, 0]) == pytest.approx(np.mean([0, 1, 2, 4, 5, 6, 8, 9, 10]))


def test_per_sample_with_batch_statistics_equals_the_batch_forward(tiny):
    params, x = tiny
    ops = jnp.asarray((3, 2, 4, 1, 3, 2))
    full = apply(params, ops, x, config=TINY)
    stats = network.batch_statistics(params, ops, x, TINY)
    rows = [apply(params, ops, x[i:i + 1], config=TINY, stats=stats)[0] for i in range(x.shape[0])]
    np.testing.assert_allclose(np.stack(rows), full, rtol=1e-5, atol=1e-6)
    # without the batch statistics a single sample normalises by itself: a different function
    alone = apply(params, ops, x[:1], config=TINY)[0]
    assert not np.allclose(alone, full[0], atol=1e-4)


def test_bn_modes_differ_and_identity_mode_is_batch_independent(tiny):
    params, x = tiny
    ident = network.NetworkConfig(channels=4, cells_per_stage=1, input_size=8, bn_mode="identity")
    ops = jnp.asarray(BEST.ops)
    a = apply(params, ops, x, config=ident)
    np.testing.assert_allclose(apply(params, ops, x[:2], config=ident), a[:2], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a, apply(params, ops, x, config=TINY), atol=1e-4)


def test_cell_output_is_zero_exactly_for_dead_cells(tiny):
    params, x = tiny
    h = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 8, 4))
    p_cell = jax.tree.map(lambda a: a[0], params["stages"][0])
    cell = jax.jit(lambda ops: network._cell(h, ops, p_cell, None, TINY)[0])  # noqa: B023
    for arch in list(all_archs())[::61]:
        out = np.asarray(cell(jnp.asarray(arch.ops)))
        assert (np.abs(out).max() == 0.0) == arch.is_dead, arch


def test_unselected_ops_get_zero_gradient(tiny):
    params, x = tiny
    ops = jnp.asarray((2, 2, 2, 2, 2, 2))  # only 1x1 convs
    g = jax.jit(jax.grad(lambda p: network.apply(p, ops, x, TINY).sum()))(params)
    assert float(jnp.abs(g["stages"][0]["conv3x3"]["w"]).max()) == 0.0
    assert float(jnp.abs(g["stages"][0]["conv1x1"]["w"]).max()) > 0.0


def test_init_is_kaiming_fan_out_and_deterministic():
    cfg = network.NetworkConfig(channels=16, cells_per_stage=5)
    p = network.init(jax.random.PRNGKey(0), cfg)
    w = np.asarray(p["stages"][2]["conv3x3"]["w"])
    assert w.std() == pytest.approx(np.sqrt(2 / (9 * 64)), rel=0.02)
    assert np.asarray(p["head"]["w"]).std() == pytest.approx(0.01, rel=0.1)
    q = network.init(jax.random.PRNGKey(0), cfg)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)))


def _active_param_count(params, arch: Arch) -> int:
    """Count parameters of the supernet that the cell actually uses (independent of cost.num_params)."""
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        keys = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
        if keys[0] == "stages":
            op = {"conv1x1": "nor_conv_1x1", "conv3x3": "nor_conv_3x3"}[keys[2]]
            per_edge = leaf.size // (leaf.shape[0] * leaf.shape[1])
            total += leaf.shape[0] * per_edge * sum(OPS[o] == op for o in arch.ops)
        else:
            total += leaf.size
    return total


def test_param_count_matches_the_instantiated_network():
    params = network.init(jax.random.PRNGKey(0), network.NetworkConfig())
    for arch in list(all_archs())[::977] + [BEST]:
        assert cost.num_params(arch) == _active_param_count(params, arch)


def test_param_count_matches_nas_bench_201(data_dir):
    assert cost.num_params(BEST) / 1e6 == pytest.approx(1.531, rel=0.01)  # the benchmark's published 1.531 MB
    table = pd.read_csv(data_dir / "nb201" / "cifar10_clean_acc.csv")
    ours = np.array([cost.num_params(Arch.from_string(s)) for s in table["arch_str"]])
    rho = spearmanr(ours, table["params_mb"]).statistic
    assert rho >= 0.99  # measured: 0.99933 (15421 of 15625 rows equal to the table's params_mb exactly)
    assert np.mean(np.isclose(ours / 1e6, table["params_mb"], atol=1e-6)) > 0.98


def test_flops_equal_the_published_table_on_every_cell(data_dir):
    table = pd.read_csv(data_dir / "zero_cost" / "nb201_cifar10_proxies.csv")
    ours = np.array([cost.flops(Arch.from_string(s)) for s in table["arch_str"]])
    assert len(table) > 9000
    np.testing.assert_array_equal(np.round(ours / 1e6, 6), np.round(table["flops"].to_numpy(), 6))


def test_flops_rules_on_the_smallest_network():
    """torchstat's rules summed by hand for C = 1, N = 1, 4×4 images, 2 classes, a cell of one 1×1 conv edge
    (edge 0) and one average pool (edge 5), the rest ``none``."""
    arch = Arch.from_string("|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~2|")
    config = network.NetworkConfig(channels=1, cells_per_stage=1, input_size=4, num_classes=2)
    stem = 16 * 27 + 2 * 16  # 3×3 conv 3→1 on 16 positions, BN
    cells = [(16, 1), (4, 2), (1, 4)]  # (positions, channels) per stage
    edges = sum(p * c * c + 3 * p * c + 9 * p * c for p, c in cells)  # 1×1 conv + ReLU + BN; 3×3 pool
    blocks = 0
    for (p, c), (q, d) in zip(cells, cells[1:]):  # ReLU, conv_a, BN; ReLU, conv_b, BN; pool 2×2, 1×1 conv
        blocks += p * c + q * 9 * c * d + 2 * q * d + q * d + q * 9 * d * d + 2 * q * d + 4 * q * c + q * c * d
    head = 3 * 4 + 4 * (1 + 1) ** 2 + 4 * 2  # BN-ReLU on 1×1×4, global pool over 1×1 as (H+1)(W+1), classifier
    assert cost.flops(arch, config) == stem + edges + blocks + head


@pytest.mark.slow
def test_real_shape_one_compilation_for_fifty_cells():
    cfg = network.NetworkConfig()
    params = network.init(jax.random.PRNGKey(0), cfg)
    x = jax.random.uniform(jax.random.PRNGKey(1), (8, 32, 32, 3))
    forward = jax.jit(network.apply, static_argnames="config")
    before = forward._cache_size()  # jit caches are shared by wrappers of the same function
    cells = list(all_archs())[::311]
    assert len(cells) >= 50
    for arch in cells:
        logits = np.asarray(forward(params, jnp.asarray(arch.ops, jnp.int32), x, config=cfg))
        assert logits.shape == (8, 10) and np.isfinite(logits).all()
    assert forward._cache_size() == before + 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=0), "channels must be a positive int"), (dict(input_size=10), "divisible by 4"),
    (dict(bn_mode="eval"), "bn_mode must be one of"), (dict(mean=(0.5,)), "mean/std need 3 values"),
])
def test_bad_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        network.NetworkConfig(**kwargs)
