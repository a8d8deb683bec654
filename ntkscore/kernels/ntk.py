"""Empirical neural tangent kernels from per-sample Jacobians, natively in JAX.

For a network ``f(x; W)`` with ``k`` outputs and per-sample Jacobians ``J(x) = ∂f(x)/∂W`` (``k × P``)::

    Θ(X, Z)[i, j, a, b] = Σ_p J(x_i)[a, p] · J(z_j)[b, p]                     (output="full", n·k × m·k)
    Θ_trace(X, Z)[i, j] = Σ_a Θ(X, Z)[i, j, a, a]                            (output="trace", n × m; default)
    Θ_sum(X, Z)[i, j]   = ⟨∂(Σ_a f_a(x_i))/∂W, ∂(Σ_b f_b(z_j))/∂W⟩           (output="sum", n × m; TE-NAS)

The naming follows neural-tangents: ``output="trace"`` is its ``trace_axes=(-1,)``, ``output="full"`` its
``trace_axes=()``. Jacobian rows are produced by a VJP per sample (one forward pass, one backward pass per output
row), ``vmap``-ed over the samples. In the traced mode the logits are processed in chunks of ``logit_chunk`` rows
inside a ``lax.scan``, so memory stays at ``n · logit_chunk · P`` floats per batch, whatever ``k``.

The model is ``apply_fn(params, x, ctx) -> (n, k)`` where ``ctx`` is a per-batch pytree (e.g. BatchNorm statistics
held constant, see :mod:`ntkscore.cell.network`); each sample is evaluated alone as ``apply_fn(params, x[None], ctx)``.
Kernels are computed in float32 on the device; convert with ``np.asarray(..., np.float64)`` on the host.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

OUTPUT_MODES = ("trace", "sum", "full")
ApplyFn = Callable[[Any, jax.Array, Any], jax.Array]


def _check_output(output: str) -> None:
    if output not in OUTPUT_MODES:
        raise ValueError(f"output must be one of {OUTPUT_MODES}, got {output!r}")


def per_sample_jacobian(apply_fn: ApplyFn, params, x: jax.Array, ctx, cotangents: jax.Array):
    """Rows ``cᵀ J(x_i)`` for each sample ``x_i`` and each cotangent row ``c`` (``cotangents``: ``m × k``).

    Returns a pytree like ``params`` whose leaves have shape ``(n, m) + leaf.shape``.
    """

    def one(xi):
        _, vjp = jax.vjp(lambda p: apply_fn(p, xi[None], ctx)[0], params)
        return jax.vmap(vjp)(cotangents)[0]

    return jax.vmap(one)(x)


def _contract(ja, jb, trace: bool) -> jax.Array:
    """Σ over parameters (and over the logit axis when ``trace``) of two Jacobian pytrees ``(n, m, ...)``.

    Written as one matmul per leaf (``(m, n, P) @ (m, P, n')`` batched over logits when tracing) so that XLA never
    materialises a broadcast product.
    """
    total = None
    for a, b in zip(jax.tree.leaves(ja), jax.tree.leaves(jb)):
        a = a.reshape(a.shape[0], a.shape[1], -1)
        b = b.reshape(b.shape[0], b.shape[1], -1)
        if trace:
            term = lax.dot_general(a, b, (((2,), (2,)), ((1,), (1,))), precision=lax.Precision.HIGHEST).sum(0)
        else:
            n, m = a.shape[:2]
            term = (a.reshape(n * m, -1) @ b.reshape(b.shape[0] * b.shape[1], -1).T).reshape(n, m, b.shape[0], m)
        total = term if total is None else total + term
    return total


def _ntk_pairs(apply_fn: ApplyFn, params, xs: Sequence[jax.Array], ctxs: Sequence[Any],
               pairs: tuple[tuple[int, int], ...], output: str, logit_chunk: int) -> list[jax.Array]:
    k = jax.eval_shape(lambda p, x, c: apply_fn(p, x[:1], c), params, xs[0], ctxs[0]).shape[-1]
    dtype = xs[0].dtype
    used = sorted({i for pair in pairs for i in pair})
    if output == "sum":
        cot = jnp.ones((1, k), dtype)
    elif output == "full":
        cot = jnp.eye(k, dtype=dtype)
    if output != "trace":
        jac = {i: per_sample_jacobian(apply_fn, params, xs[i], ctxs[i], cot) for i in used}
        kernels = [_contract(jac[a], jac[b], trace=output == "sum") for a, b in pairs]
        if output == "full":
            kernels = [t.reshape(t.shape[0] * t.shape[1], t.shape[2] * t.shape[3]) for t in kernels]
        return kernels

    chunk = max(1, min(logit_chunk, k))
    n_chunks = -(-k // chunk)
    eye = jnp.eye(n_chunks * chunk, k, dtype=dtype)  # zero rows pad the last chunk: they add nothing
    blocks = eye.reshape(n_chunks, chunk, k)

    def step(acc, cot):
        jac = {i: per_sample_jacobian(apply_fn, params, xs[i], ctxs[i], cot) for i in used}
        return [s + _contract(jac[a], jac[b], trace=True) for s, (a, b) in zip(acc, pairs)], None

    if n_chunks == 1:  # no loop: XLA's CPU backend ran the same body ~3× slower inside a while loop
        return step([0.0] * len(pairs), blocks[0])[0]
    init = [jnp.zeros((xs[a].shape[0], xs[b].shape[0]), dtype) for a, b in pairs]
    kernels, _ = lax.scan(step, init, blocks)
    return kernels


ntk_pairs = jax.jit(_ntk_pairs, static_argnames=("apply_fn", "pairs", "output", "logit_chunk"))
ntk_pairs.__doc__ = """Several empirical NTKs at once: ``[Θ(xs[a], xs[b]) for (a, b) in pairs]``.

Each batch's Jacobian is computed once per logit chunk and shared by every pair that uses it. ``ctxs[i]`` is the
context pytree handed to ``apply_fn`` for ``xs[i]``. ``apply_fn`` must be hashable and stable across calls (a
module-level function or a frozen dataclass) so that the compiled program is reused.
"""


class WithoutContext:
    """Adapter ``f(params, x) -> f(params, x, ctx)`` that hashes like the wrapped function (stable jit cache)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, params, x, ctx):
        return self.fn(params, x)

    def __hash__(self):
        return hash(self.fn)

    def __eq__(self, other):
        return isinstance(other, WithoutContext) and other.fn == self.fn


def empirical_ntk_fn(apply_fn: Callable[[Any, jax.Array], jax.Array], trace_axes: tuple[int, ...] = (-1,),
                     output: str | None = None, logit_chunk: int = 10):
    """neural-tangents-style constructor: returns ``ntk_fn(x1, x2, params) -> Θ(x1, x2)``.

    ``apply_fn(params, x) -> (n, k)`` is any JAX model. ``trace_axes=(-1,)`` traces over the logits (n × m
    kernel), ``trace_axes=()`` keeps them (n·k × m·k); ``output`` ("trace", "sum", "full") overrides ``trace_axes``.
    ``x2=None`` means ``x2 = x1``.
    """
    if output is None:
        if tuple(trace_axes) in ((-1,), (1,)):
            output = "trace"
        elif tuple(trace_axes) == ():
            output = "full"
        else:
            raise ValueError(f"trace_axes must be (-1,) or () for (n, k) outputs, got {trace_axes!r}")
    _check_output(output)
    fn = WithoutContext(apply_fn)

    def ntk_fn(x1, x2, params):
        x1 = jnp.asarray(x1)
        if x2 is None:
            return ntk_pairs(fn, params, [x1], [None], ((0, 0),), output, logit_chunk)[0]
        return ntk_pairs(fn, params, [x1, jnp.asarray(x2)], [None, None], ((0, 1),), output, logit_chunk)[0]

    return ntk_fn
