"""The look that motivated round 5 (issue #6): candidate new factors, on 500 development cells only.

    python benchmarks/candidate_terms.py     # needs runs/space/seed0.csv and proxies_seed0.csv (robust_score.py --run)

On a seeded sample of 500 cells of the 20% development split of ``benchmarks/robust_score.py`` (the test split is
not read), each candidate statistic of every ReLU layer's input ``h`` ``(n, H, W, C)`` is summed over the layers
(:func:`ntkscore.proxies.relu_input_statistics`) at the zero-cost terms' cheap settings (C16 N1, 16×16, the same
64 images, seed 0), and judged by Kendall τ against PGD-8 accuracy alone and in rank aggregates with the NTK score
(and NASWOT/jacov). The candidates:

* ``swap@k``: SWAP (Peng et al. 2024), the number of distinct on/off patterns of a unit over the first ``k`` images;
* ``expressivity``: AZ-NAS's (Lee & Ham 2024) entropy of the normalised eigenvalues of the channel covariance;
* ``meco@1`` / ``meco@8`` / ``meco@64``: ``C · mean λ_min`` of the channel correlation over the first 1 (published
  MeCo), 8 or all 64 images; ``meco@64/C``: without the width weight.

Prints the table; nothing is written. Session 6's output is quoted in the README.
"""

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from ntkscore import Arch, Scorer, ScoreSettings, composite, proxies
from ntkscore.benchmarks import canonical_keys
from ntkscore.data import data_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import robust_score  # noqa: E402  (the same join and split as the study)

CELLS = 500


def distinct_patterns(on: jax.Array, k: int) -> jax.Array:
    """Distinct columns of the ``(n, units)`` on/off matrix over its first ``k`` rows (bit-packed, sorted)."""
    bits = on[:k].astype(jnp.uint32)
    words = [jnp.sum(bits[i:i + 32] << jnp.arange(bits[i:i + 32].shape[0], dtype=jnp.uint32)[:, None], axis=0)
             for i in range(0, k, 32)]
    order = jnp.lexsort(tuple(words[::-1]))
    changed = jnp.zeros(on.shape[1] - 1, bool)
    for w in words:
        w = w[order]
        changed = changed | (w[1:] != w[:-1])
    return 1.0 + jnp.sum(changed)


def candidate_statistics(pre: jax.Array) -> dict[str, jax.Array]:
    n, c = pre.shape[0], pre.shape[-1]
    on = (pre > 0).reshape(n, -1)
    f = pre.reshape(-1, c)
    f = f - f.mean(0)
    ev = jnp.clip(jnp.linalg.eigvalsh(f.T @ f / f.shape[0]), 0, None)
    p = ev / jnp.maximum(ev.sum(), 1e-12)
    low = proxies.channel_correlation_min_eigenvalue(pre)
    return {"swap@8": distinct_patterns(on, 8), "swap@16": distinct_patterns(on, 16),
            "swap@64": distinct_patterns(on, n),
            "expressivity": -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)),
            "meco@1": c * low[0], "meco@8": c * low[:8].mean(), "meco@64": c * low.mean(), "meco@64/C": low.mean()}


def main() -> int:
    root = data_dir(None)
    runs = robust_score.ROOT / "runs" / "space"
    scores = robust_score.with_proxies(pd.read_csv(runs / "seed0.csv"), runs / "proxies_seed0.csv")
    joined, baselines = robust_score.benchmark_join(scores, root, proxies=True)
    joined = joined.dropna(subset=baselines + list(robust_score.TARGETS))
    dev = joined[robust_score.split(canonical_keys(joined["arch"]), 0.2, 0)].reset_index(drop=True)
    dev = dev.sample(n=CELLS, random_state=0).reset_index(drop=True)
    scorer = Scorer(ScoreSettings(kernels="none", channels=16, cells_per_stage=1, input_size=16))
    start, rows = time.perf_counter(), []
    for arch in dev["arch"]:
        ops = jnp.asarray(Arch.from_string(arch).ops, jnp.int32)
        stats = proxies.relu_input_statistics(scorer.params, ops, scorer.proxy_x, scorer.config,
                                              statistics=candidate_statistics)
        rows.append({k: float(v) for k, v in stats.items()})
    new = pd.DataFrame(rows)
    dev = pd.concat([dev, new], axis=1).assign(ntk=composite.CANDIDATES[composite.NTK_SCORE](dev))
    target = robust_score.SELECT_ON
    print(f"{len(dev)} development cells, {(time.perf_counter() - start) / len(dev):.3f} s per cell; Kendall τ "
          "against PGD-8 accuracy (alone | rank with ntk | with ntk, NASWOT | with ntk, NASWOT, jacov)")
    for name in ["ntk", "zc.naswot", "zc.jacov", *new.columns]:
        taus = [kendalltau(dev[name], dev[target]).statistic]
        for others in (["ntk"], ["ntk", "zc.naswot"], ["ntk", "zc.naswot", "zc.jacov"]):
            if name not in others:
                aggregate = composite.log_rank_sum([np.asarray(dev[c], np.float64) for c in [*others, name]])
                taus.append(kendalltau(aggregate, dev[target]).statistic)
        print(f"  {name:14s} " + " | ".join(f"{t:.3f}" for t in taus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
