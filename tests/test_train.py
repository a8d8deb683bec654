"""Adversarial training: a step lowers the loss, β = 0 ignores the attack, a resumed run equals an uninterrupted one."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkscore.cell.space import Arch
from ntkscore.inputs import attack
from ntkscore.kernels.pipeline import CellNetwork
from ntkscore.train import (TrainSettings, _loss, augment, init_state, load_data, momentum_schedule, ntk_drift,
                            optimizer, step_hyperparameters, train, train_step)

ARCH = Arch.from_string("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
OPS = jnp.asarray(ARCH.ops, jnp.int32)
TINY = TrainSettings(epochs=2, batch_size=32, channels=4, cells_per_stage=1, input_size=8, train_images=64,
                     test_images=20, steps=2, eval_steps=2, apgd_steps=3)


@pytest.fixture(scope="module")
def first_step():
    """The learning rate and momentum of a TINY run's first step (two steps per epoch)."""
    return {k: v[0] for k, v in step_hyperparameters(TINY, 2).items()}


loss = jax.jit(_loss, static_argnames=("beta", "config"))  # as train_step runs it: one program, not op by op


@pytest.fixture(scope="module")
def batch(data_dir):
    x, y, _, _ = load_data(TINY, data_dir)
    return x[:32], y[:32]


@pytest.mark.parametrize("attack_bn", ["eval", "batch"])
def test_one_step_lowers_the_loss(batch, attack_bn, first_step):
    """The reported loss is the objective on the batch, augmented and attacked as the step says (the attack with the
    running BN statistics in eval mode, or the batch's own)."""
    x, y = batch
    settings = replace(TINY, attack_bn=attack_bn)  # TINY itself for "eval": the program the other tests compile
    state = init_state(ARCH, settings, 2)
    key = jax.random.PRNGKey(1)
    k_augment, k_attack = jax.random.split(key)
    x = augment(k_augment, x)
    ctx = (OPS, state["running"] if attack_bn == "eval" else None)
    x_adv = attack.pgd(CellNetwork(settings.network_config("batch"), input_gradients_only=True), state["params"], x, y,
                       ctx, k_attack, settings.eps, settings.step_size, settings.steps)
    config = settings.network_config()
    before = loss(state["params"], OPS, x, x_adv, y, settings.beta, config)[0]
    after_state, reported = train_step(state, OPS, batch[0], y, key, first_step, settings)
    after = loss(after_state["params"], OPS, x, x_adv, y, settings.beta, config)[0]
    assert float(reported) == pytest.approx(float(before), rel=1e-5) and float(after) < float(before)


def test_beta_zero_ignores_the_attack(batch, first_step):
    x, y = batch
    clean = replace(TINY, beta=0.0)
    state = init_state(ARCH, clean, 2)
    a, _ = train_step(state, OPS, x, y, jax.random.PRNGKey(1), first_step, clean)
    b, _ = train_step(state, OPS, x, y, jax.random.PRNGKey(1), first_step, replace(clean, eps=0.5 / 255, steps=7))
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    attacked, _ = train_step(state, OPS, x, y, jax.random.PRNGKey(1), first_step, replace(TINY, beta=1.0))
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
        "clean", "fgsm@3", "pgd20@3", "apgd-ce@3", "apgd-dlr@3", "fgsm@8", "pgd20@8", "apgd-ce@8", "apgd-dlr@8"}
    assert all(0.0 <= v <= 1.0 for v in whole["accuracy"].values())
    x = load_data(TINY, data_dir)[2][:8]
    drift = ntk_drift(whole["params_init"], whole["params"], OPS, x, TINY)
    assert drift > 0.0 and ntk_drift(whole["params_init"], whole["params_init"], OPS, x, TINY) == 0.0
    with pytest.raises(ValueError, match=r"checkpoint of another run: beta: checkpoint 1\.0, given 0\.0"):
        train(ARCH, replace(TINY, beta=0.0), data_dir=data_dir, checkpoint=tmp_path / "part.npz")
    with pytest.raises(ValueError, match="a finished run of 2 epochs, given 3: the one-cycle learning rate spans"):
        train(ARCH, replace(TINY, epochs=3), data_dir=data_dir, checkpoint=tmp_path / "part.npz")
    longer = train(ARCH, replace(TINY, epochs=3), data_dir=data_dir, checkpoint=tmp_path / "part.npz", extend=True)
    assert longer["epochs"] == 3 and longer["schedule"] == [2, 3] and set(longer["accuracy"]) == set(whole["accuracy"])
    assert not np.allclose(np.asarray(longer["params"]["stem"]["w"]), np.asarray(whole["params"]["stem"]["w"]))
    again = train(ARCH, replace(TINY, epochs=3), data_dir=data_dir, checkpoint=tmp_path / "part.npz")  # finished
    assert again["schedule"] == [2, 3] and again["accuracy"] == longer["accuracy"]
    np.testing.assert_array_equal(np.asarray(again["params"]["stem"]["w"]), np.asarray(longer["params"]["stem"]["w"]))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="beta must be in"):
        TrainSettings(beta=2.0)
    with pytest.raises(ValueError, match="input_size must be a multiple of 4"):
        TrainSettings(input_size=10)


def test_augmentation_is_a_zero_padded_crop_and_a_flip():
    x = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3) + 1.0
    out = np.asarray(augment(jax.random.PRNGKey(3), x))
    padded = np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)))  # padding 8 / 8 = 1
    for img, got in zip(padded, out):
        candidates = [img[i:i + 8, j:j + 8] for i in range(3) for j in range(3)]
        candidates += [c[:, ::-1] for c in candidates]
        assert any(np.array_equal(got, c) for c in candidates)
    outs = {np.asarray(augment(jax.random.PRNGKey(k), x)).tobytes() for k in range(20)}
    assert len(outs) > 5  # the crop and flip vary with the key


def test_an_extension_restarts_the_one_cycle_schedule():
    longer = replace(TINY, epochs=5)
    hyper = lambda opt: {k: float(v) for k, v in opt[1].hyperparams.items()}  # noqa: E731
    params = {"w": jnp.zeros(3)}
    steps = 4  # per epoch
    run, extended = optimizer(replace(TINY, epochs=3), steps), optimizer(longer, steps, (3, 5))
    given = step_hyperparameters(longer, steps, (3, 5))  # what train gives train_step, step by step
    assert given["learning_rate"].shape == given["momentum"].shape == (5 * steps,)
    state_run, state_ext = run.init(params), extended.init(params)
    for count in range(5 * steps):
        _, state_ext = extended.update(params, state_ext, params)
        assert hyper(state_ext) == pytest.approx({k: float(v[count]) for k, v in given.items()}, rel=1e-6)
        if count < 3 * steps - 1:
            _, state_run = run.update(params, state_run, params)
            assert hyper(state_ext) == pytest.approx(hyper(state_run))  # the first cycle is the finished run's
    new_run = optimizer(replace(TINY, epochs=2), steps)
    _, fresh = new_run.update(params, new_run.init(params), params)  # the hyperparameters its first step used
    restarted = extended.init(params)
    for _ in range(3 * steps + 1):
        _, restarted = extended.update(params, restarted, params)
    assert hyper(restarted) == pytest.approx(hyper(fresh))  # the second cycle starts as a new run of 2 epochs
    assert hyper(restarted)["learning_rate"] == pytest.approx(TINY.lr / 25)


def test_momentum_cycles_as_onecycle():
    schedule = momentum_schedule(100)
    values = np.asarray([float(schedule(c)) for c in range(101)])
    assert values[0] == pytest.approx(0.95) and values[30] == pytest.approx(0.85) and values[100] == pytest.approx(0.95)
    assert (np.diff(values[:31]) <= 1e-7).all() and (np.diff(values[30:]) >= -1e-7).all()
    assert values[15] == pytest.approx(0.90, abs=1e-6)  # the cosine's midpoint
