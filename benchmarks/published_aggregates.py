"""The look that motivated round 4 (issue #6): the NTK score aggregated with *published* zero-cost proxies, on the
development split only.

    python benchmarks/published_aggregates.py     # needs runs/space/seed0.csv (benchmarks/robust_score.py --run)

Kendall τ against PGD-8 accuracy, on the 20% development cells of ``benchmarks/robust_score.py``'s split, of rank
aggregates (:func:`ntkscore.composite.log_rank_sum`) of the NTK score ``composite.robust_bound/trace+params`` with
the published NASWOT, synflow and jacov values (``../shared/data/zero_cost``). The test split is not read. Prints
the table; nothing is written.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from ntkscore import composite
from ntkscore.benchmarks import canonical_keys
from ntkscore.data import data_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import robust_score  # noqa: E402  (the same join and split as the study)

COMBINATIONS = {
    "ntk, nwot": ("ntk", "proxy.nwot"),
    "ntk, synflow": ("ntk", "proxy.synflow"),
    "ntk, nwot, synflow": ("ntk", "proxy.nwot", "proxy.synflow"),
    "ntk, nwot, jacov": ("ntk", "proxy.nwot", "proxy.jacov"),
    "ntk, nwot, jacov, synflow": ("ntk", "proxy.nwot", "proxy.jacov", "proxy.synflow"),
    "nwot, jacov, synflow (no NTK)": ("proxy.nwot", "proxy.jacov", "proxy.synflow"),
}


def main() -> int:
    root = data_dir(None)
    scores = pd.read_csv(robust_score.ROOT / "runs" / "space" / "seed0.csv")
    joined, baselines = robust_score.benchmark_join(scores, root, proxies=True)
    joined = joined.dropna(subset=baselines + list(robust_score.TARGETS))
    dev = joined[robust_score.split(canonical_keys(joined["arch"]), 0.2, 0)].reset_index(drop=True)
    dev = dev.assign(ntk=composite.CANDIDATES[composite.NTK_SCORE](dev))
    print(f"{len(dev)} development cells; Kendall τ against PGD-8 accuracy")
    for name, columns in COMBINATIONS.items():
        aggregate = composite.log_rank_sum([np.asarray(dev[c], np.float64) for c in columns])
        print(f"  rank({name}): {kendalltau(aggregate, dev[robust_score.SELECT_ON]).statistic:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
