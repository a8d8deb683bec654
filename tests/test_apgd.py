"""APGD-CE and APGD-DLR: the checkpoint schedule, the ε-ball, the best loss, and no weaker than PGD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkscore.inputs import apgd, attack


def mlp(params, x, ctx=None):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


@pytest.fixture(scope="module")
def trained():
    """A small MLP fitted to three Gaussian classes of 4×4×1 'images' in [0, 1] (clean accuracy ~1)."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.3, 0.7, (3, 16))
    y = np.repeat(np.arange(3), 40)
    x = np.clip(centres[y] + rng.normal(0, 0.05, (120, 16)), 0, 1).reshape(120, 4, 4, 1).astype(np.float32)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    params = {"w1": jax.random.normal(k1, (16, 32)) * 0.5, "b1": jnp.zeros(32),
              "w2": jax.random.normal(k2, (32, 3)) * 0.5, "b2": jnp.zeros(3)}
    x, y = jnp.asarray(x), jnp.asarray(y)

    @jax.jit
    def step(p):
        g = jax.grad(lambda q: apgd.ce_loss(mlp(q, x), y).mean())(p)
        return jax.tree.map(lambda a, b: a - 0.5 * b, p, g)

    for _ in range(400):
        params = step(params)
    assert float(jnp.mean(jnp.argmax(mlp(params, x), 1) == y)) > 0.95
    return params, x, y


def test_checkpoints_follow_the_paper():
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (then 1.05): w = ⌈100 p⌉
    assert apgd.checkpoints(100).tolist() == [22, 41, 57, 70, 80, 87, 93, 99]


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_inside_the_ball_best_loss_non_decreasing_and_no_weaker_than_pgd(trained, loss):
    params, x, y = trained
    eps = 0.08
    adv, history = apgd.apgd(mlp, params, x, y, None, jax.random.PRNGKey(1), eps, steps=40, loss=loss,
                             with_losses=True)
    assert float(jnp.max(jnp.abs(adv - x))) <= eps + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    h = np.asarray(history)
    assert h.shape == (41, len(y)) and (np.diff(h, axis=0) >= 0).all()
    fooled = np.asarray(jnp.argmax(mlp(params, adv), 1) != y)
    final = np.asarray((apgd.ce_loss if loss == "ce" else apgd.dlr_loss)(mlp(params, adv), y))
    np.testing.assert_allclose(final[~fooled], h[-1][~fooled], rtol=1e-5)  # the best point is what comes back
    robust = 1.0 - fooled.mean()
    pgd = attack.pgd(mlp, params, x, y, None, jax.random.PRNGKey(2), eps, eps / 4, 20)
    pgd_acc = float(jnp.mean(jnp.argmax(mlp(params, pgd), 1) == y))
    clean = float(jnp.mean(jnp.argmax(mlp(params, x), 1) == y))
    assert robust <= pgd_acc + 2 / len(y) and robust < clean  # a real attack, at least as strong as PGD-20


def test_dlr_loss_closed_form():
    logits = jnp.asarray([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 5.0, 1.0]])
    y = jnp.asarray([0, 1])
    # sample 0: −(3 − 1)/(3 − 0); sample 1: −(2 − 5)/(5 − 1)
    np.testing.assert_allclose(apgd.dlr_loss(logits, y), [-2 / 3, 3 / 4], rtol=1e-6)
    with pytest.raises(ValueError, match="loss must be one of"):
        apgd.apgd(mlp, None, jnp.zeros((1, 4, 4, 1)), jnp.zeros(1, jnp.int32), None, jax.random.PRNGKey(0), 0.1,
                  steps=2, loss="cw")
