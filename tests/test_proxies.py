import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY, TINY_SETTINGS
from scipy.linalg import hadamard

from ntkscore import proxies
from ntkscore.cell import network
from ntkscore.cell.conv import lax_conv
from ntkscore.cell.space import OPS, Arch
from ntkscore.scores.scorer import Scorer, ScoreSettings

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|none~0|+|avg_pool_3x3~0|none~1|+|avg_pool_3x3~0|none~1|avg_pool_3x3~2|",  # parameter-free cell
]
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture(scope="module")
def setup():
    params = network.init(jax.random.PRNGKey(0), TINY)
    x = jax.random.uniform(jax.random.PRNGKey(1), (6, 8, 8, 3))
    return params, x


def relu_units(arch: Arch, c: int = 4, n: int = 1, side: int = 8) -> int:
    """ReLU inputs per image, counted from the macro skeleton: every conv edge of every cell, the two ReLU-conv
    layers of each residual block, and the head's final ReLU."""
    conv_edges = sum(OPS[o].startswith("nor_conv") for o in arch.ops)
    stages = sum(conv_edges * n * (side // 2**s) ** 2 * c * 2**s for s in range(3))
    blocks = sum((side // 2**s) ** 2 * c * 2**s + (side // 2 ** (s + 1)) ** 2 * c * 2 ** (s + 1) for s in range(2))
    return stages + blocks + (side // 4) ** 2 * 4 * c


def recorded_relu_inputs(params, ops, x) -> list[np.ndarray]:
    """Run the forward pass eagerly (each ``lax.switch`` runs its chosen branch in Python) and record every ReLU's
    input, ``(n, H, W, C)`` each."""
    inputs = []

    def record(fn, p, h, s):
        pre = network.relu_input(fn, p, h, s)
        if pre is not None:
            inputs.append(np.asarray(pre, np.float64))
        return fn(p, h, s)

    with jax.disable_jit():
        network.apply(params, jnp.asarray(ops, jnp.int32), x, TINY, layer=record)
    return inputs


def recorded_pattern_kernel(params, ops, x):
    """Reference K_H: pattern agreements of the recorded ReLU inputs, counted with numpy."""
    c = np.concatenate([(pre > 0).reshape(len(pre), -1) for pre in recorded_relu_inputs(params, ops, x)], axis=1)
    c = c.astype(np.float64)
    return c @ c.T + (1 - c) @ (1 - c).T


def recorded_correlation(params, ops, x) -> float:
    """Reference MeCo term: ``Σ_l C_l · mean_i λ_min`` of numpy's channel correlation (NaN → 0, as MeCo does)."""
    total = 0.0
    for pre in recorded_relu_inputs(params, ops, x):
        c = pre.shape[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            lows = [np.linalg.eigvalsh(np.nan_to_num(np.corrcoef(f.reshape(-1, c).T), nan=0.0))[0] for f in pre]
        total += c * float(np.mean(lows))
    return total


@pytest.mark.parametrize("arch", CELLS)
def test_activation_pattern_kernel(setup, arch):
    params, x = setup
    arch = Arch.from_string(arch)
    k = np.asarray(proxies.activation_pattern_kernel(params, np.asarray(arch.ops), x, TINY))
    np.testing.assert_array_equal(np.diag(k), relu_units(arch))  # each image agrees with itself on every unit
    np.testing.assert_array_equal(k, recorded_pattern_kernel(params, arch.ops, x))


@pytest.mark.parametrize("arch", CELLS + [ALL_NONE])
def test_correlation_matches_recorded_relu_inputs(setup, arch):
    params, x = setup
    ops = np.asarray(Arch.from_string(arch).ops)
    got = float(proxies.relu_input_statistics(params, ops, x, TINY)["correlation"])
    assert got == pytest.approx(recorded_correlation(params, ops, x), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("arch", CELLS + [ALL_NONE])
def test_feature_gram_matches_recorded_relu_inputs(setup, arch):
    """``Σ_l C_l λ_min(F_l F_lᵀ / tr)``, ``F_l = ReLU(h_l)`` flattened per image, from numpy on every recorded input."""
    params, x = setup
    ops = np.asarray(Arch.from_string(arch).ops)
    ref = 0.0
    for pre in recorded_relu_inputs(params, ops, x):
        f = np.maximum(np.asarray(pre, np.float64), 0.0).reshape(len(pre), -1)
        gram = f @ f.T
        ref += pre.shape[-1] * (np.linalg.eigvalsh(gram / np.trace(gram))[0] if np.trace(gram) > 0 else 0.0)
    got = float(proxies.relu_input_statistics(params, ops, x, TINY)["feature_gram"])
    assert got == pytest.approx(ref, rel=1e-3, abs=1e-5)


def _corr_min_reference(output) -> float:
    """MeCo's hook on one module's output for one image: rows = channels (or the entries of a vector, one value
    each), ``torch.corrcoef``'s NaN/inf set to 0, the smallest real part of the eigenvalues."""
    o = np.asarray(output, np.float64)
    rows = o.reshape(-1, o.shape[-1]).T if o.ndim == 3 else o.reshape(-1, 1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a one-value row: NaN, as torch.corrcoef
        corr = np.atleast_2d(np.corrcoef(rows))
    corr[~np.isfinite(corr)] = 0.0
    return float(np.min(np.real(np.linalg.eigvals(corr))))


def meco_reference(params, arch: Arch, image, config) -> float:
    """MeCo's code on the PyTorch module tree of its NB201 network (``nasbench2.py`` / ``nasbench2_ops.py``), each
    module listed with its own output (the convolutions' before BN), run eagerly with Python control flow."""
    batch = network.NetworkConfig(**{**config.__dict__, "bn_mode": "batch"})
    bn = lambda z, p: network._batch_norm(z, p["scale"], p["bias"], None, batch)[0]  # noqa: E731
    conv = lambda z, w, stride=1: lax_conv(z, w, stride)  # noqa: E731
    relu = jax.nn.relu
    x = (image - jnp.asarray(config.mean)) / jnp.asarray(config.std)
    stem_conv = conv(x, params["stem"]["w"])
    h = bn(stem_conv, params["stem"])
    outputs = [stem_conv, h, h, h]  # stem.net.0 (Conv), stem.net.1 (BN), stem.net (Sequential), stem
    for s in range(3):
        for c in range(config.cells_per_stage):
            nodes, e = [h], 0
            for target in (1, 2, 3):
                acc = 0.0
                for source in range(target):
                    p = jax.tree.map(lambda a: a[c, e], params["stages"][s])  # noqa: B023
                    name, src = OPS[arch.ops[e]], nodes[source]
                    if name == "none":
                        y = jnp.zeros_like(src)
                        outputs.append(y)  # Zero
                    elif name == "skip_connect":
                        y = src
                        outputs.append(y)  # Identity
                    elif name == "avg_pool_3x3":
                        y = network._avg_pool_3x3(src)
                        outputs += [y, y]  # POOLING, its AvgPool2d
                    else:
                        layer = p[name.replace("nor_", "").replace("_", "")]
                        r = relu(src)
                        pre = conv(r, layer["w"])
                        y = bn(pre, layer)
                        outputs += [r, pre, y, y, y]  # ReLU, Conv2d, BatchNorm2d, Sequential, ReLUConvBN
                    acc, e = acc + y, e + 1
                nodes.append(acc)
            h = nodes[3]
            outputs.append(h)  # SearchCell
        outputs.append(h)  # stack_cell (Sequential)
        if s < 2:
            p = params["reductions"][s]
            r = relu(h)
            a_pre = conv(r, p["conv_a"]["w"], 2)
            a = bn(a_pre, p["conv_a"])
            r2 = relu(a)
            b_pre = conv(r2, p["conv_b"]["w"])
            b = bn(b_pre, p["conv_b"])
            pooled = jax.lax.reduce_window(h, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0
            short = conv(pooled, p["shortcut"])
            outputs += [r, a_pre, a, a, a, r2, b_pre, b, b, b, pooled, short, short, short + b]
            h = short + b
    normed = bn(h, params["head"])
    act = relu(normed)
    features = act.mean((1, 2))
    logits = features @ params["head"]["w"] + params["head"]["b"]
    outputs += [normed, act, act]  # lastact.0 (BN), lastact.1 (ReLU), lastact (Sequential)
    outputs += [features[:, None, None, :], features, logits, logits]  # global pool, top, classifier, network
    return sum(_corr_min_reference(o[0]) for o in outputs)


@pytest.mark.parametrize("arch", CELLS + [ALL_NONE])
def test_meco_published_equals_the_module_tree_reference(setup, arch):
    params, x = setup
    a = Arch.from_string(arch)
    got = float(jax.jit(proxies.meco_published, static_argnames="config")(
        params, jnp.asarray(a.ops, jnp.int32), x[:1], TINY))
    reference = meco_reference(params, a, x[:1], TINY)
    assert got == pytest.approx(reference, rel=1e-4, abs=1e-4)
    assert reference > 1.0  # the stem and the residual blocks give some in every cell: not a sum of zeros


def test_channel_correlation_min_eigenvalue_closed_forms():
    walsh = hadamard(16)[1:4].T.astype(np.float32)  # 3 zero-mean orthogonal channels over 16 positions: P = I
    r = 0.6  # channels a and r·a + sqrt(1 − r²)·b, a ⟂ b: P = [[1, r], [r, 1]], λ_min = 1 − r
    mixed = np.stack([walsh[:, 0], r * walsh[:, 0] + np.sqrt(1 - r**2) * walsh[:, 1]], axis=1)
    constant = np.concatenate([walsh, np.full((16, 1), 3.0, np.float32)], axis=1)  # a constant channel: row of 0
    got = [float(proxies.channel_correlation_min_eigenvalue(jnp.asarray(f).reshape(1, 4, 4, -1))[0])
           for f in (walsh, mixed, constant)]
    np.testing.assert_allclose(got, [1.0, 1.0 - r, 0.0], atol=1e-5)


def test_naswot_is_log_determinant():
    k = np.array([[4.0, 1.0], [1.0, 3.0]])
    assert proxies.naswot(k) == pytest.approx(np.log(11.0))
    singular = proxies.naswot(np.ones((3, 3)))  # rank 1: two eigenvalues at the ridge 1e-8·tr/n
    assert np.isfinite(singular) and singular == pytest.approx(np.log(3 + 1e-8) + 2 * np.log(1e-8), rel=1e-6)


def test_input_jacobians_per_sample(setup):
    """Batch Jacobian of the summed logits = each sample's own gradient with the batch's BN statistics fixed."""
    params, x = setup
    ops = jnp.asarray(Arch.from_string(CELLS[0]).ops, jnp.int32)
    stats = network.batch_statistics(params, ops, x, TINY)
    j = np.asarray(proxies.input_jacobians(params, ops, x, TINY))
    one = jax.grad(lambda z: network.apply(params, ops, z[None], TINY, stats).sum())
    np.testing.assert_allclose(j, jax.jit(jax.vmap(one))(x), rtol=1e-4, atol=1e-6)


def test_jacov_closed_forms():
    k = proxies.JACOV_K
    walsh = hadamard(8)[1:6].astype(float)  # zero-mean, mutually orthogonal rows: correlation = identity
    assert proxies.jacov(walsh) == pytest.approx(-5 * (np.log(1 + k) + 1 / (1 + k)))
    row = np.random.default_rng(1).normal(size=8)
    same = np.stack([row, 2 * row, 3 * row])  # perfectly correlated: eigenvalues 3, 0, 0
    expected = -(np.log(3 + k) + 1 / (3 + k) + 2 * (np.log(k) + 1 / k))
    assert proxies.jacov(same) == pytest.approx(expected, rel=1e-6)
    blind = -(np.log(3 + k) + 1 / (3 + k) + 2 * (np.log(k) + 1 / k))  # constant Jacobians: perfectly correlated
    assert proxies.jacov(np.zeros((3, 4))) == pytest.approx(blind, rel=1e-6)


def test_synflow_euler_identity(setup):
    """Every input-to-output path crosses the stem conv and the head's linear weight exactly once, and R is linear
    in each of them (bias 0), so Σ_{w in stem} w ∂R/∂w = Σ_{w in head} w ∂R/∂w = R (Euler)."""
    params, _ = setup
    ops = np.asarray(Arch.from_string(CELLS[0]).ops)
    per_weight = proxies.synflow_per_weight(params, ops, TINY)
    with jax.enable_x64(True):
        positive = jax.tree.map(lambda a: jnp.abs(jnp.asarray(a, jnp.float64)), params)
        cfg = network.NetworkConfig(**{**TINY.__dict__, "bn_mode": "identity"})
        ones = jnp.broadcast_to(jnp.asarray(TINY.mean, jnp.float64) + jnp.asarray(TINY.std, jnp.float64),
                                (1, 8, 8, 3))
        r = float(jax.jit(network.apply, static_argnames="config")(positive, jnp.asarray(ops), ones, cfg).sum())
    assert float(per_weight["stem"]["w"].sum()) == pytest.approx(r, rel=1e-9)
    assert float(per_weight["head"]["w"].sum()) == pytest.approx(r, rel=1e-9)
    assert float(per_weight["head"]["scale"].sum()) == 0.0  # BN parameters are not weights
    assert proxies.synflow(params, ops, TINY) > np.log(r)  # deeper paths count once per weight on them


def test_synflow_of_a_disconnected_cell(setup):
    params, _ = setup
    disconnected = proxies.synflow(params, np.asarray(Arch.from_string(ALL_NONE).ops), TINY)
    assert np.isfinite(disconnected) and disconnected < proxies.synflow(params, np.asarray(
        Arch.from_string(CELLS[2]).ops), TINY)  # lower than any cell with a path, even a parameter-free one


def test_scorer_proxies_only():
    scorer = Scorer(ScoreSettings(**{**TINY_SETTINGS, "kernels": "none"}))
    s = scorer(CELLS[0])
    assert {"zc.naswot", "zc.jacov", "zc.synflow", "zc.meco", "params"} <= set(s.metrics)
    assert not any(k.startswith("K") for k in s.metrics)
    full = Scorer(ScoreSettings(**TINY_SETTINGS))(CELLS[0])  # same terms beside the kernels
    assert {k: v for k, v in full.metrics.items() if k.startswith("zc.")} == \
        {k: v for k, v in s.metrics.items() if k.startswith("zc.")}
    with pytest.raises(ValueError, match="computes nothing"):
        ScoreSettings(kernels="none", proxies=False)
    with pytest.raises(ValueError, match="proxy_batch_size"):
        ScoreSettings(proxy_batch_size=1)
