import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkscore.inputs import attack


def _model(params, x, ctx):
    h = jax.nn.relu(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


@pytest.fixture(scope="module")
def trained():
    """A small MLP trained for 150 Adam steps on two Gaussian blobs in [0, 1]^16."""
    kx, kn, kp1, kp2 = jax.random.split(jax.random.PRNGKey(0), 4)
    y = jnp.arange(64) % 2
    centres = jnp.where(y[:, None] == 1, 0.6, 0.4)
    x = jnp.clip(centres + 0.08 * jax.random.normal(kx, (64, 16)), 0.0, 1.0)
    params = {"w1": jax.random.normal(kp1, (16, 32)) / 4, "b1": jnp.zeros(32),
              "w2": jax.random.normal(kp2, (32, 2)) / 6, "b2": jnp.zeros(2)}
    opt = optax.adam(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(lambda p: attack.cross_entropy(_model, p, x, y, None))(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state

    for _ in range(150):
        params, state = step(params, state)
    return params, x, y


def test_pgd_is_stronger_than_fgsm_which_beats_clean(trained):
    params, x, y = trained
    eps = 0.05
    clean = attack.cross_entropy(_model, params, x, y, None)
    x_fgsm = attack.fgsm(_model, params, x, y, None, eps)
    x_pgd = attack.pgd(_model, params, x, y, None, jax.random.PRNGKey(1), eps, eps / 4, 20)
    l_fgsm = attack.cross_entropy(_model, params, x_fgsm, y, None)
    l_pgd = attack.cross_entropy(_model, params, x_pgd, y, None)
    assert float(clean) < 0.3  # the network did learn
    assert float(l_pgd) >= float(l_fgsm) > float(clean)
    for adv in (x_fgsm, x_pgd):
        assert float(jnp.abs(adv - x).max()) <= eps + 1e-6
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_twice_perturbed_batch_is_within_two_eps(trained):
    params, x, y = trained
    eps = 0.05
    once = attack.pgd(_model, params, x, y, None, jax.random.PRNGKey(1), eps, eps / 4, 7)
    twice = attack.pgd(_model, params, once, y, None, jax.random.PRNGKey(2), eps, eps / 4, 7)
    assert float(jnp.abs(twice - once).max()) <= eps + 1e-6
    assert float(jnp.abs(twice - x).max()) <= 2 * eps + 1e-6
    assert float(jnp.abs(twice - x).max()) > eps  # it really went further than one ball
    assert float(attack.cross_entropy(_model, params, twice, y, None)) >= \
        float(attack.cross_entropy(_model, params, once, y, None))


def test_pgd_is_seeded(trained):
    params, x, y = trained
    a = attack.pgd(_model, params, x, y, None, jax.random.PRNGKey(5), 0.05, 0.01, 3)
    b = attack.pgd(_model, params, x, y, None, jax.random.PRNGKey(5), 0.05, 0.01, 3)
    c = attack.pgd(_model, params, x, y, None, jax.random.PRNGKey(6), 0.05, 0.01, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("args, message", [((2.0, 0.1, 3), "eps must be in"), ((0.1, 0.0, 3), "step size"),
                                           ((0.1, 0.1, -1), "steps must be")])
def test_bad_attack_settings(args, message):
    with pytest.raises(ValueError, match=message):
        attack.validate(*args)
