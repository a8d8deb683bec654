"""The numerical precision of every scoring program: ``HIGHEST`` for every matmul and convolution.

On GPUs JAX's default precision for float32 matmuls and convolutions may be TF32 (about 1e-3 relative), and the
kernels' smallest eigenvalues sit at condition numbers of thousands, so a score computed at the default precision
would depend on the backend. Every program a score runs (attack, kernels, zero-cost terms) is traced inside
:func:`scoring_precision`, which sets ``jax.default_matmul_precision("highest")`` for the dots and convolutions that
name no precision of their own; the setting is part of JAX's compilation cache key, so a program compiled elsewhere
at another precision is never reused. On a CPU this is what XLA does anyway (float32 throughout).
"""

from __future__ import annotations

import jax

PRECISION = "highest"


def scoring_precision():
    """Context manager under which the scoring programs are traced and run (:data:`PRECISION`)."""
    return jax.default_matmul_precision(PRECISION)
