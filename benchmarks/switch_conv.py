"""Why every convolution in a cell edge's branch is an ordinary NHWC/HWIO one (``ntkscore.cell.conv``).

    python benchmarks/switch_conv.py

Six 3×3 convolutions (C16, 32×32, batch 160) in a row, each either plain or inside a two-way ``lax.switch`` (as a
cell edge chooses its op), timed for the forward pass and for the gradient with respect to the input and the
weights: with XLA's convolution and JAX's own VJP (:func:`ntkscore.cell.conv.lax_conv`), and with
:func:`ntkscore.cell.conv.im2col_conv` (input cotangent as an ordinary convolution, weight gradient as a matmul).
Median of 5 calls after a warm-up; results: ``benchmarks/results/switch_conv.md``.
"""

import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import lax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import machine  # noqa: E402

from ntkscore.cell.conv import im2col_conv, lax_conv  # noqa: E402


def seconds(fn, *args) -> float:
    fn = jax.jit(fn)
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    x = jax.random.normal(jax.random.PRNGKey(0), (160, 32, 32, 16))
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 16, 16)) / 12.0
    index = jnp.int32(1)
    rows = []
    for name, conv in (("lax_conv (JAX's VJP)", lax_conv), ("im2col_conv", im2col_conv)):
        def plain(x, w, i, conv=conv):
            for _ in range(6):
                x = conv(x, w, 1)
            return x

        def switched(x, w, i, conv=conv):
            for _ in range(6):
                x = lax.switch(i, [lambda z: 2.0 * z, lambda z: conv(z, w, 1)], x)  # noqa: B023
            return x

        for where, fn in (("plain", plain), ("in a lax.switch", switched)):
            grad = jax.grad(lambda x, w, i, fn=fn: fn(x, w, i).sum(), argnums=(0, 1))
            rows.append(f"| {name} | {where} | {seconds(fn, x, w, index):.3f} | {seconds(grad, x, w, index):.3f} |")
    text = "\n".join(["# Convolutions inside a `lax.switch` branch", "", f"Machine: {machine()}", "",
                      "Command: `python benchmarks/switch_conv.py`; six C16 3×3 convolutions, batch 160, 32×32; "
                      "median seconds.", "", "| convolution | where | forward s | gradient (input and weights) s |",
                      "|---|---|---|---|", *rows]) + "\n"
    (Path(__file__).resolve().parent / "results" / "switch_conv.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
