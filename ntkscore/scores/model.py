"""Score any JAX model — a plain ``apply_fn(params, x)``, a Flax (``linen`` or ``nnx``) or an Equinox model — from
its clean and adversarial empirical NTKs.

Three ways to pass a model to :func:`score_model`:

* ``score_model(apply_fn, params, x, y)`` — any ``apply_fn(params, x) -> logits`` on a batch; a ``flax.linen``
  module is ``score_model(module.apply, variables, x, y)``;
* ``score_model(model, None, x, y)`` with a ``flax.nnx.Module`` (split into graph and state by ``nnx.split``);
* ``score_model(model, None, x, y)`` with an ``equinox.Module`` (its inexact arrays are the parameters,
  ``eqx.partition``); Equinox models take one example at a time, so it is ``vmap``-ed over the batch unless
  ``batched=True``.

The NTK is taken with respect to every parameter leaf. A model gets every kernel quantity; the learned ``value`` and
``robustness`` are not computed (:data:`NOT_FOR_MODELS`): they were fitted on NB201 cells at their own settings.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, replace
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import compilation_cache
from ..kernels.ntk import WithoutContext
from ..kernels.precision import scoring_precision
from .result import Score
from .scorer import generic_kernels, kernel_scores
from .settings import ScoreSettings

NOT_FOR_MODELS = ("the shipped predictors were fitted on NB201 cells at their settings, not on arbitrary models; "
                  "rank your models by the kernel quantities (e.g. s['K_rob.lambda_min']) or fit a predictor to "
                  "labels of your own (ntkscore.study.learn.fit_predictor)")


def as_apply_fn(model, params=None, batched: bool | None = None) -> tuple[Callable[[Any, jax.Array], jax.Array], Any]:
    """``(apply_fn, params)`` for ``model``: a function ``apply_fn(params, x)`` with its ``params``, a
    ``flax.nnx.Module`` or an ``equinox.Module`` (``params`` ``None``; ``batched`` says whether the Equinox model
    takes a batch, default ``False``)."""
    nnx = getattr(sys.modules.get("flax"), "nnx", None)
    if nnx is not None and isinstance(model, nnx.Module):
        graphdef, state = nnx.split(model)

        def apply_nnx(s, x):
            return nnx.merge(graphdef, s)(x)

        return _check_params(apply_nnx, state, params, "a flax.nnx.Module")
    eqx = sys.modules.get("equinox")
    if eqx is not None and isinstance(model, eqx.Module):
        weights, static = eqx.partition(model, eqx.is_inexact_array)

        def apply_eqx(p, x):
            net = eqx.combine(p, static)
            return net(x) if batched else jax.vmap(net)(x)

        return _check_params(apply_eqx, weights, params, "an equinox.Module")
    if not callable(model):
        raise TypeError(f"model must be apply_fn(params, x), a flax.nnx.Module or an equinox.Module; got "
                        f"{type(model).__name__}")
    if params is None:
        raise ValueError("apply_fn(params, x) needs its params (for a flax.linen module: module.apply, variables)")
    return model, params


def _check_params(fn, own, given, what: str):
    if given is not None:
        raise ValueError(f"{what} carries its own parameters; pass params=None")
    return fn, own


def _check_batch(x, y, num_classes: int) -> None:
    if x.shape[0] < 2:
        raise ValueError(f"a kernel needs at least two samples; got a batch of {x.shape[0]}")
    lo, hi = float(jnp.min(x)), float(jnp.max(x))
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"inputs must be in [0, 1] (the attack's ε is in pixel units; normalise inside the model); "
                         f"got values in [{lo:.4g}, {hi:.4g}] — for uint8 images divide by 255")
    if int(jnp.min(y)) < 0 or int(jnp.max(y)) >= num_classes:
        raise ValueError(f"labels must be integers in 0..{num_classes - 1} (the model has {num_classes} logits); "
                         f"got {int(jnp.min(y))}..{int(jnp.max(y))}")


def score_model(model, params, x, y, *, key=None, batched: bool | None = None, cache: bool = True,
                **settings) -> Score:
    """Score any JAX model on inputs ``x`` ``(n, ...)`` in [0, 1] with integer labels ``y`` ``(n,)``.

    ``model``/``params``/``batched`` as in :func:`as_apply_fn`. Each sample is evaluated alone (batch-dependent
    layers see a batch of one). ``settings`` are :class:`ntkscore.scores.settings.ScoreSettings` fields of the
    kernels and the attack (``kernels``, ``attack``, ``eps``, ``steps``, ``output``, ``betas`` …); network-shape
    fields are ignored. ``key`` is the PRNG key of the attack's random start (default from ``seed``). The result
    has every kernel quantity and ``params`` (the number of parameter entries); ``value`` and ``robustness`` are
    not computed (:data:`NOT_FOR_MODELS`).
    """
    if cache:
        compilation_cache.enable()
    apply_fn, params = as_apply_fn(model, params, batched)
    s = replace(ScoreSettings(), **{"proxies": False, "family": False, "kernels": "all", "cpu_library_fusions": True,
                                      **settings})
    if not s.cpu_library_fusions:
        raise ValueError("cpu_library_fusions=False applies to the NB201 scorer's programs; score_model compiles "
                         "with XLA's defaults")
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y)
    if x.ndim < 2 or y.shape != (x.shape[0],) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"x must be (n, ...) and y (n,) integer labels; got x {x.shape} and y {y.shape} {y.dtype}")
    try:
        out = jax.eval_shape(apply_fn, params, x[:1])
    except Exception as err:
        raise ValueError(f"the model failed on one sample of shape {x.shape[1:]}: {type(err).__name__}: {err}") from None
    if len(out.shape) != 2:
        raise ValueError(f"the model must return logits of shape (n, classes), got {out.shape}")
    _check_batch(x, y, out.shape[1])
    bad = [name for name, tree in (("x", x), ("params", params))
           if not all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree)
                      if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact))]
    if bad:
        raise ValueError(f"{' and '.join(bad)} hold non-finite values (nan or inf); a kernel of them would be "
                         "meaningless: check the inputs and the initialisation")
    y = y.astype(jnp.int32)
    key = jax.random.PRNGKey(s.seed) if key is None else key
    with scoring_precision():
        kernels = generic_kernels(WithoutContext(apply_fn), params, x, y, lambda b: None, None, key, s)
    metrics, flags = kernel_scores(kernels, np.asarray(y), out.shape[1], s.betas, s.output)
    metrics["params"] = float(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))
    return Score(None, metrics, flags, asdict(s), not_computed={n: NOT_FOR_MODELS for n in ("value", "robustness")})
