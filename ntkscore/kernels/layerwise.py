"""Layerwise empirical NTK of the NB201 network: per-sample gradients contracted layer by layer in one backward pass.

The traced NTK is a sum over layers ``l`` (parameter groups ``W_l``) and logits ``a``::

    Θ(x_i, x_j) = Σ_a Σ_l ⟨∂f_a(x_i)/∂W_l, ∂f_a(x_j)/∂W_l⟩ = Σ_a Σ_l ⟨G_l(x_i, δ_l^a(x_i)), G_l(x_j, δ_l^a(x_j))⟩

where ``δ_l^a(x_i) = ∂f_a(x_i)/∂y_l`` is the cotangent at the layer's output and ``G_l`` the layer's own
per-sample parameter gradient (for a convolution ``im2col(ReLU(x))ᵀ · δ``, for BN ``Σ_hw δ·x̂`` and ``Σ_hw δ``).
So instead of materialising the ``n × k × P`` Jacobian of the whole supernet (:mod:`ntkscore.kernels.ntk`), every
parameterised layer is wrapped in a ``custom_vjp`` whose backward pass, besides the usual input cotangent, forms
``G_l`` for the ``n`` samples and returns ``G_l G_lᵀ`` as the cotangent of a dummy ``n × n`` input shared by all
layers; JAX sums those cotangents. One batched backward pass per logit (``vmap``-ed over the ``k`` logits) then
yields the whole kernel. What this buys, measured in ``benchmarks/speed.py``:

* layers inside an edge's ``lax.switch`` that the cell does not use cost nothing (the generic path materialises and
  contracts their zero gradients);
* the batches of a score (``X``, ``A(X)``, ``A(A(X))``) go through one forward and one backward pass together, each
  sample with its own batch's BN statistics (computed in that forward pass), and every cross kernel comes out of
  the same ``Gram`` matrix;
* each layer's forward pass keeps the pullback of the layer with its parameters broadcast to one copy per sample,
  so the backward pass gets every ``G_l`` and the input cotangent from one VJP, without recomputing the layer, and
  every convolution in an edge's branch is an ordinary NHWC/HWIO one (see
  :func:`ntkscore.cell.conv.per_sample_conv`): the switch costs what the chosen op costs.

Exact, not an approximation: it equals :func:`ntkscore.kernels.ntk.ntk_pairs` to float32 rounding (``tests/test_layerwise.py``).
Valid because, with BN statistics held constant, each sample's logits depend only on that sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from ..cell import network
from ..cell.conv import input_gradient_conv, per_sample_conv
from . import eigen


def _leaf_gram(leaf) -> jax.Array:
    """``G Gᵀ`` ``(n, n)`` of one leaf of per-sample gradients ``(n, ...)`` (one row per sample)."""
    flat = leaf.reshape(leaf.shape[0], -1)
    return lax.dot_general(flat, flat, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST)


BIASES = ("bias", "b")
"""The names of the additive parameters (BN shifts β, the classifier's bias): what ``weights`` leaves out."""


def is_weight(path) -> bool:
    """Whether the parameter at ``path`` (a key path into a layer's or the network's parameters) is a *weight* in
    TE-NAS's sense: its code keeps the PyTorch parameters named ``weight`` (convolution and linear weights and BN
    scales γ) and drops the biases."""
    keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
    return not keys or keys[-1] not in BIASES


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _gram_layer(fn, weights, p, x, stats, gram):
    """``fn(p, x, stats)[0]``; its VJP also returns ``Σ_leaves G Gᵀ`` (``G``: per-sample ∂/∂p) as the cotangent of
    the ``(n, n)`` dummy ``gram`` (the whole kernel's, or the layer's or group's own slot when the kernel is split).
    With ``weights``, ``gram`` is a pair and its second cotangent sums the weight leaves only (:func:`is_weight`).

    The forward pass takes the VJP of the layer with every parameter broadcast to one copy per sample
    (convolutions through :func:`ntkscore.cell.conv.per_sample_conv`): its pullback, kept as the residual,
    gives the per-sample parameter gradients and the input cotangent in one pass, with no recomputation.
    """
    return fn(p, x, stats, conv=input_gradient_conv)[0]


def _gram_layer_fwd(fn, weights, p, x, stats, gram):
    n = x.shape[0]
    per_sample = jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), p)
    y, pullback = jax.vjp(lambda q, z: fn(q, z, stats, conv=per_sample_conv)[0], per_sample, x)
    return y, (pullback, stats)


def _gram_layer_bwd(fn, weights, residuals, g):
    pullback, stats = residuals
    per_sample, dx = pullback(g)
    leaves = jax.tree_util.tree_leaves_with_path(per_sample)
    grams = [_leaf_gram(leaf) for _, leaf in leaves]
    contribution = sum(grams[1:], grams[0])
    if weights:
        kept = [gram for (path, _), gram in zip(leaves, grams) if is_weight(path)]
        contribution = (contribution, sum(kept[1:], kept[0]) if kept else jnp.zeros_like(contribution))
    zeros_p = jax.tree.map(lambda a: jnp.zeros(a.shape[1:], a.dtype), per_sample)
    return zeros_p, dx, jax.tree.map(jnp.zeros_like, stats), contribution


_gram_layer.defvjp(_gram_layer_fwd, _gram_layer_bwd)


def _per_sample_stats(stats_list: Sequence[network.Stats], sizes: Sequence[int]) -> network.Stats:
    """Each batch's BN statistics, leaf ``(..., C)``, repeated for its samples → ``(..., Σ sizes, C)``."""

    def expand(*leaves):
        return jnp.concatenate([jnp.broadcast_to(a[..., None, :], a.shape[:-1] + (m, a.shape[-1]))
                                for a, m in zip(leaves, sizes)], axis=-2)

    return jax.tree.map(expand, *stats_list)


SPLITS = ("none", "group", "layer")
"""How a kernel comes back: whole ``(n, n)``; by parameter group ``(len(network.GROUPS), n, n)``; by layer
``(len(network.layer_paths(config)), n, n)``."""


def _slots(config: network.NetworkConfig, split: str) -> tuple[dict[tuple[str, ...], int] | None, int]:
    """Layer path → slot of the gram, and the number of slots (``None, 0`` for ``split="none"``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    paths = network.layer_paths(config)
    if split == "layer":
        return {p: i for i, p in enumerate(paths)}, len(paths)
    if split == "group":
        return {p: network.GROUPS.index(p[0]) for p in paths}, len(network.GROUPS)
    return None, 0


class _GramHook:
    """The layer hook that routes each layer's ``G Gᵀ`` into ``gram`` (into ``gram[slots[path]]`` when split).

    ``own_stats`` (a callable ``x → (mean, var)``, see :func:`ntkscore.cell.network.per_batch_statistics`), when
    given, is what every BN layer that gets no statistics normalises with: each batch's own statistics, computed in
    this forward pass rather than in a separate one."""

    def __init__(self, gram, slots: dict[tuple[str, ...], int] | None, path: tuple[str, ...] = (), own_stats=None,
                 weights: bool = False):
        self.gram, self.slots, self.path, self.own_stats, self.weights = gram, slots, path, own_stats, weights

    def scope(self, name: str) -> "_GramHook":
        return _GramHook(self.gram, self.slots, self.path + (name,), self.own_stats, self.weights)

    def __call__(self, fn, p, h, s):  # split: the slot's own (n, n) leaf, so no layer's cotangent is (slots, n, n)
        if self.slots is None:
            gram = self.gram
        else:
            gram = tuple(g[self.slots[self.path]] for g in self.gram) if self.weights else self.gram[self.slots[self.path]]
        layer_fn = fn
        if s is None and self.own_stats is not None:
            layer_fn = partial(_with_stats, fn, self.own_stats)
        y = _gram_layer(layer_fn, self.weights, p, h, s, gram)
        if s is None:  # statistics computed in the layer, or identity BN: callers only need their structure
            s = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(fn, p, h, None)[1])
        return y, s


def _with_stats(fn, stats, p, x, _, **kwargs):
    """``fn(p, x, stats, **kwargs)`` whatever statistics it is called with."""
    return fn(p, x, stats, **kwargs)


def gram_lanes(params, ops, xs: Sequence[jax.Array], stats_list, config: network.NetworkConfig,
               cotangents_of: Callable[[jax.Array], jax.Array], split: str = "none", weights: bool = False):
    """``Σ_l ⟨v_iᵀ ∂f(x_i)/∂W_l, v_jᵀ ∂f(x_j)/∂W_l⟩`` for every *lane* of cotangents ``v``, over the samples of
    the concatenated batches ``xs``: ``(lanes, [slots,] N, N)``; with ``weights``, a pair of those: over every
    parameter, and over the weights only (:func:`is_weight`), from the same backward pass.

    ``cotangents_of(logits)`` maps the ``(N, k)`` logits of the forward pass to the ``(lanes, N, k)`` cotangents
    (e.g. the ``k`` unit vectors for the traced NTK, ones for the NTK of the summed logits, ``softmax − one-hot``
    for the loss-gradient kernel). One forward pass; one backward pass per lane, ``vmap``-ed.

    ``stats_list[i]`` are the BN statistics to use for ``xs[i]`` (:func:`ntkscore.cell.network.batch_statistics`);
    ``None``: in ``bn_mode="batch"`` each batch's own statistics, computed in this forward pass; else identity BN.
    """
    x = jnp.concatenate(list(xs), axis=0)
    n = x.shape[0]
    sizes = tuple(b.shape[0] for b in xs)
    stats = None if stats_list is None else _per_sample_stats(stats_list, sizes)
    own = partial(network.per_batch_statistics, sizes=sizes) if stats is None and config.bn_mode == "batch" else None
    slots, size = _slots(config, split)

    def logits_of(gram):
        hook = _GramHook(gram, slots, own_stats=own, weights=weights)
        return network.forward(params, ops, x, config, stats, layer=hook)[0]

    gram0 = tuple(jnp.zeros((n, n), x.dtype) for _ in range(size)) if slots else jnp.zeros((n, n), x.dtype)
    gram0 = (gram0, gram0) if weights else gram0
    logits, vjp = jax.vjp(logits_of, gram0)
    out = jax.vmap(vjp)(cotangents_of(lax.stop_gradient(logits)))[0]
    stacked = partial(jnp.stack, axis=1) if slots else (lambda a: a)
    return (stacked(out[0]), stacked(out[1])) if weights else stacked(out)


def output_cotangents(output: str, num_classes: int, n: int, dtype=jnp.float32) -> jax.Array:
    """The lanes of ``output``: the ``k`` unit vectors (``"trace"``, Σ over logits) or ones (``"sum"``)."""
    if output == "sum":
        return jnp.ones((1, n, num_classes), dtype)
    return jnp.broadcast_to(jnp.eye(num_classes, dtype=dtype)[:, None, :], (num_classes, n, num_classes))


def _gram(params, ops, xs, stats_list, config: network.NetworkConfig, output: str,
          by_group: bool = False) -> jax.Array:
    n = sum(b.shape[0] for b in xs)
    lanes = gram_lanes(params, ops, xs, stats_list, config,
                       lambda logits: output_cotangents(output, logits.shape[-1], n, logits.dtype),
                       "group" if by_group else "none")
    return lanes.sum(0)


def family_lanes(params, ops, xs: Sequence[jax.Array], stats_list, labels: jax.Array,
                 config: network.NetworkConfig, output: str = "trace") -> tuple[jax.Array, ...]:
    """In one backward pass over the concatenated batches ``xs`` (``N`` samples, ``labels`` ``(N,)``): the kernel of
    ``output`` split by layer, ``(len(network.layer_paths(config)), N, N)``; the NTK of the summed logits
    ``Θ_sum`` ``(N, N)`` (TE-NAS) over the weights only (:func:`is_weight`, as TE-NAS's code) and over every
    parameter; and the loss-gradient kernel ``⟨J_iᵀ(p_i − y_i), J_jᵀ(p_j − y_j)⟩`` ``(N, N)`` (the cross-entropy
    gradients at ``p = softmax(f)``; KNAS). Two lanes more than the kernel alone."""
    n = sum(b.shape[0] for b in xs)

    def cotangents(logits):
        k = logits.shape[-1]
        loss = jax.nn.softmax(logits) - jax.nn.one_hot(labels, k, dtype=logits.dtype)
        return jnp.concatenate([output_cotangents(output, k, n, logits.dtype),
                                jnp.ones((1, n, k), logits.dtype), loss[None]])

    lanes, weight_lanes = gram_lanes(params, ops, xs, stats_list, config, cotangents, "layer", weights=True)
    return lanes[:-2].sum(0), weight_lanes[-2].sum(0), lanes[-2].sum(0), lanes[-1].sum(0)


def softmax_weighted_kernels(params, ops, xs: Sequence[jax.Array], stats_list,
                             config: network.NetworkConfig) -> list[jax.Array]:
    """``[GᵀG for x in xs]``, ``(m·k, m·k)`` each, with columns ``g_ic = J_iᵀ S_i e_c``, ``S_i`` the symmetric square
    root of the softmax covariance ``Σ_i = diag(p_i) − p_i p_iᵀ`` of image ``x_i`` (``m`` images of a batch ``x``, BN
    ``stats_list[b]`` of their whole batch, or ``None``): the softmax-weighted full-mode NTK, whose spectrum divided
    by ``m`` is the non-zero spectrum of the empirical Fisher ``(1/m) Σ_i J_iᵀ Σ_i J_i``
    (:mod:`ntkscore.kernels.family`). Each image is repeated ``k`` times and the copy ``(i, c)`` gets the cotangent
    ``S_i e_c``: one forward and one backward pass over the ``m·k`` samples of every batch together (the Gram's
    blocks between two batches are formed and dropped; one pass keeps the compiled program small)."""
    k = config.num_classes
    repeated = [jnp.repeat(x, k, axis=0) for x in xs]

    def cotangents(logits):
        p = jax.nn.softmax(logits[::k])
        cov = jax.vmap(jnp.diag)(p) - p[:, :, None] * p[:, None, :]
        w, v = eigen.eigh(cov)
        root = (v * jnp.sqrt(jnp.clip(w, 0.0, None))[:, None, :]) @ jnp.swapaxes(v, -1, -2)
        return root.reshape(-1, k)[None]

    gram = gram_lanes(params, ops, repeated, stats_list, config, cotangents)[0]
    blocks, start = [], 0
    for r in repeated:
        blocks.append(gram[start:start + r.shape[0], start:start + r.shape[0]])
        start += r.shape[0]
    return blocks


@partial(jax.jit, static_argnames=("config", "pairs", "output", "by_group"))
def cell_ntk_pairs(params, ops, xs: Sequence[jax.Array], stats_list: Sequence[network.Stats] | None,
                   config: network.NetworkConfig, pairs: tuple[tuple[int, int], ...], output: str = "trace",
                   by_group: bool = False):
    """``[Θ(xs[a], xs[b]) for (a, b) in pairs]`` of the NB201 network with cell ``ops``, the layerwise way.

    ``stats_list[i]`` are the BN statistics for ``xs[i]`` (:func:`ntkscore.cell.network.batch_statistics`), or
    ``None``: each batch's own (``bn_mode="batch"``) or identity BN. ``output`` is ``"trace"`` (Σ over logits) or ``"sum"`` (of logits).
    With ``by_group`` each kernel comes back split by parameter group, ``(len(network.GROUPS), n_a, n_b)``:
    ``Θ = Σ_g Θ_g`` with ``Θ_g`` the sum over the layers ``l`` of group ``g`` of ``⟨∂f/∂W_l, ∂f/∂W_l⟩``.
    """
    if output not in ("trace", "sum"):
        raise ValueError(f"the layerwise NTK supports output 'trace' or 'sum', got {output!r}")
    used = sorted({i for pair in pairs for i in pair})
    batches = [xs[i] for i in used]
    gram = _gram(params, ops, batches, None if stats_list is None else [stats_list[i] for i in used], config,
                 output, by_group)
    offsets = {}
    start = 0
    for i, b in zip(used, batches):
        offsets[i] = (start, start + b.shape[0])
        start += b.shape[0]
    return [gram[..., offsets[a][0]:offsets[a][1], offsets[b][0]:offsets[b][1]] for a, b in pairs]
