"""How exact is the NTK at the real shape? ntkscore's kernel (float32 and float64) against a float64 reference.

    python benchmarks/ntk_float64.py          # after benchmarks/peer_speed.py, to include PyTorch's kernels

For the cells of ``benchmarks/peer_speed.py`` (C16 N5, 32×32, the scorer's CIFAR-10 batch, B = 16), the reference
is the plain per-sample-gradient kernel in float64: ``jax.vmap(jax.grad)`` of the summed logits (or of each logit
in turn, summed over logits for the traced NTK) of :func:`ntkscore.cell.network.apply` with the batch's BN
statistics held constant, then the Gram.
Reported: ‖K − K_ref‖_F / ‖K_ref‖_F for ntkscore's layerwise engine run in float64 (the engine itself) and in
float32 (what a score uses), and for the ``torch.func`` kernel of ``peer_speed_kernels.npz`` (float32) when present.
Results: ``benchmarks/results/ntk_float64.md``.
"""

import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_speed import CELLS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def reference(params, ops, x, config, output: str) -> np.ndarray:
    from ntkscore.cell import network

    stats = network.batch_statistics(params, ops, x, config)
    n = x.shape[0]

    def logits(p, xi):
        return network.apply(p, ops, xi[None], config, stats)[0]

    @jax.jit
    def gram(v):  # the kernel of the output v·f, from the per-sample gradients
        grads = jax.vmap(jax.grad(lambda p, xi: logits(p, xi) @ v), in_axes=(None, 0))(params, x)
        g = jnp.concatenate([a.reshape(n, -1) for a in jax.tree.leaves(grads)], 1)
        return g @ g.T

    if output == "sum":
        return np.asarray(gram(jnp.ones(config.num_classes, x.dtype)))
    return sum(np.asarray(gram(v)) for v in jnp.eye(config.num_classes, dtype=x.dtype))  # one logit at a time


def main() -> int:
    import ntkscore
    from ntkscore.cell.space import as_arch
    from ntkscore.kernels import pipeline

    torch = RESULTS / "peer_speed_kernels.npz"
    torch_kernels = dict(np.load(torch)) if torch.exists() else {}
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))  # noqa: E731
    rows = []
    for output in ("sum", "trace"):
        s = ntkscore.Scorer(ntkscore.ScoreSettings.real_shape(batch_size=16, kernels="clean", output=output, proxies=False))
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), s.params)
        x64 = jnp.asarray(s.x, jnp.float64)
        for cell, arch in CELLS.items():
            ops = jnp.asarray(as_arch(arch).ops, jnp.int32)
            ref = reference(p64, ops, x64, s.config, output)

            def ours(params, x):
                out = pipeline.cell_kernels(params, ops, x, s.y, s._attack_key, s.settings, s.config)[0][0]
                return np.asarray(out, np.float64).sum(0)

            torch_k = torch_kernels.get(f"torch.func|{cell}|16|{output}")
            eig = np.linalg.eigvalsh(ref)
            rows.append(f"| {output} | {cell} | {rel(ours(p64, x64), ref):.1e} | {rel(ours(s.params, s.x), ref):.1e} | "
                        f"{'–' if torch_k is None else f'{rel(torch_k, ref):.1e}'} | {eig[-1] / eig[0]:.0f} |")
    text = "\n".join([
        "# The NTK against a float64 reference (C16 N5, 32×32, B = 16)", "",
        "Command: `python benchmarks/ntk_float64.py` (PyTorch's kernels from `benchmarks/peer_speed.py`).", "",
        "Relative Frobenius distance to the float64 per-sample-gradient kernel; *cond* = λ_max/λ_min of the reference.",
        "", "| output | cell | ntkscore float64 | ntkscore float32 | torch.func float32 | cond |", "|---|---|---|---|---|---|",
        *rows]) + "\n"
    (RESULTS / "ntk_float64.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
