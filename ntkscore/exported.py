"""Scoring programs kept across processes as ``jax.export`` artifacts, so that a new process does not trace them again.

JAX's persistent compilation cache (:mod:`ntkscore.compilation_cache`) skips XLA's compilation in a new process, but
not the tracing and lowering of the Python function that finds the cached program: for the default settings that
is most of a warm first score (the network is traced once per program, each of its 18 edges a ``lax.switch``).
:class:`Programs` calls a jitted function through its exported form instead: the first call with given static
arguments and argument shapes traces it once, stores ``jax.export``'s serialized StableHLO under
``<cache>/exported/`` and runs it; a later process deserializes it (no tracing) and compiles it (a cache hit).

An artifact's name is a hash of everything its program depends on: the function, its static arguments, the
structure, shapes and dtypes of its arguments, the matmul precision and ``jax_enable_x64`` in effect, the backend,
the JAX version and the source of the installed ``ntkscore`` package (so an edited package never runs an old
program). Where the cache is off (``NTKSCORE_CACHE=off``), or serialization is not available (it needs the
``flatbuffers`` package), or an artifact cannot be written or read, the function is traced as usual.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache, partial
from pathlib import Path
from typing import Any, Callable

import jax

from . import compilation_cache

SUFFIX = ".jaxexport"


@cache
def _package_source_hash() -> str:
    """SHA-256 of every ``.py`` file of the installed package (path and content), computed once per process."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def artifact_key(fn: Callable, args: tuple, static: dict[str, Any]) -> str:
    """The artifact name of ``fn(*args, **static)`` (module docstring: what it depends on)."""
    leaves, tree = jax.tree.flatten(args)
    shapes = [(tuple(getattr(a, "shape", ())), str(getattr(a, "dtype", type(a).__name__)),
               bool(getattr(a, "weak_type", False))) for a in leaves]
    parts = [getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn)), repr(sorted(static.items())),
             str(tree), repr(shapes), str(jax.config.jax_default_matmul_precision), str(jax.config.jax_enable_x64),
             jax.default_backend(), jax.__version__, _package_source_hash()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


class Programs:
    """Calls jitted functions through their stored ``jax.export`` form (module docstring); ``directory`` defaults to
    ``<cache>/exported`` of :func:`ntkscore.compilation_cache.cache_dir` (``None``: call every function as it is).
    Each instance remembers the programs it loaded; one :class:`~ntkscore.Scorer` holds one."""

    def __init__(self, directory: str | os.PathLike | None | bool = True,
                 compiler_options: dict[str, Any] | None = None):
        self.compiler_options = compiler_options
        """XLA compiler options of every program it compiles (``jax.jit``'s ``compiler_options``)."""
        if directory is True:
            base = compilation_cache.cache_dir()
            directory = None if base is None else base / "exported"
        self.directory = None if directory in (None, False) else Path(directory)
        self._loaded: dict[str, Callable] = {}

    def __call__(self, fn: Callable, *args, **static):
        """``fn(*args, **static)``, ``fn`` jitted with ``static``'s names as its static arguments."""
        return self._program(fn, args, static)[1](*args)

    def compile(self, fn: Callable, *args, **static) -> None:
        """Load or compile the program of ``fn(*args, **static)`` without running it (a later call with arguments
        of the same shapes runs it at once). Safe to call from several threads for different programs."""
        key, program = self._program(fn, args, static)
        if isinstance(program, jax.stages.Compiled):
            return
        if isinstance(program, partial):  # traced as usual: the jitted function with its static arguments
            if not hasattr(program.func, "lower"):  # not a jitted function: it compiles when it runs
                return
            lowered = program.func.lower(*args, **program.keywords)
        else:
            lowered = program.lower(*args)
        self._loaded[key] = lowered.compile()

    def _program(self, fn: Callable, args: tuple, static: dict[str, Any]) -> tuple[str, Callable]:
        """The artifact key of ``fn(*args, **static)`` and its program: compiled, loaded or traced as usual."""
        key = artifact_key(fn, args, static)
        program = self._loaded.get(key)
        if program is None:
            if self.directory is None:
                program = _traced(fn, static, self.compiler_options)
            else:
                program = self._load_or_export(fn, args, static, self.directory / f"{key}{SUFFIX}")
            self._loaded[key] = program
        return key, program

    def _load_or_export(self, fn: Callable, args: tuple, static: dict[str, Any], path: Path) -> Callable:
        try:
            from jax import export
            if path.exists():
                exported = export.deserialize(bytearray(path.read_bytes()))
            else:
                exported = export.export(fn)(*args, **static)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(exported.serialize())
                os.replace(tmp, path)
        except Exception:  # no flatbuffers, an unwritable or unreadable file, a program export cannot serialize
            return _traced(fn, static, self.compiler_options)
        return jax.jit(exported.call, compiler_options=self.compiler_options)


def _traced(fn: Callable, static: dict[str, Any], compiler_options: dict[str, Any] | None = None) -> Callable:
    """The jitted ``fn`` with ``static`` bound, traced as usual (jitted again with ``compiler_options``, if any)."""
    bound = partial(fn, **static)
    return bound if compiler_options is None else jax.jit(bound, compiler_options=compiler_options)
