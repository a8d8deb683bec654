"""A persistent cache of compiled XLA programs, shared by the CLI and the Python API.

The first compilation of a network shape takes from seconds (tiny networks) to a minute or two (C = 16, N = 5 on a
2-core CPU); with the cache a new process reuses it. The cache directory is ``$NTKSCORE_CACHE`` (default
``~/.cache/ntkscore/xla``); ``NTKSCORE_CACHE=off`` disables it. It is JAX's own persistent compilation cache
(``jax_compilation_cache_dir``), a process-wide setting: :func:`enable` leaves it alone when the process already set
a cache directory of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "NTKSCORE_CACHE"


def cache_dir() -> Path | None:
    """The cache directory from ``$NTKSCORE_CACHE`` (default ``~/.cache/ntkscore/xla``), ``None`` when ``off``."""
    path = os.environ.get(ENV, str(Path.home() / ".cache" / "ntkscore" / "xla"))
    return None if path.strip().lower() == "off" else Path(path)


def enable() -> Path | None:
    """Turn the persistent cache on at :func:`cache_dir` (every program is kept, however fast it compiled; a warm
    start still traces and lowers each program to find it), unless it is off or the process already chose a cache
    directory. Returns the directory in use, or ``None``."""
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    path = cache_dir()
    if path is not None:
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path
