"""ntkscore: training-free NAS scores from clean and adversarial empirical NTKs (JAX).

    >>> import ntkscore
    >>> s = ntkscore.score("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    >>> s.value, s.robustness

The subpackages follow the data flow: ``cell`` (space, network, cost) → ``inputs`` (data, attack) → ``kernels``
(NTK engines, the fused program, theory, the NTK family) → ``proxies`` (zero-cost terms) → ``scores`` (settings,
scorer, formulas, result) → ``study`` (rank, benchmark tables, evaluation, fitting) → ``cli``.
"""

__version__ = "0.8.0"

from .cell.space import OPS, Arch, all_archs, unique_archs  # noqa: E402
from .kernels.ntk import empirical_ntk_fn, ntk_pairs  # noqa: E402
from .scores.model import score_model  # noqa: E402
from .scores.result import Score  # noqa: E402
from .scores.scorer import Scorer, score  # noqa: E402
from .scores.settings import ScoreSettings  # noqa: E402
from .study.learn import fit  # noqa: E402
from .study.search import search  # noqa: E402

__all__ = ["OPS", "Arch", "Score", "ScoreSettings", "Scorer", "all_archs", "empirical_ntk_fn", "ntk_pairs",
           "fit", "score", "score_model", "search", "unique_archs", "__version__"]
