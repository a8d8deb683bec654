"""Multi-objective adversarial training of an NB201 cell, its evaluation under attack, and how far its NTK moves.

The objective of Wu et al. (ICLR 2024, Section 4), over mini-batches ``(x, y)``::

    L(W) = (1 − β) · CE(f(x; W), y) + β · CE(f(A(x); W), y),      A = PGD-k, ℓ∞ radius ε, step α, random start

with the NAS-RobBench-201 recipe of the authors' training code (TT2408/nasrobbench201 ``main.py``,
``utils_data.py``) as defaults: PGD-7, ε = 8/255, α = 2/255, the attack run with the model in eval mode (BN with its
running statistics); SGD with weight decay 5e-4 (added to the gradient before the momentum, as PyTorch's SGD) on
PyTorch's ``OneCycleLR`` (optax's ``cosine_onecycle_schedule``: 30% cosine warm-up from 0.1/25 to 0.1, cosine down
to 0.1/25e4) with its momentum cycling (0.95 → 0.85 during the warm-up, back to 0.95 after); random crop with
zero padding 4 (``input_size / 8``) and horizontal flip of every training batch; PyTorch's default initialisation
(``init="torch"``); batch 256, 50 epochs. β = 0 is standard training (no attack is computed); β = 1 is PGD
adversarial training (Madry et al.). Each of these is a setting (``augment``, ``attack_bn``, ``cycle_momentum``,
``init``); what remains different from the authors' runs is the data (5000 training and 1000 test images of the
JPEG-decoded CIFAR-10 files, :data:`TRAIN_FILE`) and, in the recorded study, the small network and schedule.

BatchNorm trains on batch statistics (differentiated) and keeps running statistics (momentum 0.1, the biased batch
variance) for evaluation. :func:`evaluate` uses the running statistics: clean accuracy, FGSM, PGD-20 (random start,
step 2.5·ε/20 = ε/8, as the authors') and, with ``apgd_steps > 0``, APGD-CE and APGD-DLR
(:mod:`ntkscore.inputs.apgd`, Croce & Hein 2020) at ε = 3/255 and 8/255. These are not AutoAttack (whose standard
version adds the targeted APGD-T, FAB-T and Square): the benchmark's ``autoattack`` column is not reproduced.

:func:`train` is seeded (initialisation, data order, attack noise) and checkpoints after every epoch; a run stopped
at any point and started again with the same arguments resumes from the last finished epoch and ends with the same
weights as an uninterrupted run. A finished run can be continued to more epochs (``extend=True``): the extra epochs
start from its final state with a one-cycle schedule of their own (a warm restart, as in SGDR), so a 50-epoch run
extended to 60 is not a 60-epoch run; the checkpoint and the result record the schedule (``"schedule": [50, 60]``,
the epoch each cycle ends at). :func:`ntk_drift` measures how lazy the training was: the relative Frobenius change
of the empirical NTK between initialisation and the end.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import compilation_cache
from .cell import network
from .cell.space import Arch, as_arch
from .inputs import apgd, attack, data
from .kernels import layerwise
from .kernels.pipeline import CellNetwork

TRAIN_FILE, TEST_FILE = "images/cifar10_train_5000.npz", "images/cifar10_test_1000.npz"
EVAL_EPS = (3 / 255, 8 / 255)


@dataclass(frozen=True)
class TrainSettings:
    """The recipe (defaults: the authors' training code, module docstring) and the network. ``momentum`` is used
    when ``cycle_momentum`` is off; ``attack_bn`` is ``"eval"`` (the training attack on running BN statistics) or
    ``"batch"`` (on the batch's own, held constant); the PGD evaluation step is ``eval_step_scale · ε /
    eval_steps``; ``apgd_steps = 0`` skips APGD. ``train_images`` (default: the whole file) and ``test_images`` are
    the first images of a seeded, class-balanced order of the CIFAR-10 files."""

    epochs: int = 50
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    beta: float = 1.0
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 7
    channels: int = 16
    cells_per_stage: int = 5
    input_size: int = 32
    train_images: int | None = None
    test_images: int = 1000
    eval_steps: int = 20
    eval_step_scale: float = 2.5
    apgd_steps: int = 100
    bn_momentum: float = 0.1
    augment: bool = True
    attack_bn: str = "eval"
    cycle_momentum: bool = True
    init: str = "torch"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1] (the weight of the adversarial loss), got {self.beta}")
        for name in ("epochs", "batch_size", "channels", "cells_per_stage", "test_images", "eval_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.input_size % 4 or self.input_size < 4:
            raise ValueError(f"input_size must be a multiple of 4, got {self.input_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive (the peak of the one-cycle schedule, 0.1 in the benchmark), "
                             f"got {self.lr:g}")
        if not (0.0 <= self.momentum < 1.0 and self.weight_decay >= 0.0):
            raise ValueError(f"momentum must be in [0, 1) and weight_decay ≥ 0, got {self.momentum:g} and "
                             f"{self.weight_decay:g}")
        attack.validate(self.eps, self.step_size, self.steps)
        if self.attack_bn not in ("eval", "batch"):
            raise ValueError(f"attack_bn must be 'eval' (running BN statistics, the authors') or 'batch', "
                             f"got {self.attack_bn!r}")
        if self.init not in network.INITS:
            raise ValueError(f"init must be one of {network.INITS}, got {self.init!r}")
        if not isinstance(self.apgd_steps, int) or self.apgd_steps < 0 or not self.eval_step_scale > 0:
            raise ValueError(f"apgd_steps must be an int ≥ 0 and eval_step_scale positive, got {self.apgd_steps!r} "
                             f"and {self.eval_step_scale!r}")

    def network_config(self, bn_mode: str = "train") -> network.NetworkConfig:
        return network.NetworkConfig(channels=self.channels, cells_per_stage=self.cells_per_stage,
                                     input_size=self.input_size, bn_mode=bn_mode)


def load_data(settings: TrainSettings, data_dir=None) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(x_train, y_train, x_test, y_test)``: float32 images in [0, 1] at ``input_size`` and int32 labels."""
    root = data.data_dir(data_dir)
    out = []
    for name, count, fold in ((TRAIN_FILE, settings.train_images, 1), (TEST_FILE, settings.test_images, 2)):
        x, y = data.load_npz(root / name)
        count = len(y) if count is None else count
        if not 10 <= count <= len(y):
            raise ValueError(f"{root / name} holds {len(y)} images; asked for {count} (at least 10)")
        idx = data.balanced_sample(jax.random.fold_in(jax.random.PRNGKey(settings.seed), fold), y, count, 10)
        images = data.to_unit_float(x[idx])
        if images.shape[1] != settings.input_size:
            images = data.downsample(images, settings.input_size)
        out += [images, jnp.asarray(y[idx], jnp.int32)]
    return tuple(out)


ONECYCLE_PCT, MOMENTUM_RANGE = 0.3, (0.85, 0.95)
"""PyTorch ``OneCycleLR``'s defaults: the warm-up share and (base, max) of the cycled momentum."""


def momentum_schedule(total_steps: int) -> optax.Schedule:
    """PyTorch ``OneCycleLR``'s cycled momentum: cosine from 0.95 to 0.85 over the warm-up (30% of the steps), then
    cosine back to 0.95, ``end + (start − end)(1 + cos πt)/2`` in each phase."""
    base, peak = MOMENTUM_RANGE
    warm = max(ONECYCLE_PCT * total_steps, 1.0)

    def schedule(count):
        count = jnp.asarray(count, jnp.float32)
        first = count < warm
        t = jnp.where(first, count / warm, (count - warm) / max(total_steps - warm, 1.0))
        start, end = jnp.where(first, peak, base), jnp.where(first, base, peak)
        return end + (start - end) * (1.0 + jnp.cos(jnp.pi * jnp.clip(t, 0.0, 1.0))) / 2.0

    return schedule


def schedules(settings: TrainSettings, steps_per_epoch: int,
              cycles: tuple[int, ...] | None = None) -> tuple[optax.Schedule, optax.Schedule | float]:
    """The learning rate and momentum of each step: a one-cycle learning rate over all the run's steps, the momentum
    cycled as PyTorch's ``OneCycleLR`` with ``cycle_momentum`` (else ``settings.momentum``); with ``cycles`` (the
    epochs the cycles end at, the last ``settings.epochs``), one cycle per span, each restarting from the low
    learning rate."""
    ends = [e * steps_per_epoch for e in (cycles or (settings.epochs,))]
    spans = [b - a for a, b in zip([0] + ends[:-1], ends)]

    def one_cycle(total):
        return optax.cosine_onecycle_schedule(total, settings.lr, pct_start=ONECYCLE_PCT, div_factor=25.0,
                                              final_div_factor=1e4)

    learning_rate = optax.join_schedules([one_cycle(t) for t in spans], ends[:-1])
    momentum = settings.momentum
    if settings.cycle_momentum:
        momentum = optax.join_schedules([momentum_schedule(t) for t in spans], ends[:-1])
    return learning_rate, momentum


def _sgd(settings: TrainSettings, learning_rate, momentum) -> optax.GradientTransformation:
    return optax.chain(optax.add_decayed_weights(settings.weight_decay),
                       optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate, momentum=momentum))


def optimizer(settings: TrainSettings, steps_per_epoch: int,
              cycles: tuple[int, ...] | None = None) -> optax.GradientTransformation:
    """SGD with momentum and weight decay on the :func:`schedules` (the hyperparameters of each step are in its
    state's ``hyperparams``)."""
    return _sgd(settings, *schedules(settings, steps_per_epoch, cycles))


def step_hyperparameters(settings: TrainSettings, steps_per_epoch: int,
                         cycles: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """``{"learning_rate", "momentum"}``: the values :func:`optimizer` uses at each step of the run, float32 arrays
    of ``steps_per_epoch × (cycles or (epochs,))[-1]`` steps, for :func:`train_step`."""
    learning_rate, momentum = schedules(settings, steps_per_epoch, cycles)
    total = (cycles or (settings.epochs,))[-1] * steps_per_epoch

    def at(count):
        return {"learning_rate": learning_rate(count),
                "momentum": momentum(count) if callable(momentum) else jnp.asarray(momentum)}

    values = jax.jit(jax.vmap(at))(jnp.arange(total))
    return {k: np.asarray(v, np.float32) for k, v in values.items()}


def init_state(arch: Arch, settings: TrainSettings, steps_per_epoch: int) -> dict[str, Any]:
    """Parameters (:func:`ntkscore.cell.network.init` from the seed), optimiser state, running BN statistics
    (mean 0, variance 1) and the epoch counter."""
    config = settings.network_config()
    params = network.init(jax.random.PRNGKey(settings.seed), config, settings.init)
    stats = network.batch_statistics(params, jnp.asarray(arch.ops, jnp.int32),
                                     jnp.zeros((1,) + config.input_shape), settings.network_config("batch"))
    running = _map_var(jax.tree.map(jnp.zeros_like, stats), jnp.ones_like)
    return {"params": params, "opt": optimizer(settings, steps_per_epoch).init(params), "running": running,
            "epoch": jnp.asarray(0, jnp.int32)}


def _map_var(stats, fn):
    """``stats`` with ``fn`` applied to every variance (the second of each (mean, variance) pair)."""
    return jax.tree.map(lambda pair: (pair[0], fn(pair[1])), stats, is_leaf=lambda v: isinstance(v, tuple))


def _loss(params, ops, x, x_adv, y, beta: float, config):
    """``(1 − β) CE(f(x)) + β CE(f(A(x)))`` with train-mode BN, and the batch statistics of each forward."""
    total, stats = 0.0, []
    for weight, batch in ((1.0 - beta, x), (beta, x_adv)):
        if weight > 0.0:
            logits, s = network.forward(params, ops, batch, config, None)
            total = total + weight * optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            stats.append(s)
    return total, stats


def augment(key, x: jax.Array) -> jax.Array:
    """torchvision's ``RandomCrop(size, padding=size/8)`` (zero padding) and ``RandomHorizontalFlip()`` of every
    image of ``x`` ``(n, H, W, C)``, from ``key``."""
    n, size = x.shape[0], x.shape[1]
    pad = size // 8
    k_crop, k_flip = jax.random.split(key)
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = jax.random.randint(k_crop, (n, 2), 0, 2 * pad + 1)
    crops = jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (size, size, x.shape[3])))(
        padded, offsets)
    flip = jax.random.bernoulli(k_flip, 0.5, (n, 1, 1, 1))
    return jnp.where(flip, crops[:, :, ::-1], crops)


@partial(jax.jit, static_argnames="settings")
def train_step(state, ops, x, y, key, hyper: dict[str, Any], settings: TrainSettings):
    """One SGD step on the batch ``(x, y)`` (augmented first when ``settings.augment``) with the optimiser of
    :func:`optimizer`, at this step's learning rate and momentum ``hyper`` (a step of
    :func:`step_hyperparameters`); returns the new state and the loss before the step. The schedule comes in as
    data: the step's program is the same for every number of epochs and every continued run (with the compilation
    cache, a new ``epochs`` is traced again but not compiled again)."""
    config = settings.network_config()
    k_augment, k_attack = jax.random.split(key)
    if settings.augment:
        x = augment(k_augment, x)
    x_adv = x
    if settings.beta > 0.0:  # eval mode: the running statistics; or the batch's own statistics, held constant
        ctx = (ops, state["running"] if settings.attack_bn == "eval" else None)
        x_adv = attack.pgd(CellNetwork(settings.network_config("batch"), input_gradients_only=True), state["params"],
                           x, y, ctx, k_attack, settings.eps, settings.step_size, settings.steps)
    (loss, stats), grads = jax.value_and_grad(_loss, has_aux=True)(state["params"], ops, x, x_adv, y, settings.beta,
                                                                   config)
    momentum = (lambda _: hyper["momentum"]) if settings.cycle_momentum else settings.momentum
    updates, opt = _sgd(settings, lambda _: hyper["learning_rate"], momentum).update(grads, state["opt"],
                                                                                     state["params"])
    running = state["running"]
    m = settings.bn_momentum
    for s in stats:
        running = jax.tree.map(lambda r, b: (1 - m) * r + m * jax.lax.stop_gradient(b), running, s)
    return {**state, "params": optax.apply_updates(state["params"], updates), "opt": opt, "running": running}, loss


def _save(path: Path, state, meta: dict) -> None:
    """Write the state's leaves and ``meta`` atomically (a temporary file renamed over ``path``)."""
    tmp = path.with_suffix(".tmp.npz")
    leaves = [np.asarray(a) for a in jax.tree.leaves(state)]
    np.savez(tmp, meta=json.dumps(meta), **{f"leaf{i}": a for i, a in enumerate(leaves)})
    os.replace(tmp, path)


def _load(path: Path, template, meta: dict, extend: bool = False):
    """The checkpoint's state and its ``meta``, if it was written for the same ``meta`` (arch and settings; a
    continued run's cycles included), or, with ``extend``, if it is a finished run that ``meta`` continues to more
    epochs (then the meta has the new cycle added); else an error naming what differs."""
    with np.load(path, allow_pickle=False) as f:
        saved = json.loads(str(f["meta"]))
        leaves = [jnp.asarray(f[f"leaf{i}"]) for i in range(len(jax.tree.leaves(template)))]
    state = jax.tree.unflatten(jax.tree.structure(template), leaves)
    cycles = saved.get("schedule", [saved.get("epochs")])
    if {**saved, "schedule": None} == {**meta, "schedule": None} and (meta.get("schedule") in (None, cycles)):
        return state, {**meta, **({"schedule": cycles} if "schedule" in saved else {})}
    differ_keys = [k for k in sorted(set(saved) | set(meta)) if k != "schedule" and saved.get(k) != meta.get(k)]
    finished = int(state["epoch"]) == saved.get("epochs")
    if differ_keys == ["epochs"] and saved["epochs"] < meta["epochs"]:
        if extend and finished:
            return state, {**meta, "schedule": cycles + [meta["epochs"]]}
        if not extend:
            raise ValueError(f"{path} is a {'finished' if finished else 'shorter'} run of {saved['epochs']} epochs, "
                             f"given {meta['epochs']}: the one-cycle learning rate spans the whole run, so its state "
                             "is not a step of a longer one; --extend continues a finished run with a new cycle for "
                             "the extra epochs, or choose another --checkpoint")
    differ = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, given {meta.get(k)!r}" for k in differ_keys)
    raise ValueError(f"{path} is a checkpoint of another run: {differ}; choose another --checkpoint or delete it")


def train(arch: Arch | str, settings: TrainSettings = TrainSettings(), *, data_dir=None,
          checkpoint: str | os.PathLike | None = None, stop_after: int | None = None, extend: bool = False,
          progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train the cell ``arch`` and evaluate it; returns ``{"arch", "settings", "epochs", "seconds" (of the training
    loop, this run), "loss",
    "params_init", "params", "running", "accuracy": {...}}`` (the accuracies of :func:`evaluate`).

    With ``checkpoint`` the state is saved after every epoch and a matching checkpoint is resumed; with ``extend``
    also a finished run of fewer epochs, continued with a new one-cycle schedule (module docstring; the result's
    ``"schedule"``). ``stop_after``
    ends the run after that many epochs in total (as a kill would; the checkpoint stays). ``progress(epoch, loss)``
    is called after each epoch. Compiled programs are kept in the persistent cache
    (:func:`ntkscore.compilation_cache.enable`), as the scorer's are."""
    arch = as_arch(arch)
    compilation_cache.enable()
    x_train, y_train, x_test, y_test = load_data(settings, data_dir)
    steps_per_epoch = max(1, len(y_train) // settings.batch_size)
    ops = jnp.asarray(arch.ops, jnp.int32)
    state = init_state(arch, settings, steps_per_epoch)
    initial = state["params"]
    meta = {"arch": arch.to_string(), **asdict(settings)}
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None and path.exists():
        state, meta = _load(path, state, meta, extend)
    cycles = tuple(meta["schedule"]) if "schedule" in meta else None
    hyper = step_hyperparameters(settings, steps_per_epoch, cycles)
    start, loss = time.perf_counter(), float("nan")
    key = jax.random.PRNGKey(settings.seed)
    last = settings.epochs if stop_after is None else min(stop_after, settings.epochs)
    while int(state["epoch"]) < last:
        epoch = int(state["epoch"])
        order = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(key, 3), epoch), len(y_train))
        losses = []
        for i in range(steps_per_epoch):
            idx = order[i * settings.batch_size:(i + 1) * settings.batch_size]
            step = epoch * steps_per_epoch + i
            state, batch_loss = train_step(state, ops, x_train[idx], y_train[idx], jax.random.fold_in(key, step),
                                           {k: v[step] for k, v in hyper.items()}, settings)
            losses.append(batch_loss)
        state = {**state, "epoch": jnp.asarray(epoch + 1, jnp.int32)}
        loss = float(np.mean(losses))
        if path is not None:
            _save(path, state, meta)
        if progress is not None:
            progress(epoch + 1, loss)
    seconds = time.perf_counter() - start
    accuracy = evaluate(state, ops, x_test, y_test, settings) if int(state["epoch"]) == settings.epochs else {}
    return {"arch": arch.to_string(), "settings": asdict(settings), "epochs": int(state["epoch"]),
            "schedule": list(cycles or (settings.epochs,)), "seconds": seconds, "loss": loss, "params_init": initial, "params": state["params"],
            "running": state["running"], "accuracy": accuracy}


@partial(jax.jit, static_argnames="model")
def _hits(model, params, x, y, ctx) -> jax.Array:
    """How many of ``x`` the model classifies as ``y``."""
    return jnp.sum(jnp.argmax(model(params, x, ctx), -1) == y)


def evaluate(state, ops, x, y, settings: TrainSettings, batch: int = 250) -> dict[str, float]:
    """Accuracy with the running BN statistics: ``clean``, and at ε ∈ {3, 8}/255 ``fgsm@ε``, ``pgd20@ε`` (PGD with
    ``eval_steps`` steps of ``eval_step_scale·ε/eval_steps`` and a random start; the key says 20 whatever
    ``eval_steps`` is) and, with ``apgd_steps > 0``, ``apgd-ce@ε`` and ``apgd-dlr@ε``."""
    model = CellNetwork(settings.network_config("batch"))
    ctx = (ops, state["running"])
    key = jax.random.fold_in(jax.random.PRNGKey(settings.seed), 7)
    correct = {"clean": 0}
    for i in range(0, len(y), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        correct["clean"] += int(_hits(model, state["params"], xb, yb, ctx))
        for eps in EVAL_EPS:
            name = f"{eps * 255:g}"
            k = jax.random.fold_in(key, i)
            adv = {"fgsm": attack.fgsm(model, state["params"], xb, yb, ctx, eps),
                   "pgd20": attack.pgd(model, state["params"], xb, yb, ctx, k, eps,
                                       settings.eval_step_scale * eps / settings.eval_steps, settings.eval_steps)}
            if settings.apgd_steps:
                for loss in apgd.LOSSES:
                    adv[f"apgd-{loss}"] = apgd.apgd(model, state["params"], xb, yb, ctx, k, eps,
                                                    steps=settings.apgd_steps, loss=loss)
            for kind, xa in adv.items():
                hits = int(_hits(model, state["params"], xa, yb, ctx))
                correct[f"{kind}@{name}"] = correct.get(f"{kind}@{name}", 0) + hits
    return {k: v / len(y) for k, v in correct.items()}


def ntk_drift(params_init, params, ops, x, settings: TrainSettings) -> float:
    """``‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F``: the relative change of the traced empirical NTK on the images ``x`` between the
    initial and the trained weights (BN on ``x``'s own statistics, held constant; the layerwise engine)."""
    config = settings.network_config("batch")
    kernels = []
    for p in (params_init, params):
        stats = network.batch_statistics(p, ops, x, config)
        kernels.append(np.asarray(layerwise.cell_ntk_pairs(p, ops, [x], [stats], config, ((0, 0),))[0], np.float64))
    return float(np.linalg.norm(kernels[1] - kernels[0]) / max(np.linalg.norm(kernels[0]), 1e-30))

