"""Multi-objective adversarial training of an NB201 cell, its evaluation under attack, and how far its NTK moves.

The objective of Wu et al. (ICLR 2024, Section 4), over mini-batches ``(x, y)``::

    L(W) = (1 − β) · CE(f(x; W), y) + β · CE(f(A(x); W), y),      A = PGD-k, ℓ∞ radius ε, step α, random start

with the NAS-RobBench-201 recipe as defaults: PGD-7, ε = 8/255, α = 2/255, SGD with momentum 0.9 and weight decay
5e-4 (added to the gradient before the momentum, as PyTorch's SGD), a one-cycle learning rate to 0.1 (optax's
``cosine_onecycle_schedule``: 30% warm-up from 0.1/25, cosine down to 0.1/25e4; the momentum is not cycled), batch
256, 50 epochs. β = 0 is standard training (no attack is computed); β = 1 is PGD adversarial training (Madry et al.).
Where this differs from the authors' training code (TT2408/nasrobbench201 ``main.py``): no data augmentation (theirs:
random crop with padding 4 and horizontal flip), the training attack with batch statistics (theirs: eval mode), the
PGD-20 evaluation step ε/4 (theirs ε/8), no momentum cycling, and the Kaiming initialisation (theirs: PyTorch's).

BatchNorm trains on batch statistics (``bn_mode="train"``: differentiated) and keeps running statistics (momentum
0.1, the biased batch variance) for evaluation. The attack that makes ``A(x)`` during training uses the batch's own
statistics held constant (train-mode statistics without updating the running ones). Evaluation
(:func:`evaluate`) uses the running statistics: clean accuracy, FGSM and PGD-20 (random start, step ε/4) at
ε = 3/255 and 8/255. APGD-CE / AutoAttack is not implemented.

:func:`train` is seeded (initialisation, data order, attack noise) and checkpoints after every epoch; a run stopped
at any point and started again with the same arguments resumes from the last finished epoch and ends with the same
weights as an uninterrupted run. :func:`ntk_drift` measures how lazy the training was: the relative Frobenius change
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

from .cell import network
from .cell.space import Arch, as_arch
from .inputs import attack, data
from .kernels import layerwise
from .kernels.pipeline import CellNetwork

TRAIN_FILE, TEST_FILE = "images/cifar10_train_5000.npz", "images/cifar10_test_1000.npz"
EVAL_EPS = (3 / 255, 8 / 255)


@dataclass(frozen=True)
class TrainSettings:
    """The recipe (defaults: NAS-RobBench-201's main settings; the module docstring lists where it differs) and the
    network; ``train_images`` (default: the whole file) and
    ``test_images`` are the first images of a seeded, class-balanced order of the CIFAR-10 files."""

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
    bn_momentum: float = 0.1
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


def optimizer(settings: TrainSettings, steps_per_epoch: int) -> optax.GradientTransformation:
    """SGD with momentum and weight decay on a one-cycle learning rate over all the run's steps."""
    schedule = optax.cosine_onecycle_schedule(settings.epochs * steps_per_epoch, settings.lr, pct_start=0.3,
                                              div_factor=25.0, final_div_factor=1e4)
    return optax.chain(optax.add_decayed_weights(settings.weight_decay), optax.sgd(schedule, settings.momentum))


def init_state(arch: Arch, settings: TrainSettings, steps_per_epoch: int) -> dict[str, Any]:
    """Parameters (:func:`ntkscore.cell.network.init` from the seed), optimiser state, running BN statistics
    (mean 0, variance 1) and the epoch counter."""
    config = settings.network_config()
    params = network.init(jax.random.PRNGKey(settings.seed), config)
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


@partial(jax.jit, static_argnames=("settings", "steps_per_epoch"))
def train_step(state, ops, x, y, key, settings: TrainSettings, steps_per_epoch: int):
    """One SGD step on the batch ``(x, y)``; returns the new state and the loss before the step."""
    config = settings.network_config()
    x_adv = x
    if settings.beta > 0.0:  # the attack with the batch's own statistics, held constant
        x_adv = attack.pgd(CellNetwork(settings.network_config("batch"), input_gradients_only=True), state["params"],
                           x, y, (ops, None), key, settings.eps, settings.step_size, settings.steps)
    (loss, stats), grads = jax.value_and_grad(_loss, has_aux=True)(state["params"], ops, x, x_adv, y, settings.beta,
                                                                   config)
    updates, opt = optimizer(settings, steps_per_epoch).update(grads, state["opt"], state["params"])
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


def _load(path: Path, template, meta: dict):
    """The checkpoint's state if it was written for the same ``meta`` (arch and settings), else ``None``."""
    with np.load(path, allow_pickle=False) as f:
        if json.loads(str(f["meta"])) != meta:
            raise ValueError(f"{path} is a checkpoint of another run ({json.loads(str(f['meta']))['arch']}, other "
                             "settings); choose another --checkpoint or delete it")
        leaves = [jnp.asarray(f[f"leaf{i}"]) for i in range(len(jax.tree.leaves(template)))]
    return jax.tree.unflatten(jax.tree.structure(template), leaves)


def train(arch: Arch | str, settings: TrainSettings = TrainSettings(), *, data_dir=None,
          checkpoint: str | os.PathLike | None = None, stop_after: int | None = None,
          progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train the cell ``arch`` and evaluate it; returns ``{"arch", "settings", "epochs", "seconds" (of the training
    loop, this run), "loss",
    "params_init", "params", "running", "accuracy": {...}}`` (the accuracies of :func:`evaluate`).

    With ``checkpoint`` the state is saved after every epoch and a matching checkpoint is resumed. ``stop_after``
    ends the run after that many epochs in total (as a kill would; the checkpoint stays). ``progress(epoch, loss)``
    is called after each epoch."""
    arch = as_arch(arch)
    x_train, y_train, x_test, y_test = load_data(settings, data_dir)
    steps_per_epoch = max(1, len(y_train) // settings.batch_size)
    ops = jnp.asarray(arch.ops, jnp.int32)
    state = init_state(arch, settings, steps_per_epoch)
    initial = state["params"]
    meta = {"arch": arch.to_string(), **asdict(settings)}
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None and path.exists():
        state = _load(path, state, meta)
    start, loss = time.perf_counter(), float("nan")
    key = jax.random.PRNGKey(settings.seed)
    last = settings.epochs if stop_after is None else min(stop_after, settings.epochs)
    while int(state["epoch"]) < last:
        epoch = int(state["epoch"])
        order = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(key, 3), epoch), len(y_train))
        losses = []
        for i in range(steps_per_epoch):
            idx = order[i * settings.batch_size:(i + 1) * settings.batch_size]
            step_key = jax.random.fold_in(key, epoch * steps_per_epoch + i)
            state, batch_loss = train_step(state, ops, x_train[idx], y_train[idx], step_key, settings, steps_per_epoch)
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
            "seconds": seconds, "loss": loss, "params_init": initial, "params": state["params"],
            "running": state["running"], "accuracy": accuracy}


@partial(jax.jit, static_argnames="model")
def _hits(model, params, x, y, ctx) -> jax.Array:
    """How many of ``x`` the model classifies as ``y``."""
    return jnp.sum(jnp.argmax(model(params, x, ctx), -1) == y)


def evaluate(state, ops, x, y, settings: TrainSettings, batch: int = 250) -> dict[str, float]:
    """Accuracy with the running BN statistics: ``clean``, ``fgsm@3``, ``pgd20@3``, ``fgsm@8``, ``pgd20@8``
    (ε in /255; PGD with ``eval_steps`` steps of ε/4 and a random start)."""
    model = CellNetwork(settings.network_config("batch"))
    ctx = (ops, state["running"])
    key = jax.random.fold_in(jax.random.PRNGKey(settings.seed), 7)
    correct = {"clean": 0}
    for i in range(0, len(y), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        correct["clean"] += int(_hits(model, state["params"], xb, yb, ctx))
        for eps in EVAL_EPS:
            name = f"{eps * 255:g}"
            adv = {"fgsm": attack.fgsm(model, state["params"], xb, yb, ctx, eps),
                   "pgd20": attack.pgd(model, state["params"], xb, yb, ctx, jax.random.fold_in(key, i), eps, eps / 4,
                                       settings.eval_steps)}
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

