"""Zero-cost proxies of an NB201 cell, natively in JAX: NASWOT, jacob_cov, synflow and MeCo as published, and a
variant of MeCo.

They are not NTK quantities; each is computed here because it is related to the NTK at initialisation:

* **Activation-pattern kernel** (NASWOT, Mellor et al. 2021). With ``c_u(x) = 1[h_u(x) > 0]`` the on/off state of
  ReLU unit ``u`` (``h_u`` its *input*), over all ReLU units of the network::

      K_H(x_i, x_j) = Σ_u [c_u(x_i) c_u(x_j) + (1 − c_u(x_i))(1 − c_u(x_j))] = N_A − d_Hamming(c(x_i), c(x_j))

  and ``naswot = log |det K_H|``. For a ReLU network the NTK recursion is ``Θ_{l+1} = Σ_{l+1} + Σ̇_{l+1} ⊙ Θ_l``
  with ``Σ̇(x, x') = E[σ'(h(x)) σ'(h(x'))]`` — the agreement of activation patterns; ``K_H`` is its empirical,
  finite-width counterpart (counting agreement on both sides of zero), so a well-conditioned ``K_H`` is a
  well-conditioned multiplicative factor of every layer's NTK term.
* **Input-Jacobian correlation** (jacob_cov, Mellor et al. 2020). ``J_i = ∂(Σ_a f_a(x_i))/∂x_i``, ``C`` the
  correlation matrix of the ``J_i`` across the batch, ``v`` its eigenvalues, ``k = 1e-5``::

      jacov = −Σ_i [log(v_i + k) + 1/(v_i + k)]

  (larger = less correlated input gradients). The input Jacobian is what carries an input perturbation to the
  output (the robust NTK is the NTK at ``x + δ``, ``δ`` found along ``J``): decorrelated ``J_i`` mean the network
  tells nearby images apart locally.
* **Synaptic flow** (synflow, Tanaka et al. 2020; Abdelfattah et al. 2021). Every weight replaced by its absolute
  value, BN as the identity (eval mode at init), the all-ones (normalised) input, float64, ``R = Σ_a f_a(1)``::

      synflow = Σ_{w ∈ conv, linear weights} w · ∂R/∂w   (all terms ≥ 0)

  which is ``Σ_paths (#weights on the path) · Π_{w ∈ path} |w|`` — a path-norm capacity measure (path norms bound
  the generalisation gap; Neyshabur et al. 2015), and reported as ``log synflow``.

* **Feature-correlation minimum eigenvalue** (MeCo, Jiang et al. 2023). For the input ``h_l(x) ∈ R^{P×C_l}`` of
  ReLU layer ``l`` (``P`` positions, ``C_l`` channels), ``P_l(x)`` the ``C_l × C_l`` Pearson correlation of its
  channels across the positions (a constant channel correlates 0 with every channel, itself included)::

      meco = Σ_l C_l · mean_i λ_min(P_l(x_i))

  the λ_min argument of the NTK theory (a kernel's smallest eigenvalue bounds how fast gradient descent fits,
  Du et al. 2019; the paper's ``λ_min(K̃)``) applied to each layer's feature Gram: channels that are not linear
  combinations of each other. Published MeCo uses one image and every module's output; ours averages over the
  batch and weights each ReLU layer by its width (``C_l λ_min ∈ [0, C_l]``): ``zc.meco`` is this variant, not the
  published number (MeCo's code, HamsterMimi/MeCo ``zero-cost-nas/foresight/pruners/measures/meco.py``, hooks every
  PyTorch module of the network and sums ``λ_min`` of the channel correlation of the first image's output of each;
  the copy under ``correlation/`` replaces the input by one Gaussian 64×64 image). A layer with at least as many channels as positions
  (``C_l ≥ H·W``, e.g. 32 channels on 4×4 at the default 16×16 input) has a singular ``P_l``: its ``λ_min`` is 0 up to
  float32 rounding (about ``1e-7``), so such layers add rounding noise of order ``1e-6``, not signal.
* **MeCo as its code computes it** (``zc.meco_published``, :func:`meco_published`): the sum, over every module of
  the PyTorch network MeCo scores (``correlation/foresight/models/nasbench2*.py``, hooked by
  ``correlation/NAS_Bench_201.py`` with one training image, BN in train mode), of ``λ_min`` of the channel
  correlation of that module's output for the image; here on the first image of the proxies' batch. Modules
  whose output is a vector (the global pool, the classifier, the network, ``top``) and ``none`` edges give 0; a
  ReLU-conv-BN counts its BN output three times (the wrapper, its ``Sequential``, the BN) and its convolution once
  (with BN in train mode the two have the same correlation), its ReLU's output once; a pool edge twice; a skip
  edge its input once; each cell its output, and each stage its last cell's output once more; a residual block
  its output, its shortcut twice (``Sequential`` and 1×1 conv) and the shortcut's 2×2 pool; the stem its BN output
  four times; the head ``BN`` once and the ``ReLU`` after it twice.

Conventions where ours differ from the published tables (``../shared/data/zero_cost``, computed with PyTorch):
BN statistics of the batch are held constant when differentiating (our NTK's convention, so each sample's
Jacobian is its own), and the input gradient is taken w.r.t. the ``[0, 1]`` image, before normalisation.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .cell import network
from .cell.conv import lax_conv
from .kernels import eigen, theory

JACOV_K = 1e-5


def channel_correlation_min_eigenvalue(features: jax.Array) -> jax.Array:
    """``λ_min(P(x_i))`` per image of ``features`` ``(n, H, W, C)``: ``P`` the ``C × C`` Pearson correlation of the
    channels across the ``H·W`` positions; a constant channel gets a zero row and column (MeCo's NaN → 0)."""
    def correlation(f):
        f = f.reshape(-1, f.shape[-1])
        f = f - f.mean(0)
        norm = jnp.sqrt(jnp.sum(f * f, 0))
        z = f / jnp.where(norm > 0, norm, 1.0)
        return z.T @ z

    return eigen.eigvalsh(jax.vmap(correlation)(features))[:, 0]


def _corr_min(z: jax.Array) -> jax.Array:
    """``λ_min`` of the channel correlation of one image's module output ``z`` ``(1, H, W, C)``."""
    return channel_correlation_min_eigenvalue(z)[0]


def _edge_modules(op, x, y) -> jax.Array:
    """The modules of one edge (op index ``op``, input ``x``, output ``y``): none, skip, conv 1×1, conv 3×3, pool."""
    conv = lambda: _corr_min(jax.nn.relu(x)) + 4.0 * _corr_min(y)  # noqa: E731
    return lax.switch(op, [lambda: jnp.zeros((), x.dtype), lambda: _corr_min(x), conv, conv,
                           lambda: 2.0 * _corr_min(y)])


def meco_published(params, ops, image: jax.Array, config: network.NetworkConfig) -> jax.Array:
    """MeCo as its authors' code computes it (module docstring): ``Σ_modules λ_min(P(output))`` for one ``image``
    ``(1, H, W, 3)``, BN on the image's own statistics."""
    batch = network.NetworkConfig(**{**config.__dict__, "bn_mode": "batch"})
    x = (image - jnp.asarray(config.mean, image.dtype)) / jnp.asarray(config.std, image.dtype)
    h, _ = network._conv_bn_layer(params["stem"], x, None, batch)
    total = 4.0 * _corr_min(h)
    for stage in range(3):
        cells = params["stages"][stage]
        for c in range(config.cells_per_stage):
            nodes, e = [h], 0
            for target in (1, 2, 3):
                acc = 0.0
                for source in range(target):
                    p_e = jax.tree.map(lambda a: a[c, e], cells)  # noqa: B023
                    y, _ = network._edge(ops[e], nodes[source], p_e, None, batch)
                    total = total + _edge_modules(ops[e], nodes[source], y)
                    acc, e = acc + y, e + 1
                nodes.append(acc)
            h = nodes[3]
            total = total + _corr_min(h)
        total = total + _corr_min(h)  # the stage's Sequential: its last cell's output again
        if stage < 2:
            p = params["reductions"][stage]
            a, _ = network._relu_conv_bn_layer(p["conv_a"], h, None, batch, stride=2)
            b, _ = network._relu_conv_bn_layer(p["conv_b"], a, None, batch)
            short, _ = network._shortcut_layer(p["shortcut"], h, None, batch)
            pooled = lax.reduce_window(h, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0
            total = total + _corr_min(jax.nn.relu(h)) + 4.0 * _corr_min(a) + _corr_min(jax.nn.relu(a)) + \
                4.0 * _corr_min(b) + 2.0 * _corr_min(short) + _corr_min(pooled) + _corr_min(short + b)
            h = short + b
    normed, _ = network._batch_norm(h, params["head"]["scale"], params["head"]["bias"], None, batch)
    return total + _corr_min(normed) + 2.0 * _corr_min(jax.nn.relu(normed))


def pattern_agreements(pre: jax.Array) -> jax.Array:
    """One ReLU layer's share of ``K_H`` from its input ``pre`` ``(n, H, W, C)``: ``c cᵀ + (1 − c)(1 − c)ᵀ``,
    ``c = 1[pre > 0]`` flattened per image."""
    c = (pre > 0).reshape(pre.shape[0], -1).astype(jnp.float32)
    return c @ c.T + (1 - c) @ (1 - c).T


def feature_gram_min_eigenvalue(pre: jax.Array) -> jax.Array:
    """``λ_min(F Fᵀ / tr F Fᵀ)`` of the features ``F = ReLU(pre)`` ``(n, H·W·C)`` of one layer over the batch (0 for
    all-zero features): the per-layer feature Gram whose smallest eigenvalue lower-bounds ``λ_min`` of a deep ReLU
    network's NTK (Nguyen, Mondelli & Montúfar, ICML 2021), made scale-free."""
    f = jax.nn.relu(pre).reshape(pre.shape[0], -1)
    gram = jnp.dot(f, f.T, precision=jax.lax.Precision.HIGHEST)
    trace = jnp.trace(gram)
    return jnp.where(trace > 0, eigen.eigvalsh(gram / jnp.where(trace > 0, trace, 1.0))[0], 0.0)


def layer_statistics(pre: jax.Array) -> dict[str, jax.Array]:
    """One ReLU layer's share of :func:`relu_input_statistics` from its input ``pre`` ``(n, H, W, C)``: the pattern
    agreements (:func:`pattern_agreements`), ``C · mean_i λ_min(P(x_i))`` and ``C · λ_min`` of the feature Gram
    (:func:`feature_gram_min_eigenvalue`)."""
    return {"pattern_kernel": pattern_agreements(pre),
            "correlation": pre.shape[-1] * jnp.mean(channel_correlation_min_eigenvalue(pre)),
            "feature_gram": pre.shape[-1] * feature_gram_min_eigenvalue(pre)}


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _statistics_layer(statistics, fn, p, x, stats, acc):
    """``fn(p, x, stats)[0]``; its VJP returns ``statistics`` of the layer's ReLU input for ``acc`` (not a
    gradient)."""
    return fn(p, x, stats, conv=lax_conv)[0]


def _statistics_layer_fwd(statistics, fn, p, x, stats, acc):
    return _statistics_layer(statistics, fn, p, x, stats, acc), (p, x, stats, acc)


def _statistics_layer_bwd(statistics, fn, residuals, g):
    p, x, stats, acc = residuals
    pre = network.relu_input(fn, p, x, stats)
    contribution = jax.tree.map(jnp.zeros_like, acc) if pre is None else statistics(pre)
    # the cotangents themselves are not needed: zeros keep every earlier layer's backward pass (and its share) alive
    return (jax.tree.map(jnp.zeros_like, p), jnp.zeros_like(x), jax.tree.map(jnp.zeros_like, stats), contribution)


_statistics_layer.defvjp(_statistics_layer_fwd, _statistics_layer_bwd)


def _statistics_hook(statistics, acc):
    def layer(fn, p, h, s):
        y = _statistics_layer(statistics, fn, p, h, s, acc)
        return y, jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(fn, p, h, s)[1])

    return layer


@partial(jax.jit, static_argnames=("config", "statistics"))
def relu_input_statistics(params, ops, x: jax.Array, config: network.NetworkConfig,
                          statistics: Callable[[jax.Array], Any] = layer_statistics) -> Any:
    """``Σ_l statistics(h_l)`` over the input ``h_l`` ``(n, H, W, C_l)`` of every ReLU whose layer the cell ``ops``
    uses (edge ops ``nor_conv_*``, the residual blocks, the head's final ReLU) on images ``x``: by default
    (:func:`layer_statistics`) ``"pattern_kernel"``, ``K_H`` ``(n, n)``, and ``"correlation"``,
    ``Σ_l C_l · mean_i λ_min(P_l(x_i))``, and ``"feature_gram"``, ``Σ_l C_l · λ_min(F_l F_lᵀ / tr)``. ``statistics`` maps one layer's input to a pytree of fixed shapes (the
    same for every layer). One forward and one backward pass: the backward pass only collects each layer's share;
    BN uses the batch's own statistics, as in the forward."""
    shapes = jax.eval_shape(statistics, jax.ShapeDtypeStruct((x.shape[0], 2, 2, 2), x.dtype))

    def logits_of(acc):
        return network.forward(params, ops, x, config, None, layer=_statistics_hook(statistics, acc))[0]

    logits, vjp = jax.vjp(logits_of, jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes))
    return vjp(jnp.ones_like(logits))[0]


def activation_pattern_kernel(params, ops, x: jax.Array, config: network.NetworkConfig) -> jax.Array:
    """``K_H`` ``(n, n)`` of the cell ``ops`` on images ``x`` (:func:`relu_input_statistics` of
    :func:`pattern_agreements` alone: no eigendecompositions)."""
    return relu_input_statistics(params, ops, x, config, statistics=pattern_agreements)


def naswot(kernel) -> float:
    """``log det(K_H + δI)`` (float64), ``δ`` the ridge of :func:`ntkscore.kernels.theory.ridge` (``1e-8·tr K/n``): the
    log-determinant for any non-singular ``K_H``, and a finite, very low value for a singular one (samples that
    share a pattern, e.g. through a dead cell)."""
    k = np.asarray(kernel, np.float64)
    return float(np.linalg.slogdet(k + theory.ridge(k) * np.eye(len(k)))[1])


@partial(jax.jit, static_argnames="config")
def input_jacobians(params, ops, x: jax.Array, config: network.NetworkConfig) -> jax.Array:
    """``J_i = ∂(Σ_a f_a(x_i))/∂x_i`` for every image, shape of ``x``, BN statistics of the batch held constant."""
    stats = network.batch_statistics(params, ops, x, config) if config.bn_mode == "batch" else None

    def total(z):
        return network.apply(params, ops, z, config, stats, layer=network.input_gradient_layer).sum()

    return jax.grad(total)(x)


def jacov(jacobians) -> float:
    """``−Σ_i [log(v_i + k) + 1/(v_i + k)]``, ``v`` the eigenvalues of the correlation matrix of the flattened
    Jacobians (float64, :data:`JACOV_K`). A constant Jacobian (a network blind to its input, e.g. through a dead
    cell) has no correlation; it counts as perfectly correlated with every other, so a blind network gets the
    lowest value, ``−[log(n + k) + 1/(n + k) + (n − 1)(log k + 1/k)]``."""
    j = np.asarray(jacobians, np.float64).reshape(len(jacobians), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(j), nan=1.0)
    v = np.clip(np.linalg.eigvalsh(corr), 0.0, None)
    return float(-np.sum(np.log(v + JACOV_K) + 1.0 / (v + JACOV_K)))


def _is_weight(path) -> bool:
    """Convolution and linear weights: leaves named ``w`` and the residual shortcuts' bare 1×1 kernels."""
    return getattr(path[-1], "key", None) in ("w", "shortcut")


def synflow_per_weight(params, ops, config: network.NetworkConfig):
    """``|w| · ∂R/∂w`` for every conv/linear weight (zeros elsewhere), ``R = Σ_a f_a(1)`` of the network with
    ``|θ|`` for every parameter, identity BN and the all-ones normalised input, in float64 (one compiled program)."""
    identity_bn = network.NetworkConfig(**{**config.__dict__, "bn_mode": "identity"})
    with jax.enable_x64(True):
        return jax.tree.map(np.asarray, _synflow_per_weight(params, jnp.asarray(ops, jnp.int32), identity_bn))


@partial(jax.jit, static_argnames="config")
def _synflow_per_weight(params, ops, config):
    positive = jax.tree.map(lambda a: jnp.abs(jnp.asarray(a, jnp.float64)), params)
    ones = (jnp.asarray(config.mean, jnp.float64) + jnp.asarray(config.std, jnp.float64)) * \
        jnp.ones((1,) + config.input_shape, jnp.float64)  # (x − mean)/std = 1
    grads = jax.grad(lambda q: network.apply(q, ops, ones, config).sum())(positive)
    return jax.tree_util.tree_map_with_path(
        lambda path, w, g: w * g if _is_weight(path) else jnp.zeros_like(w), positive, grads)


def _identity_bn(config: network.NetworkConfig) -> network.NetworkConfig:
    return network.NetworkConfig(**{**config.__dict__, "bn_mode": "identity"})


@partial(jax.jit, static_argnames="config")
def _synflow_total(params, ops, config):
    return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(_synflow_per_weight(params, ops, config)))


def _call(fn, *args, **static):
    return fn(*args, **static)


def synflow(params, ops, config: network.NetworkConfig, run: Callable = _call) -> float:
    """``log Σ_w |w| · ∂R/∂w`` (:func:`synflow_per_weight`); ``log`` of the smallest positive float64 (−708)
    when no path reaches the output. ``run(fn, *args, **static)`` calls the compiled program (e.g. an
    :class:`ntkscore.exported.Programs`)."""
    with jax.enable_x64(True):
        total = float(run(_synflow_total, params, jnp.asarray(ops, jnp.int32), config=_identity_bn(config)))
    return float(np.log(max(total, np.finfo(np.float64).tiny)))


@partial(jax.jit, static_argnames="config")
def _float32_proxies(params, ops, x, config):
    """The ReLU-input statistics, the input Jacobians and MeCo of the first image: one compiled program."""
    return (relu_input_statistics(params, ops, x, config), input_jacobians(params, ops, x, config),
            meco_published(params, ops, x[:1], config))


def compile_programs(params, ops, x: jax.Array, config: network.NetworkConfig, programs) -> None:
    """Load or compile, without running them, the programs :func:`proxy_scores` runs through ``programs`` (an
    :class:`ntkscore.exported.Programs`) for these argument shapes."""
    ops = jnp.asarray(ops, jnp.int32)
    programs.compile(_float32_proxies, params, ops, x, config=config)
    with jax.enable_x64(True):
        programs.compile(_synflow_total, params, ops, config=_identity_bn(config))


def proxy_scores(params, ops, x: jax.Array, config: network.NetworkConfig,
                 run: Callable = _call) -> dict[str, float]:
    """``{"zc.naswot", "zc.jacov", "zc.synflow", "zc.meco", "zc.meco_published"}`` of one cell on the batch ``x``
    (larger = better; MeCo's on its first image), and
    ``features.lambda_min`` ``Σ_l C_l λ_min(F_l F_lᵀ / tr F_l F_lᵀ)`` over the post-ReLU features of every ReLU layer
    (the per-layer feature Gram of the NTK family, :func:`feature_gram_min_eigenvalue`); ``run`` as in
    :func:`synflow`."""
    ops = jnp.asarray(ops, jnp.int32)
    relu, jacobians, meco = run(_float32_proxies, params, ops, x, config=config)
    return {"zc.naswot": naswot(relu["pattern_kernel"]),
            "zc.meco": float(relu["correlation"]),
            "zc.meco_published": float(meco),
            "features.lambda_min": float(relu["feature_gram"]),
            "zc.jacov": jacov(jacobians),
            "zc.synflow": synflow(params, ops, config, run)}
