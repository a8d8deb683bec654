"""One-matrix-at-a-time eigendecompositions equal JAX's decomposition of each matrix alone."""

import jax
import jax.numpy as jnp
import numpy as np

from ntkscore.kernels import eigen


def test_one_at_a_time_equals_each_matrix_decomposed_alone():
    m = np.random.default_rng(0).normal(size=(2, 3, 6, 6)).astype(np.float32)
    a = jnp.asarray(m + np.swapaxes(m, -1, -2))
    w, v = jax.jit(eigen.eigh)(a)
    assert w.shape == (2, 3, 6) and v.shape == (2, 3, 6, 6)
    for i in range(2):
        for j in range(3):
            w1, v1 = jnp.linalg.eigh(a[i, j])
            np.testing.assert_array_equal(w[i, j], w1)
            np.testing.assert_allclose(np.abs(v[i, j]), np.abs(v1), atol=1e-6)
    np.testing.assert_array_equal(jax.jit(eigen.eigvalsh)(a), w)
    np.testing.assert_allclose(np.einsum("...ij,...j,...kj->...ik", v, w, v), a, atol=1e-4)
