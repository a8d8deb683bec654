"""Adversarial training: a step lowers the loss, β = 0 ignores the attack, a resumed run equals an uninterrupted one."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkscore.cell.space import Arch
from ntkscore.inputs import attack
from ntkscore.kernels.pipeline import CellNetwork
from ntkscore.train import TrainSettings, _loss, init_state, load_data, ntk_drift, train, train_step

ARCH = Arch.from_string("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
OPS = jnp.asarray(ARCH.ops, jnp.int32)
TINY = TrainSettings(epochs=2, batch_size=32, channels=4, cells_per_stage=1, input_size=8, train_images=64,
                     test_images=20, steps=2, eval_steps=2)


@pytest.fixture(scope="module")
def batch(data_dir):
    x, y, _, _ = load_data(TINY, data_dir)
    return x[:32], y[:32]


def test_one_step_lowers_the_loss(batch):
    x, y = batch
    settings = replace(TINY, beta=0.5, lr=0.5)
    state = init_state(ARCH, settings, 2)
    key = jax.random.PRNGKey(1)
    x_adv = attack.pgd(CellNetwork(settings.network_config("batch"), input_gradients_only=True), state["params"], x, y,
                       (OPS, None), key, settings.eps, settings.step_size, settings.steps)
    config = settings.network_config()
    before = _loss(state["params"], OPS, x, x_adv, y, 0.5, config)[0]
    after_state, reported = train_step(state, OPS, x, y, key, settings, 2)
    after = _loss(after_state["params"], OPS, x, x_adv, y, 0.5, config)[0]
    assert float(reported) == pytest.approx(float(before), rel=1e-5) and float(after) < float(before)


def test_beta_zero_ignores_the_attack(batch):
    x, y = batch
    clean = replace(TINY, beta=0.0)
    state = init_state(ARCH, clean, 2)
    a, _ = train_step(state, OPS, x, y, jax.random.PRNGKey(1), clean, 2)
    b, _ = train_step(state, OPS, x, y, jax.random.PRNGKey(2), replace(clean, eps=0.5 / 255, steps=7), 2)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    attacked, _ = train_step(state, OPS, x, y, jax.random.PRNGKey(1), replace(TINY, beta=1.0), 2)
    assert not np.allclose(np.asarray(attacked["params"]["stem"]["w"]), np.asarray(a["params"]["stem"]["w"]))


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, data_dir):
    whole = train(ARCH, TINY, data_dir=data_dir, checkpoint=tmp_path / "whole.npz")
    stopped = train(ARCH, TINY, data_dir=data_dir, checkpoint=tmp_path / "part.npz", stop_after=1)
    assert stopped["epochs"] == 1 and stopped["accuracy"] == {}
    resumed = train(ARCH, TINY, data_dir=data_dir, checkpoint=tmp_path / "part.npz")
    assert resumed["epochs"] == 2
    for u, v in zip(jax.tree.leaves(whole["params"]), jax.tree.leaves(resumed["params"])):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert whole["accuracy"] == resumed["accuracy"] and set(whole["accuracy"]) == {
        "clean", "fgsm@3", "pgd20@3", "fgsm@8", "pgd20@8"}
    assert all(0.0 <= v <= 1.0 for v in whole["accuracy"].values())
    x = load_data(TINY, data_dir)[2][:8]
    drift = ntk_drift(whole["params_init"], whole["params"], OPS, x, TINY)
    assert drift > 0.0 and ntk_drift(whole["params_init"], whole["params_init"], OPS, x, TINY) == 0.0
    with pytest.raises(ValueError, match="checkpoint of another run"):
        train(ARCH, replace(TINY, beta=0.0), data_dir=data_dir, checkpoint=tmp_path / "part.npz")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="beta must be in"):
        TrainSettings(beta=2.0)
    with pytest.raises(ValueError, match="input_size must be a multiple of 4"):
        TrainSettings(input_size=10)
