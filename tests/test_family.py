"""The NTK family against independent references: eager NumPy from an explicit ``jax.jacrev`` Jacobian on the tiny
network (C = 4, N = 1, 8×8), and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY, TINY_SETTINGS
from jax.flatten_util import ravel_pytree
from scipy.sparse.linalg import LinearOperator, eigsh
from test_layerwise import CELLS, _cell_jacobian
from test_ntk import _rel

from ntkscore.cell import network
from ntkscore.cell.space import Arch
from ntkscore.kernels import family, layerwise
from ntkscore.scores.scorer import Scorer, ScoreSettings

K = TINY.num_classes
apply = jax.jit(network.apply, static_argnames="config")  # one program for every cell (ops are data)
family_lanes = jax.jit(layerwise.family_lanes, static_argnames="config")
softmax_weighted_kernels = jax.jit(layerwise.softmax_weighted_kernels, static_argnames="config")


@pytest.fixture(scope="module")
def reference():
    """Parameters, a batch of 5 images with labels, and per cell its BN statistics and explicit Jacobian."""
    params = network.init(jax.random.PRNGKey(0), TINY)
    kx, ky = jax.random.split(jax.random.PRNGKey(3))
    x = jax.random.uniform(kx, (5, 8, 8, 3))
    y = jax.random.randint(ky, (5,), 0, K)
    cells = {}
    for arch in CELLS[:2] + CELLS[3:]:
        ops = jnp.asarray(Arch.from_string(arch).ops, jnp.int32)
        stats = network.batch_statistics(params, ops, x, TINY)
        jac = np.asarray(_cell_jacobian(params, ops, x, stats), np.float64).reshape(5, K, -1)
        logits = np.asarray(apply(params, ops, x, TINY, stats), np.float64)
        cells[arch] = (ops, stats, jac, logits)
    return params, x, y, cells


def _layer_columns(params, path) -> np.ndarray:
    """Boolean mask over the raveled parameters: the columns of the layer ``path``."""
    masks = jax.tree.map(lambda a: np.zeros(a.shape, bool), params)
    if path[0] in ("stem", "head"):
        masks[path[0]] = jax.tree.map(lambda a: np.ones(a.shape, bool), masks[path[0]])
    elif path[0].startswith("stage"):
        cell, edge = int(path[1][4:]), int(path[2][4:])
        for leaf in masks["stages"][int(path[0][-1]) - 1][path[3]].values():
            leaf[cell, edge] = True
    else:
        sub = masks["reductions"][int(path[0][-1]) - 1]
        sub[path[1]] = jax.tree.map(lambda a: np.ones(a.shape, bool), sub[path[1]])
    return np.asarray(ravel_pytree(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), masks))[0]) > 0


def _weight_columns(params) -> np.ndarray:
    """Boolean mask over the raveled parameters: the leaves not named ``bias`` (BN β) or ``b`` (classifier bias)."""
    masks = jax.tree_util.tree_map_with_path(
        lambda path, a: jnp.full(a.shape, path[-1].key not in ("bias", "b"), jnp.float32), params)
    return np.asarray(ravel_pytree(masks)[0]) > 0


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("arch", CELLS[:2] + CELLS[3:])
def test_layer_kernels_sum_and_loss_kernels_equal_explicit_jacobian(reference, arch):
    params, x, y, cells = reference
    ops, stats, jac, logits = cells[arch]
    layers, k_sum, k_sum_all, k_loss = (np.asarray(a, np.float64) for a in
                                        family_lanes(params, ops, [x], [stats], y, TINY))
    whole = np.einsum("iap,jap->ij", jac, jac)
    assert _rel(layers.sum(0), whole) < 1e-5
    paths = network.layer_paths(TINY)
    assert layers.shape == (len(paths), 5, 5)
    for path, got in zip(paths, layers):
        cols = _layer_columns(params, path)
        ref = np.einsum("iap,jap->ij", jac[..., cols], jac[..., cols])
        assert np.abs(got - ref).max() <= 1e-5 * np.abs(whole).max() + 1e-6 * np.abs(ref).max(), path
    g_sum = jac.sum(1)
    assert _rel(k_sum_all, g_sum @ g_sum.T) < 1e-5
    weights = _weight_columns(params)  # TE-NAS: conv/linear weights and BN scales, no BN shifts, no classifier bias
    assert 0 < weights.sum() < weights.size
    assert _rel(k_sum, g_sum[:, weights] @ g_sum[:, weights].T) < 1e-5
    assert _rel(k_sum, k_sum_all) > 1e-4  # the biases' share is not negligible, so the test can tell them apart
    g_loss = np.einsum("ia,iap->ip", _softmax(logits) - np.eye(K)[np.asarray(y)], jac)
    assert _rel(k_loss, g_loss @ g_loss.T) < 1e-5


@pytest.mark.parametrize("arch", CELLS[:2])
def test_fisher_spectrum_equals_the_explicit_fisher(reference, arch):
    """The non-zero spectrum of F = (1/m) Σ_i J_iᵀ (diag p_i − p_i p_iᵀ) J_i, F applied from the explicit
    Jacobian (no square root, no Gram identity), against the softmax-weighted full-mode NTK; two batches (images
    0–2 and 3–4) in one pass, each block against its own images' Fisher."""
    params, x, y, cells = reference
    ops, stats, jac, logits = cells[arch]
    blocks = softmax_weighted_kernels(params, ops, [x[:3], x[3:]], [stats, stats], TINY)
    for block, images in zip(blocks, (slice(0, 3), slice(3, 5))):
        j, p = jac[images], _softmax(logits[images])
        m, size = len(j), jac.shape[-1]
        got = family.fisher_spectrum(block, m, K)
        cov = np.stack([np.diag(q) - np.outer(q, q) for q in p])

        def fisher_times(v, j=j, cov=cov, m=m):
            jv = j @ np.ravel(v)  # (m, k)
            return np.einsum("iap,ia->p", j, np.einsum("iab,ib->ia", cov, jv)) / m

        f = LinearOperator((size, size), dtype=np.float64, matvec=fisher_times)
        ref = np.sort(eigsh(f, k=m * (K - 1), which="LA", tol=1e-10)[0])[::-1]
        assert got.shape == (m * (K - 1),)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6 * ref.max())


def test_host_proxies_equal_their_formulas(reference):
    params, x, y, cells = reference
    ops, stats, jac, logits = cells[CELLS[1]]
    theta = np.einsum("iap,jap->ij", jac, jac)
    g = jac.sum(1)
    w = g[:, _weight_columns(params)]
    out = family.kernel_proxies(theta, w @ w.T, g @ g.T, np.outer(np.arange(5.0), np.arange(5.0)), np.asarray(y), K)
    eig = np.linalg.eigvalsh(w @ w.T)
    assert out["tenas_condition"] == pytest.approx(eig[-1] / eig[0], rel=1e-6)
    eig = np.linalg.eigvalsh(g @ g.T)
    assert out["tenas_condition_all"] == pytest.approx(eig[-1] / eig[0], rel=1e-6)
    assert out["nasi_trace"] == pytest.approx(np.trace(theta) / 5)
    assert out["knas"] == pytest.approx(np.mean(np.outer(np.arange(5.0), np.arange(5.0))))
    h = np.eye(5) - 1 / 5
    yy = np.eye(K)[np.asarray(y)] @ np.eye(K)[np.asarray(y)].T
    a, b = h @ theta @ h, h @ yy @ h
    assert out["cka"] == pytest.approx(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))
    # Mok et al.'s LGA, entry by entry: ±1 same/different-label matrix, both sides centred by their global mean
    labels = np.asarray(y)
    same = np.array([[1.0 if labels[i] == labels[j] else -1.0 for j in range(5)] for i in range(5)])
    num = sum((theta[i, j] - theta.mean()) * (same[i, j] - same.mean()) for i in range(5) for j in range(5))
    norm = np.sqrt(sum((theta[i, j] - theta.mean()) ** 2 for i in range(5) for j in range(5))
                   * sum((same[i, j] - same.mean()) ** 2 for i in range(5) for j in range(5)))
    assert out["lga"] == pytest.approx(num / norm, rel=1e-9)


def test_alignment_closed_forms():
    y = np.array([0, 1, 1, 2, 0, 2])
    yy = np.eye(3)[y] @ np.eye(3)[y].T
    assert family.label_alignment(yy, y, 3) == pytest.approx(1.0)
    assert family.label_alignment(3.0 * yy + 2.0, y, 3) == pytest.approx(1.0)  # centring removes the constant
    assert family.label_alignment(np.ones((6, 6)), y, 3) == 0.0  # a constant kernel has no centred part
    assert float(family.label_alignment(jnp.asarray(yy, jnp.float32), jnp.asarray(y), 3)) == pytest.approx(1.0)


def test_layer_spectra_and_aggregates_closed_forms():
    """Θ_1 = I (λ_min(I/n) = 1/n, rank n), Θ_2 = 11ᵀ (λ_min 0, rank 1), Θ_3 = 0 (unused); Weyl: the aggregate
    lower-bounds λ_min(Θ)/tr Θ."""
    n = 4
    layers = jnp.stack([jnp.eye(n), jnp.ones((n, n)), jnp.zeros((n, n))])
    s = {k: np.asarray(v) for k, v in family.layer_spectra(layers, jnp.arange(n) % 2, 2).items()}
    np.testing.assert_allclose(s["trace"], [n, n, 0])
    np.testing.assert_allclose(s["lambda_min"], [1 / n, 0, 0], atol=1e-6)
    np.testing.assert_allclose(s["effective_rank"], [n, 1, 0], rtol=1e-5)
    agg = family.layer_aggregates(s, widths=[8, 16, 32])
    assert agg["layers.weyl_lambda_min"] == pytest.approx(1 / (2 * n), abs=1e-6)
    assert agg["layers.weyl_lambda_min"] <= np.linalg.eigvalsh(np.eye(n) + np.ones((n, n)))[0] / (2 * n) + 1e-9
    assert agg["layers.width_lambda_min"] == pytest.approx(8 / n, abs=1e-5)
    assert agg["layers.effective_rank"] == pytest.approx((n + 1) / 2, rel=1e-5)  # the unused layer is left out


def test_fisher_scores_of_a_flat_spectrum():
    out = family.fisher_scores(np.full(18, 2.0))
    assert out["fisher_entropy"] == pytest.approx(np.log(18))
    assert out["vkdnw"] == pytest.approx(np.log(9))
    assert out["fisher_decile5"] == pytest.approx(2.0)


def test_scorer_reports_the_family_for_clean_and_robust_kernels():
    settings = ScoreSettings(**{**TINY_SETTINGS, "proxies": False, "family": True})
    score = Scorer(settings)(CELLS[1])
    for kernel in family.KERNELS:
        for name in family.PROXIES + family.DECILES + family.LAYER_AGGREGATES:
            assert np.isfinite(score[f"{kernel}.{name}"]), (kernel, name)
    table = score.layer_table()
    # the cell's convolutions (4 of its edges), the stem, two residual blocks of three layers, the head
    assert len(table) == 3 * 4 + 1 + 2 * 3 + 1
    assert score["K.nasi_trace"] == pytest.approx(score["K.trace"] / settings.batch_size)
    off = Scorer(ScoreSettings(**{**TINY_SETTINGS, "proxies": False}))(CELLS[1])
    assert "K.lga" not in off.metrics and "K.cka" not in off.metrics and not off.layers
    assert off["K_rob.lambda_min"] == pytest.approx(score["K_rob.lambda_min"], rel=1e-4, abs=1e-6)
