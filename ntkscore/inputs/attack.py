"""ℓ∞ attacks on the network at initialisation: FGSM and PGD, in [0, 1] pixel space with the true labels.

PGD (Madry et al.) maximises the mean cross-entropy ``L(f(x'), y)`` over the ball ``‖x' − x₀‖∞ ≤ ε``::

    x⁰ = clip(x₀ + U(−ε, ε))                      (random start; x⁰ = x₀ without it)
    xᵗ⁺¹ = clip(xᵗ + α · sign(∇ₓ L(f(xᵗ), y)))     clip = projection onto the ball ∩ [0, 1]

FGSM is one step with ``α = ε`` and no random start. The *twice-perturbed* batch ``A(A(X))`` runs the same attack
again with ``x₀ = A(X)``: it lies within ε of ``A(X)`` and therefore within **2ε** of ``X`` — the radius the
``K̃_2ε`` notation of Wu et al. refers to.

The model is ``apply_fn(params, x, ctx)`` as in :mod:`ntkscore.kernels.ntk`. For the NB201 network with batch-statistics
BN, pass ``ctx = (ops, None)``: BN then uses the statistics of the batch being attacked (held constant).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import optax
from jax import lax


def cross_entropy(apply_fn, params, x, y, ctx) -> jax.Array:
    """Mean softmax cross-entropy of the model on ``(x, y)``."""
    return optax.softmax_cross_entropy_with_integer_labels(apply_fn(params, x, ctx), y).mean()


@partial(jax.jit, static_argnames=("apply_fn", "steps", "random_start"))
def pgd(apply_fn, params, x, y, ctx, key, eps, step_size, steps: int, random_start: bool = True) -> jax.Array:
    """``steps`` of projected sign-gradient ascent inside ``‖x' − x‖∞ ≤ eps`` (and [0, 1]). Returns ``x'``."""
    lo, hi = jnp.clip(x - eps, 0.0, 1.0), jnp.clip(x + eps, 0.0, 1.0)
    start = x + jax.random.uniform(key, x.shape, x.dtype, -eps, eps) if random_start else x
    grad_x = jax.grad(lambda z: cross_entropy(apply_fn, params, z, y, ctx))

    def step(_, z):
        return jnp.clip(z + step_size * jnp.sign(grad_x(z)), lo, hi)

    return lax.fori_loop(0, steps, step, jnp.clip(start, lo, hi))


def fgsm(apply_fn, params, x, y, ctx, eps) -> jax.Array:
    """Fast gradient sign method: one step of size ``eps`` from ``x``."""
    return pgd(apply_fn, params, x, y, ctx, jax.random.PRNGKey(0), eps, eps, steps=1, random_start=False)


def validate(eps: float, step_size: float, steps: int) -> None:
    """Clear errors for impossible attack settings."""
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1] (pixel scale; 8/255 ≈ 0.031), got {eps}")
    if step_size <= 0.0 and steps > 0:
        raise ValueError(f"step size must be positive, got {step_size}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
