"""Score models that are not NB201 cells: a Flax (linen) CNN and an Equinox MLP, on 8 random 8×8 images.

    pip install 'ntkscore[flax,equinox]' && python examples/score_a_model.py
"""

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp

import ntkscore

x = jax.random.uniform(jax.random.PRNGKey(0), (8, 8, 8, 3))  # inputs in [0, 1]
y = jnp.arange(8) % 4                                         # integer labels


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        return nn.Dense(4)(x.mean(axis=(1, 2)))


cnn = CNN()
variables = cnn.init(jax.random.PRNGKey(1), x[:1])
flax_score = ntkscore.score_model(cnn.apply, variables, x, y, steps=3)

mlp = eqx.nn.MLP(8 * 8 * 3, 4, 32, 2, key=jax.random.PRNGKey(2))  # Equinox models take one example at a time
net = eqx.nn.Sequential([eqx.nn.Lambda(jnp.ravel), mlp])
eqx_score = ntkscore.score_model(net, None, x, y, steps=3)

for name, s in (("flax CNN", flax_score), ("equinox MLP", eqx_score)):
    print(f"{name:<12} λ_min(K̃_ε) {s['K_rob.lambda_min']:.4g}  λ_min(K) {s['K.lambda_min']:.4g}  "
          f"λ_min(K̃_all(1)) {s['K_rob_all@1.lambda_min']:.4g}  params {s['params']:.0f}")
