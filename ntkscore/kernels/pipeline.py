"""The device program of a score: ``X → A(X), A(A(X)) → BN statistics → NTKs``, for one cell or a batch of cells.

For an NB201 cell with op indices ``ops`` (data, not structure), one jitted program computes, from the shared
supernet parameters, the batch ``X`` with labels ``y`` and a PRNG ``key`` (the PGD random start):

1. ``A(X)`` and ``A(A(X))`` (PGD or FGSM with the true labels; BN uses the statistics of the batch being attacked);
2. the BN statistics of ``X``, ``A(X)``, ``A(A(X))`` (``bn_mode="batch"``), each held constant (computed in
   the kernels' own forward pass);
3. the requested kernels ``Θ(xs[a], xs[b])`` with the layerwise engine (:func:`ntkscore.kernels.layerwise.cell_ntk_pairs`);
   with ``spec.family``, split by layer in the same backward pass with two more cotangent lanes
   (:func:`ntkscore.kernels.layerwise.family_lanes`), the per-layer spectra reduced to scalars on the device, and the Fisher
   pass (:func:`ntkscore.kernels.layerwise.softmax_weighted_kernels`) of ``X`` and ``A(X)`` (:mod:`ntkscore.kernels.family`).

Two ways to run it:

* :func:`cell_kernels` — one cell. Each edge's ``lax.switch`` runs only the chosen op: the least work, the right
  choice on a CPU.
* :func:`batched_cell_kernels` — ``jax.vmap`` over a leading axis of ``ops`` (the *accelerator path*). Under
  ``vmap`` a switch with a batched index becomes a select that evaluates every branch, so each cell costs as much as
  the supernet with all ops; what it buys is one device step for many small networks, which fills a GPU that a single
  C = 16 network leaves mostly idle. Unselected branches receive zero cotangents, so they add exactly zero to a kernel.

:func:`default_arch_batch` picks between them by device kind (1 on a CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..cell import network
from ..inputs import attack
from . import family as family_lib
from . import layerwise

KERNEL_PAIRS: dict[str, tuple[int, int]] = {
    "K": (0, 0), "K_rob": (1, 1), "K_cross": (0, 1), "K_rob2": (2, 2), "K_cross2": (1, 2)
}
"""Kernel name → indices into the batches ``(X, A(X), A(A(X)))``."""
KERNEL_SETS = {"clean": ("K",), "robust": ("K", "K_rob", "K_cross"), "all": tuple(KERNEL_PAIRS)}

ACCELERATOR_ARCH_BATCH = 16
"""Cells per device step on a GPU/TPU by default (not tuned: no GPU has been available to measure it on)."""


@dataclass(frozen=True)
class KernelSpec:
    """The settings the device programs read, and only those (the programs' static argument; hashable).

    ``KernelSpec.of(settings)`` takes them from a :class:`ntkscore.ScoreSettings`: scorers whose settings differ
    only elsewhere (``seed``, ``init``, ``inputs``, the zero-cost terms, ``betas``, which act on the programs'
    arguments or on the host) run the same compiled program, and a new seed traces nothing again. Any object with
    these attributes is accepted too (a ``ScoreSettings`` itself: then all its fields are part of the program's
    key)."""

    kernels: str
    attack: str
    eps: float
    step_size: float
    steps: int
    output: str
    family: bool
    fisher_batch_size: int

    @classmethod
    def of(cls, settings) -> KernelSpec:
        """The fields of ``settings`` that the device programs read."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class CellNetwork:
    """The NB201 network as ``apply_fn(params, x, ctx)`` with ``ctx = (ops, bn_stats or None)`` (hashable).

    ``input_gradients_only=True`` evaluates it with :func:`ntkscore.cell.network.input_gradient_layer` (for attacks).
    """

    config: network.NetworkConfig
    input_gradients_only: bool = False

    def __call__(self, params, x, ctx):
        ops, stats = ctx
        layer = network.input_gradient_layer if self.input_gradients_only else network.plain_layer
        return network.apply(params, ops, x, self.config, stats, layer)


def default_arch_batch(backend: str | None = None) -> int:
    """Cells per device step for ``backend`` (default: JAX's default backend): 1 on ``cpu``, else
    :data:`ACCELERATOR_ARCH_BATCH`."""
    backend = backend or jax.default_backend()
    return 1 if backend == "cpu" else ACCELERATOR_ARCH_BATCH


def adversarial_batches(apply_fn, params, x, y, ctx, key, spec: KernelSpec) -> tuple[jax.Array, jax.Array]:
    """``(A(X), A(A(X)))``: the attack from ``x``, then again from its result (within 2ε of ``x``)."""
    k1, k2 = jax.random.split(key)
    if spec.attack == "fgsm":
        once = attack.fgsm(apply_fn, params, x, y, ctx, spec.eps)
        return once, attack.fgsm(apply_fn, params, once, y, ctx, spec.eps)
    once = attack.pgd(apply_fn, params, x, y, ctx, k1, spec.eps, spec.step_size, spec.steps)
    return once, attack.pgd(apply_fn, params, once, y, ctx, k2, spec.eps, spec.step_size, spec.steps)


def batches_for(kernel_set: str) -> int:
    """How many of ``X, A(X), A(A(X))`` a kernel set needs (1, 2 or 3)."""
    return 1 + max(max(KERNEL_PAIRS[n]) for n in KERNEL_SETS[kernel_set])


def _offsets(used, xs) -> dict[int, slice]:
    offsets, start = {}, 0
    for i in used:
        offsets[i] = slice(start, start + xs[i].shape[0])
        start += xs[i].shape[0]
    return offsets


def _layer_groups(config: network.NetworkConfig) -> np.ndarray:
    """``(groups, layers)`` 0/1 matrix: which of :data:`ntkscore.cell.network.GROUPS` each layer belongs to."""
    paths = network.layer_paths(config)
    out = np.zeros((len(network.GROUPS), len(paths)), np.float32)
    for i, path in enumerate(paths):
        out[network.GROUPS.index(path[0]), i] = 1.0
    return out


FAMILY_BATCHES = {"K": 0, "K_rob": 1}
"""The kernels the NTK family (:mod:`ntkscore.kernels.family`) is computed on, by batch index."""


def _kernels_and_family(params, ops, xs, stats, y, pairs, spec: KernelSpec, config: network.NetworkConfig):
    """The group-split kernels of ``pairs`` and the NTK family's device-side quantities, in one backward pass
    (:func:`ntkscore.kernels.layerwise.family_lanes`) plus one Fisher pass over the family batches' sub-batches."""
    used = sorted({i for pair in pairs for i in pair})
    labels = jnp.concatenate([y] * len(used))
    layers, k_sum, k_sum_all, k_loss = layerwise.family_lanes(params, ops, [xs[i] for i in used],
                                                   None if stats is None else [stats[i] for i in used], labels,
                                                   config, spec.output)
    groups = jnp.einsum("gl,lij->gij", _layer_groups(config), layers)
    at = _offsets(used, xs)
    kernels = tuple(groups[..., at[a], at[b]] for a, b in pairs)
    m = min(spec.fisher_batch_size, y.shape[0])
    present = {name: b for name, b in FAMILY_BATCHES.items() if b in at}
    fishers = layerwise.softmax_weighted_kernels(params, ops, [xs[b][:m] for b in present.values()],
                                                 None if stats is None else [stats[b] for b in present.values()],
                                                 config)
    family = {}
    for (name, b), fisher in zip(present.items(), fishers):
        f = family_lib.layer_spectra(layers[:, at[b], at[b]], y, config.num_classes)
        f["sum"], f["sum_all"], f["loss"] = k_sum[at[b], at[b]], k_sum_all[at[b], at[b]], k_loss[at[b], at[b]]
        family[name] = {**f, "fisher": fisher}
    return kernels, family


def _cell_kernels(params, ops, x, y, key, spec: KernelSpec, config: network.NetworkConfig):
    names = KERNEL_SETS[spec.kernels]
    xs = [x]
    if batches_for(spec.kernels) > 1:
        attack_fn = CellNetwork(config, input_gradients_only=True)
        xs.extend(adversarial_batches(attack_fn, params, x, y, (ops, None), key, spec))
        xs = xs[:batches_for(spec.kernels)]
    pairs = tuple(KERNEL_PAIRS[n] for n in names)
    if spec.family:  # the Fisher pass takes a sub-batch, normalised with its whole batch's statistics
        stats = [network.batch_statistics(params, ops, b, config) for b in xs] if config.bn_mode == "batch" else None
        return _kernels_and_family(params, ops, xs, stats, y, pairs, spec, config)
    # each batch's BN statistics are computed in the kernels' own forward pass
    return tuple(layerwise.cell_ntk_pairs(params, ops, xs, None, config, pairs, spec.output, by_group=True)), {}


@partial(jax.jit, static_argnames=("spec", "config"))
def cell_kernels(params, ops, x, y, key, spec: KernelSpec, config: network.NetworkConfig):
    """``(kernels, family)`` of the cell ``ops`` (6 op indices): ``kernels`` are :data:`KERNEL_SETS` ``[spec.kernels]``
    (in that order), each split by parameter group, ``(len(network.GROUPS), n, n)`` (a kernel is the sum over its
    first axis); with ``spec.family``, ``family[K]`` for ``K`` in :data:`FAMILY_BATCHES` holds the device-side
    quantities of the NTK family (:mod:`ntkscore.kernels.family`): per-layer ``trace``, ``lambda_min``, ``effective_rank``,
    ``cka`` ``(L,)``, the summed-logit and loss-gradient kernels ``sum``, ``loss`` ``(n, n)`` and the
    softmax-weighted full-mode kernel ``fisher`` ``(m·k, m·k)``; else ``family`` is ``{}``."""
    return _cell_kernels(params, jnp.asarray(ops, jnp.int32), x, y, key, spec, config)


@partial(jax.jit, static_argnames=("spec", "config"))
def batched_cell_kernels(params, ops, x, y, key, spec: KernelSpec, config: network.NetworkConfig):
    """:func:`cell_kernels` of ``A`` cells at once: ``ops`` is ``(A, 6)``; every array comes back with a leading
    axis ``A`` (each kernel ``(A, G, n, n)``).

    Every cell sees the same parameters, batch and attack noise as :func:`cell_kernels` would give it alone.
    """
    one = partial(_cell_kernels, spec=spec, config=config)
    return jax.vmap(one, in_axes=(None, 0, None, None, None))(params, jnp.asarray(ops, jnp.int32), x, y, key)
