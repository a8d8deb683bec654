"""APGD (Croce & Hein, ICML 2020): step-size-free ℓ∞ PGD with momentum, on the cross-entropy (APGD-CE) or on the
difference-of-logits ratio (APGD-DLR), for evaluating trained networks.

Per sample, with ``P`` the projection onto ``‖x' − x‖∞ ≤ ε`` ∩ [0, 1], ``η⁰ = 2ε``, ``α = 0.75``::

    z^{k+1} = P(x^k + η^k · sign ∇L(x^k))
    x^{k+1} = P(x^k + α (z^{k+1} − x^k) + (1 − α)(x^k − x^{k−1}))          (x¹ = z¹)

from a random start on the ε-sphere's corners scaled into the ball (AutoAttack's ``x + ε t/‖t‖∞``). At the
checkpoints ``w_j = ⌈p_j N⌉``, ``p₀ = 0``, ``p₁ = 0.22``, ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``, the step
of a sample is halved and it restarts from its best point when (1) its loss rose in fewer than 75% of the steps
since the last checkpoint, or (2) its step was not halved at the last checkpoint and its best loss has not improved
since. The losses (per sample, to be maximised)::

    CE  = −log softmax(z)_y
    DLR = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e−12)          (π: the logits sorted in decreasing order)

:func:`apgd` returns, per sample, the first iterate that is misclassified, else the iterate of highest loss; the
accuracy on it is the attack's robust accuracy. AutoAttack's *standard* version runs APGD-CE, the targeted APGD-T,
FAB-T and Square; APGD-CE with the untargeted APGD-DLR is the pair of its *rand* version (here without expectation
over transformations). Neither this pair nor any part of it is AutoAttack, and accuracies under it are not the
benchmark's ``autoattack`` column.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

LOSSES = ("ce", "dlr")
MOMENTUM, RISE_FRACTION = 0.75, 0.75


def ce_loss(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Per-sample cross-entropy ``−log softmax(z)_y``."""
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]


def dlr_loss(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Per-sample difference-of-logits ratio ``−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e−12)``."""
    top = jnp.sort(logits, axis=1)[:, ::-1]
    true = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    other = jnp.max(jnp.where(jax.nn.one_hot(y, logits.shape[1], dtype=bool), -jnp.inf, logits), axis=1)
    return -(true - other) / (top[:, 0] - top[:, 2] + 1e-12)


def checkpoints(steps: int) -> np.ndarray:
    """The iterations ``w_j = ⌈p_j N⌉`` (j ≥ 1) at which step sizes are reconsidered, below ``steps``."""
    p, out = [0.0, 0.22], []
    while True:
        w = math.ceil(round(p[-1] * steps, 9))  # 0.41 + 0.16 is 0.5700000000000001 in floating point
        if w >= steps:
            return np.asarray(out, np.int32)
        if not out or w > out[-1]:
            out.append(w)
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))


@partial(jax.jit, static_argnames=("apply_fn", "steps", "loss", "with_losses"))
def apgd(apply_fn, params, x, y, ctx, key, eps, steps: int = 100, loss: str = "ce", with_losses: bool = False):
    """APGD-``loss`` (``"ce"`` or ``"dlr"``) with ``steps`` iterations inside ``‖x' − x‖∞ ≤ eps`` (and [0, 1]) on
    the model ``apply_fn(params, x, ctx)``; per sample, the first misclassified iterate, else the highest-loss one.
    With ``with_losses``, also the best loss so far after each iteration, ``(steps + 1, n)`` (the start first)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    loss_fn = ce_loss if loss == "ce" else dlr_loss
    lo, hi = jnp.clip(x - eps, 0.0, 1.0), jnp.clip(x + eps, 0.0, 1.0)
    per_sample = (x.shape[0],) + (1,) * (x.ndim - 1)

    def evaluate(z):
        def total(v):
            logits = apply_fn(params, v, ctx)
            values = loss_fn(logits, y)
            return values.sum(), (values, logits)

        (_, (values, logits)), grad = jax.value_and_grad(total, has_aux=True)(z)
        return values, jnp.argmax(logits, axis=1) != y, grad

    t = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0)
    t = t / jnp.maximum(jnp.max(jnp.abs(t), axis=tuple(range(1, x.ndim)), keepdims=True), 1e-12)
    start = jnp.clip(x + eps * t, lo, hi)
    values, wrong, grad = evaluate(start)
    marks = np.zeros(steps, bool)
    marks[checkpoints(steps)] = True
    since = np.diff(np.concatenate([[0], np.flatnonzero(marks)]))  # steps in each checkpoint's interval
    lengths = np.zeros(steps, np.int32)
    lengths[marks] = since
    marks, lengths = jnp.asarray(marks), jnp.asarray(lengths)
    n = x.shape[0]
    state = dict(x=start, previous=start, grad=grad, step=jnp.full(n, 2.0 * eps, x.dtype), loss=values,
                 best_loss=values, best=start, best_grad=grad, adversarial=start, fooled=wrong,
                 rises=jnp.zeros(n, jnp.int32), halved=jnp.ones(n, bool), best_at_check=values,
                 history=jnp.zeros((steps + 1, n), values.dtype).at[0].set(values))

    def iteration(k, s):
        alpha = jnp.where(k == 0, 1.0, MOMENTUM)
        step = s["step"].reshape(per_sample)
        z = jnp.clip(s["x"] + step * jnp.sign(s["grad"]), lo, hi)
        new = jnp.clip(s["x"] + alpha * (z - s["x"]) + (1.0 - alpha) * (s["x"] - s["previous"]), lo, hi)
        values, wrong, grad = evaluate(new)
        first = wrong & ~s["fooled"]
        adversarial = jnp.where(first.reshape(per_sample), new, s["adversarial"])
        better = values > s["best_loss"]
        b = better.reshape(per_sample)
        best, best_grad = jnp.where(b, new, s["best"]), jnp.where(b, grad, s["best_grad"])
        best_loss = jnp.where(better, values, s["best_loss"])
        rises = s["rises"] + (values > s["loss"]).astype(jnp.int32)
        # at a checkpoint: halve the step and go back to the best point where the loss stalled
        stalled = (rises < RISE_FRACTION * lengths[k]) | (~s["halved"] & (s["best_at_check"] >= best_loss))
        halve = marks[k] & stalled
        h = halve.reshape(per_sample)
        return dict(x=jnp.where(h, best, new), previous=new, grad=jnp.where(h, best_grad, grad),
                    step=jnp.where(halve, s["step"] / 2.0, s["step"]), loss=values, best_loss=best_loss, best=best,
                    best_grad=best_grad, adversarial=adversarial, fooled=s["fooled"] | wrong,
                    rises=jnp.where(marks[k], 0, rises), halved=jnp.where(marks[k], halve, s["halved"]),
                    best_at_check=jnp.where(marks[k], best_loss, s["best_at_check"]),
                    history=s["history"].at[k + 1].set(best_loss))

    s = lax.fori_loop(0, steps, iteration, state)
    out = jnp.where(s["fooled"].reshape(per_sample), s["adversarial"], s["best"])
    return (out, s["history"]) if with_losses else out
