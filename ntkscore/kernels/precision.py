"""The numerical precision of every scoring program: ``HIGHEST`` for every matmul and convolution.

On GPUs JAX's default precision for float32 matmuls and convolutions may be TF32 (about 1e-3 relative), and the
kernels' smallest eigenvalues sit at condition numbers of thousands, so a score computed at the default precision
would depend on the backend. Every program a score runs (attack, kernels, zero-cost terms) is traced inside
:func:`scoring_precision`, which sets ``jax.default_matmul_precision("highest")`` for the dots and convolutions that
name no precision of their own; the setting is part of JAX's compilation cache key, so a program compiled elsewhere
at another precision is never reused. On a CPU this is what XLA does anyway (float32 throughout).

On a CPU, XLA hands dots, convolutions and reductions to the YNNPACK library by default ("library fusions"). The
layerwise engine's scoring programs are compiled without them (``ScoreSettings.cpu_library_fusions=False``, the
default there; :func:`compiler_options`): XLA's own kernels. On a 2-core x86 CPU a warm first score at the default
settings then takes about a second less (rebuilding the library fusions is most of what loading a cached program
costs) and later cells run a little faster (``benchmarks/results/first_call.md``). ``True`` compiles them with the
library fusions: the same arithmetic summed in another order, so the scores move at float32 rounding
(``benchmarks/results/rounding.md``). Host-side operations (the images' downsampling) and the Jacobian reference
engine keep XLA's defaults. Compiler options are part of the compilation cache key.
"""

from __future__ import annotations

import jax

PRECISION = "highest"


def scoring_precision():
    """Context manager under which the scoring programs are traced and run (:data:`PRECISION`)."""
    return jax.default_matmul_precision(PRECISION)


LIBRARY_FUSIONS_OFF = {"xla_cpu_experimental_ynn_fusion_type": ""}
"""XLA:CPU's option that turns its YNNPACK library fusions off (an empty list of fusion types)."""


def compiler_options(cpu_library_fusions: bool) -> dict[str, str] | None:
    """The XLA compiler options of the scoring programs: ``None`` (XLA's defaults), or, with
    ``cpu_library_fusions=False`` on the CPU backend, :data:`LIBRARY_FUSIONS_OFF` (other backends have no such
    fusions: ``None``)."""
    if cpu_library_fusions or jax.default_backend() != "cpu":
        return None
    return dict(LIBRARY_FUSIONS_OFF)
