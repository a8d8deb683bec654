"""Symmetric eigendecompositions inside a compiled program, one matrix at a time.

On a CPU, jaxlib's LAPACK kernels (0.10) split a batch of matrices over XLA's intra-op thread pool and wait for the
parts from a thread of that same pool (``ParallelBatchMap``). When as many batched decompositions run at once as the
pool has threads — two independent ones in one program on a 2-core CPU — every thread waits for work that no thread
is left to run, and the program never ends (both pool threads waiting there, seen in a debugger). :func:`eigh` and
:func:`eigvalsh` decompose one matrix per step of a ``lax.map`` loop instead: each result equals that of the matrix
decomposed alone, and a call with one matrix has no batch to split over the pool.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def _one_at_a_time(fn, a: jax.Array):
    if a.ndim == 2:
        return fn(a)
    flat = a.reshape(-1, *a.shape[-2:])
    out = lax.map(fn, flat)
    return jax.tree.map(lambda o: o.reshape(*a.shape[:-2], *o.shape[1:]), out)


def eigvalsh(a: jax.Array) -> jax.Array:
    """``jnp.linalg.eigvalsh(a)`` (ascending eigenvalues of each symmetric matrix of ``a`` ``(..., n, n)``)."""
    return _one_at_a_time(jnp.linalg.eigvalsh, a)


def eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``jnp.linalg.eigh(a)``: eigenvalues ``(..., n)`` (ascending) and eigenvectors ``(..., n, n)`` (columns)."""
    return _one_at_a_time(jnp.linalg.eigh, a)
