"""The NAS-Bench-201 macro network in plain JAX, with the cell as *data*.

Macro structure (as trained in the benchmark, ``xautodl`` ``TinyNetwork``)::

    x in [0,1] -> (x - mean)/std -> Conv3x3(3→C)+BN
      -> N cells at C -> ResBlock(C→2C, stride 2) -> N cells at 2C -> ResBlock(2C→4C, stride 2) -> N cells at 4C
      -> BN -> ReLU -> global average pool -> Linear(4C → classes)

Cell edge ops: ``none`` (zero), ``skip_connect`` (identity), ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU→Conv→BN),
``avg_pool_3x3`` (stride 1, pad 1, padding not counted). ResBlock: ReLU-Conv3×3(stride 2)-BN → ReLU-Conv3×3-BN, plus
the shortcut AvgPool2×2 → Conv1×1; no activation after the sum.

The parameters form a *supernet*: every edge holds weights for both convolutions, and ``apply(params, ops, x)``
chooses each edge's op at run time with ``lax.switch`` on the op index. One compiled program therefore serves all
15625 cells; unselected weights receive zero gradient, so they add nothing to an NTK.

Initialisation (:data:`INITS`, BN γ = 1, β = 0 in both; convolutions have no bias, as in ``xautodl``):

* ``"kaiming"``: conv weights ``N(0, 2/(k²·C_out))`` (Kaiming normal, fan-out, ReLU gain), classifier weights
  ``N(0, 0.01²)``, bias 0: xautodl's ``initialize_resnet``, which xautodl applies to its ResNet-style models (not to
  ``TinyNetwork``), the convention of most NTK-based NAS code;
* ``"torch"``: PyTorch's default, which both benchmarks trained from (``TinyNetwork`` and the NB201 /
  NAS-RobBench-201 training scripts re-initialise nothing): conv and linear weights ``U(±1/√fan_in)``,
  ``fan_in = k²·C_in``; classifier bias ``U(±1/√fan_in)``.

The parameters of a given edge and op do not depend on the other ops of the cell.

BatchNorm modes (``NetworkConfig.bn_mode``):

* ``"batch"`` (default; PyTorch train mode at init): ``y = γ (x − μ_B)/sqrt(σ²_B + ε) + β`` with the batch
  statistics μ_B, σ²_B of the forward pass over the whole batch, *held constant for differentiation*
  (``stop_gradient``). For per-sample Jacobians, compute them once with :func:`batch_statistics` and pass them to
  :func:`apply`; each sample is then a function of its own input only.
* ``"identity"`` (PyTorch eval mode at init, running mean 0, var 1): ``y = γ x/sqrt(1 + ε) + β``.
* ``"train"`` (training, :mod:`ntkscore.train`): batch statistics, differentiated like the rest of the network.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .conv import im2col_conv, input_gradient_conv
from .space import NUM_EDGES

Params = dict[str, Any]
Stats = dict[str, Any]

BN_MODES = ("batch", "identity", "train")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class NetworkConfig:
    """Static shape and behaviour of the network (hashable: it is a compile-time constant)."""

    channels: int = 16
    cells_per_stage: int = 5
    num_classes: int = 10
    input_size: int = 32
    in_channels: int = 3
    bn_mode: str = "batch"
    bn_eps: float = 1e-5
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD

    def __post_init__(self) -> None:
        for name in ("channels", "cells_per_stage", "num_classes", "input_size", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"NetworkConfig.{name} must be a positive int, got {value!r}")
        if self.input_size % 4:
            raise ValueError(f"input_size must be divisible by 4 (two stride-2 blocks), got {self.input_size}")
        if self.bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {self.bn_mode!r}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError(f"mean/std need {self.in_channels} values each, got {self.mean!r} / {self.std!r}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_size, self.input_size, self.in_channels)


# ---------------------------------------------------------------------------------------------------------------
# initialisation
def _conv_bn(w: jax.Array) -> Params:
    shape = w.shape[:-4] + w.shape[-1:]
    return {"w": w, "scale": jnp.asarray(np.ones(shape, np.float32)), "bias": jnp.asarray(np.zeros(shape, np.float32))}


INITS = ("kaiming", "torch")
"""Initialisation schemes of :func:`init` (module docstring)."""


def _scale(shape: tuple[int, ...], scheme: str, classifier: bool = False) -> float:
    """The scale of one weight tensor (HWIO, or (in, out) for the classifier): the standard deviation of a
    ``"kaiming"`` normal draw, the bound of a ``"torch"`` uniform one."""
    fan_in, fan_out = math.prod(shape[-4:-1] if len(shape) >= 4 else shape[:1]), math.prod(shape[-4:-2] + shape[-1:])
    if scheme == "torch":
        return 1.0 / math.sqrt(fan_in)
    return 0.01 if classifier else math.sqrt(2.0 / fan_out)


def init(key: jax.Array, config: NetworkConfig = NetworkConfig(), scheme: str = "kaiming") -> Params:
    """Supernet parameters for ``config`` from the PRNG ``key`` by the initialisation ``scheme`` of :data:`INITS`
    (module docstring).

    All weights come from one draw of the total size (``N(0, 1)`` for ``"kaiming"``, ``U(−1, 1)`` for ``"torch"``),
    cut in a fixed order and scaled per layer (one small compiled program instead of one per layer shape).
    """
    if scheme not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {scheme!r}")
    c, n = config.channels, config.cells_per_stage
    shapes: list[tuple[int, ...]] = [(3, 3, config.in_channels, c)]
    for s in range(3):
        w = c * 2**s
        shapes += [(n, NUM_EDGES, 1, 1, w, w), (n, NUM_EDGES, 3, 3, w, w)]
    for s in range(2):
        cin, cout = c * 2**s, c * 2 ** (s + 1)
        shapes += [(3, 3, cin, cout), (3, 3, cout, cout), (1, 1, cin, cout)]
    shapes.append((4 * c, config.num_classes))
    shapes = [(shape, _scale(shape, scheme, classifier=i == len(shapes) - 1)) for i, shape in enumerate(shapes)]
    if scheme == "torch":  # the classifier bias, U(±1/√fan_in) like its weights
        shapes.append(((config.num_classes,), 1.0 / math.sqrt(4 * c)))
    sizes = [math.prod(shape) for shape, _ in shapes]
    draw = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0) if scheme == "torch" else \
        jax.random.normal(key, (sum(sizes),), jnp.float32)
    z = np.asarray(draw)
    offsets = [0] + list(itertools.accumulate(sizes))
    arrays = [jnp.asarray(np.float32(std) * z[o:o + size].reshape(shape))
              for (shape, std), o, size in zip(shapes, offsets, sizes)]
    bias = arrays.pop() if scheme == "torch" else jnp.asarray(np.zeros(config.num_classes, np.float32))
    stem, *rest = arrays
    stages = [{"conv1x1": _conv_bn(rest[2 * s]), "conv3x3": _conv_bn(rest[2 * s + 1])} for s in range(3)]
    reductions = [{"conv_a": _conv_bn(rest[6 + 3 * s]), "conv_b": _conv_bn(rest[7 + 3 * s]), "shortcut": rest[8 + 3 * s]}
                  for s in range(2)]
    width = 4 * c
    return {
        "stem": _conv_bn(stem),
        "stages": stages,
        "reductions": reductions,
        "head": {
            "scale": jnp.asarray(np.ones(width, np.float32)),
            "bias": jnp.asarray(np.zeros(width, np.float32)),
            "w": rest[-1],
            "b": bias,
        },
    }


# ---------------------------------------------------------------------------------------------------------------
# layers
def per_batch_statistics(x, sizes: tuple[int, ...]):
    """BN statistics of the concatenation ``x`` of batches of ``sizes``: each batch's own mean and (biased) variance
    over its samples and positions, repeated for its samples, ``(n, C)`` each, held constant (``stop_gradient``)."""
    means, variances, start = [], [], 0
    for m in sizes:
        part = x[start:start + m]
        start += m
        means.append(jnp.broadcast_to(jnp.mean(part, axis=(0, 1, 2)), (m, x.shape[-1])))
        variances.append(jnp.broadcast_to(jnp.var(part, axis=(0, 1, 2)), (m, x.shape[-1])))
    return lax.stop_gradient(jnp.concatenate(means)), lax.stop_gradient(jnp.concatenate(variances))


def _batch_norm(x, scale, bias, stats, config: NetworkConfig):
    """Returns ``(y, (mean, var))``; ``stats`` given → use them (a callable: ``stats(x)``, e.g. a partial of
    :func:`per_batch_statistics`), else batch statistics (or 0/1 in identity mode)."""
    if callable(stats):
        mean, var = stats(x)
    elif stats is not None:
        mean, var = stats
    elif config.bn_mode == "batch":
        mean = lax.stop_gradient(jnp.mean(x, axis=(0, 1, 2)))
        var = lax.stop_gradient(jnp.var(x, axis=(0, 1, 2)))
    elif config.bn_mode == "train":  # training: the batch statistics are differentiated, as PyTorch's train mode
        mean, var = jnp.mean(x, axis=(0, 1, 2)), jnp.var(x, axis=(0, 1, 2))
    else:
        mean = jnp.zeros(x.shape[-1], x.dtype)
        var = jnp.ones(x.shape[-1], x.dtype)
    m, v = (mean[:, None, None, :], var[:, None, None, :]) if jnp.ndim(mean) == 2 else (mean, var)
    if jnp.ndim(scale) == 2:  # per-sample copies of γ, β (n, C): see conv.per_sample_conv
        scale, bias = scale[:, None, None, :], bias[:, None, None, :]
    y = (x - m) * lax.rsqrt(v + config.bn_eps) * scale + bias  # 2-D stats: per sample (n, C), see .layerwise
    return y, (mean, var)


# Every parameterised layer is a pure function ``fn(p, x, stats, config) -> (y, stats_out)`` called through a
# ``layer(fn, p, x, stats)`` hook: plain evaluation here, per-layer NTK accumulation in :mod:`ntkscore.kernels.layerwise`.
def plain_layer(fn, p, x, stats):
    """The default hook: ``fn(p, x, stats)``, convolutions with the im2col weight gradient (per-sample friendly)."""
    return fn(p, x, stats)


def input_gradient_layer(fn, p, x, stats):
    """``fn`` with :func:`input_gradient_conv`, for when only ∂/∂x is needed (attacks): no weight gradient is formed."""
    return fn(p, x, stats, conv=input_gradient_conv)


def _conv_bn_layer(p, x, stats, config, conv=im2col_conv):
    """Stem: ``BN(conv3×3(x))``."""
    return _batch_norm(conv(x, p["w"], 1), p["scale"], p["bias"], stats, config)


def _relu_conv_bn_layer(p, x, stats, config, stride: int = 1, conv=im2col_conv):
    """``BN(conv(ReLU(x)))`` (cell edges and the residual blocks' main path)."""
    return _batch_norm(conv(jax.nn.relu(x), p["w"], stride), p["scale"], p["bias"], stats, config)


def _shortcut_layer(w, x, stats, config, conv=im2col_conv):
    """Residual shortcut ``conv1×1(AvgPool2×2(x))`` (no BN)."""
    pooled = lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0
    return conv(pooled, w, 1), stats


def _head_layer(p, x, stats, config, conv=None):
    """``Linear(mean_hw(ReLU(BN(x))))`` → logits."""
    h, s = _batch_norm(x, p["scale"], p["bias"], stats, config)
    features = jnp.mean(jax.nn.relu(h), axis=(1, 2))
    if jnp.ndim(p["w"]) == 3:  # per-sample copies of the weights (see conv.per_sample_conv)
        return jnp.einsum("nd,ndk->nk", features, p["w"]) + p["b"], s
    return features @ p["w"] + p["b"], s


def relu_input(fn, p, x, stats):
    """The input of the ReLU inside the layer ``fn`` (a :func:`functools.partial` of one of the layer functions
    above) applied to ``x``, or ``None`` for a layer without a ReLU (the stem, the residual shortcuts)."""
    base = getattr(fn, "func", fn)
    if base is _relu_conv_bn_layer:
        return x
    if base is _head_layer:
        return _batch_norm(x, p["scale"], p["bias"], stats, fn.keywords["config"])[0]
    return None


def _avg_pool_3x3(x):
    """3×3 average pool, stride 1, pad 1, padding not counted (``count_include_pad=False``)."""
    window, strides, pad = (1, 3, 3, 1), (1, 1, 1, 1), [(0, 0), (1, 1), (1, 1), (0, 0)]
    total = lax.reduce_window(x, 0.0, lax.add, window, strides, pad)
    count = lax.reduce_window(jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype), 0.0, lax.add, window, strides, pad)
    return total / count


def _edge(op, x, p, stats, config, layer=plain_layer):
    """One edge: ``lax.switch`` on the op index. Returns ``(y, {"conv1x1": (μ, σ²), "conv3x3": (μ, σ²)})``."""
    if stats is None:
        zero_stats = (jnp.zeros(x.shape[-1], x.dtype), jnp.ones(x.shape[-1], x.dtype))
    else:  # given (possibly per-sample) statistics are passed through unchanged
        zero_stats = stats["conv1x1"]
    fn = partial(_relu_conv_bn_layer, config=config)

    def conv_branch(name):
        def run(x):
            y, s = scoped(layer, name)(fn, p[name], x, None if stats is None else stats[name])
            out = {"conv1x1": zero_stats, "conv3x3": zero_stats}
            out[name] = s
            return y, out

        return run

    def plain(fn):
        return lambda x: (fn(x), {"conv1x1": zero_stats, "conv3x3": zero_stats})

    branches = [
        plain(jnp.zeros_like),
        plain(lambda x: x),
        conv_branch("conv1x1"),
        conv_branch("conv3x3"),
        plain(_avg_pool_3x3),
    ]
    return lax.switch(op, branches, x)


def _cell(x, ops, p, stats, config, layer=plain_layer):
    """Node ``j = Σ_{i<j} op_{i→j}(node i)``, the 6 edges unrolled (each a ``lax.switch``).

    Unrolled rather than a ``lax.scan`` over edges: the scan's backward pass, which stores every branch's residuals
    and the node buffer at each step, measured 7× slower on a CPU (71 ms vs 10 ms per cell, C=16, B=8).
    """
    nodes = [x]
    edge_stats = []
    e = 0
    for target in (1, 2, 3):
        acc = None
        for source in range(target):
            p_e = jax.tree.map(lambda a: a[e], p)  # noqa: B023
            s_e = None if stats is None else jax.tree.map(lambda a: a[e], stats)  # noqa: B023
            y, s = _edge(ops[e], nodes[source], p_e, s_e, config, scoped(layer, f"edge{e}"))
            acc = y if acc is None else acc + y
            edge_stats.append(s)
            e += 1
        nodes.append(acc)
    return nodes[3], jax.tree.map(lambda *a: jnp.stack(a), *edge_stats)


def _stage(x, ops, p, stats, config, layer=plain_layer):
    """``N`` cells sharing one arch, unrolled over their stacked parameters (a ``lax.scan`` here made the backward
    pass 25× slower on a CPU: 313 ms vs 12 ms per cell at C=16, B=8)."""
    cell_stats = []
    for i in range(config.cells_per_stage):
        p_i = jax.tree.map(lambda a: a[i], p)  # noqa: B023
        s_i = None if stats is None else jax.tree.map(lambda a: a[i], stats)  # noqa: B023
        x, s = _cell(x, ops, p_i, s_i, config, scoped(layer, f"cell{i}"))
        cell_stats.append(s)
    return x, jax.tree.map(lambda *a: jnp.stack(a), *cell_stats)


def _reduction(x, p, stats, config, layer=plain_layer):
    sa = sb = None
    if stats is not None:
        sa, sb = stats["conv_a"], stats["conv_b"]
    a, sa = scoped(layer, "conv_a")(partial(_relu_conv_bn_layer, config=config, stride=2), p["conv_a"], x, sa)
    b, sb = scoped(layer, "conv_b")(partial(_relu_conv_bn_layer, config=config), p["conv_b"], a, sb)
    short, _ = scoped(layer, "shortcut")(partial(_shortcut_layer, config=config), p["shortcut"], x, None)
    return short + b, {"conv_a": sa, "conv_b": sb}


GROUPS = ("stem", "stage1", "reduction1", "stage2", "reduction2", "stage3", "head")
"""The network's parameter groups in forward order (the first element of every :func:`layer_paths` entry)."""


def scoped(layer, name: str):
    """The hook for the part ``name`` of the network inside ``layer``'s part: ``layer.scope(name)`` for a hook that
    tracks where it is (how :mod:`ntkscore.kernels.layerwise` routes each layer's NTK share to its own slot), else
    ``layer`` itself."""
    return layer.scope(name) if hasattr(layer, "scope") else layer


def layer_paths(config: NetworkConfig) -> tuple[tuple[str, ...], ...]:
    """Every parameterised layer of the supernet, in forward order, as the path of :func:`scoped` names under
    which its hook is called: ``("stem",)``, ``("stage1", "cell0", "edge3", "conv3x3")``,
    ``("reduction1", "conv_a")`` … ``("head",)``. A cell uses the edge layers of its ``nor_conv_*`` ops only."""
    paths: list[tuple[str, ...]] = [("stem",)]
    for s in range(3):
        paths += [(f"stage{s + 1}", f"cell{c}", f"edge{e}", op) for c in range(config.cells_per_stage)
                  for e in range(NUM_EDGES) for op in ("conv1x1", "conv3x3")]
        if s < 2:
            paths += [(f"reduction{s + 1}", name) for name in ("conv_a", "conv_b", "shortcut")]
    return tuple(paths + [("head",)])


def layer_widths(config: NetworkConfig) -> tuple[int, ...]:
    """Output channels of each layer of :func:`layer_paths` (the head: its ``4C`` input features)."""
    c = config.channels

    def width(path):
        if path[0].startswith("stage"):
            return c * 2 ** (int(path[0][-1]) - 1)
        if path[0].startswith("reduction"):
            return c * 2 ** int(path[0][-1])
        return c if path[0] == "stem" else 4 * c

    return tuple(width(p) for p in layer_paths(config))


def forward(params: Params, ops, x, config: NetworkConfig, stats: Stats | None, layer=plain_layer):
    """``(logits, bn_statistics)`` of the batch ``x``: :func:`apply` that also returns every BN layer's (mean,
    variance) in the structure :func:`apply` takes as ``stats`` (the hooks of :mod:`ntkscore.kernels.layerwise`
    and :mod:`ntkscore.proxies` run the network through it)."""
    ops = jnp.asarray(ops, jnp.int32)
    x = (x - jnp.asarray(config.mean, x.dtype)) / jnp.asarray(config.std, x.dtype)
    get = (lambda k: None) if stats is None else stats.__getitem__
    group = lambda index: scoped(layer, GROUPS[index])  # noqa: E731
    h, s_stem = group(0)(partial(_conv_bn_layer, config=config), params["stem"], x, get("stem"))
    s_stages, s_reds = [], []
    for i in range(3):
        h, s = _stage(h, ops, params["stages"][i], None if stats is None else stats["stages"][i], config,
                      group(2 * i + 1))
        s_stages.append(s)
        if i < 2:
            h, s = _reduction(h, params["reductions"][i], None if stats is None else stats["reductions"][i], config,
                              group(2 * i + 2))
            s_reds.append(s)
    logits, s_head = group(6)(partial(_head_layer, config=config), params["head"], h, get("head"))
    return logits, {"stem": s_stem, "stages": s_stages, "reductions": s_reds, "head": s_head}


@partial(jax.jit, static_argnames="config")
def batch_statistics(params: Params, ops, x: jax.Array, config: NetworkConfig = NetworkConfig()) -> Stats:
    """BatchNorm (mean, variance) of every BN layer in the forward pass of the batch ``x`` (constants: no gradient)."""
    return lax.stop_gradient(forward(params, ops, x, config, None)[1])


def apply(params: Params, ops, x: jax.Array, config: NetworkConfig = NetworkConfig(),
          stats: Stats | None = None, layer=plain_layer) -> jax.Array:
    """Logits ``f(x; W)`` of shape ``(B, classes)`` for images ``x`` ``(B, H, W, C)`` in [0, 1].

    Not jitted itself: wrap it (``jax.jit(apply, static_argnames="config")``) or call it inside a jitted function;
    a nested jit under ``grad``/``vmap`` measured 3.5× slower on a CPU (0.68 s vs 0.19 s per batch gradient).
    ``ops`` is the cell's 6 op indices (an ``Arch.ops`` tuple or an int array — data, not structure). In
    ``bn_mode="batch"``, BN uses ``stats`` when given (from :func:`batch_statistics`), else those of ``x`` itself.
    ``layer`` is the hook every parameterised layer goes through (:func:`plain_layer`, or
    :func:`input_gradient_layer` when only input gradients are needed).
    """
    return forward(params, ops, x, config, stats, layer)[0]
