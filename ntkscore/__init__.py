"""ntkscore: training-free NAS scores from clean and adversarial empirical NTKs (JAX).

    >>> import ntkscore
    >>> ntkscore.score("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")

The data flows through the modules in this order: space → network → data/attack → ntk → theory → score → cli.
"""

__version__ = "0.2.0"

from .ntk import empirical_ntk_fn, ntk_pairs  # noqa: E402
from .score import Score, Scorer, ScoreSettings, score, score_model  # noqa: E402
from .space import OPS, Arch, all_archs, unique_archs  # noqa: E402

__all__ = ["OPS", "Arch", "Score", "ScoreSettings", "Scorer", "all_archs", "empirical_ntk_fn", "ntk_pairs",
           "score", "score_model", "unique_archs", "__version__"]
