"""Shared fixtures: the data directory and one tiny network configuration (C=4, N=1, 8×8) for most tests."""

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from ntkscore.cell.network import NetworkConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = NetworkConfig(channels=4, cells_per_stage=1, input_size=8)
TINY_SETTINGS = dict(channels=4, cells_per_stage=1, input_size=8, inputs="random", batch_size=6, steps=2, kernels="all",
                     family=False)


def pytest_configure(config):
    """One persistent compilation cache for the whole run, new and empty: the two xdist workers and the CLI
    subprocesses of the resume tests load what another process already compiled instead of compiling it again. It is
    created by the controlling process (the workers inherit ``$NTKSCORE_CACHE``) and removed at its end; the user's
    own cache is never read or written."""
    import atexit
    import shutil
    import tempfile

    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # the controlling process (or a run without xdist)
        path = tempfile.mkdtemp(prefix="ntkscore-test-xla-")
        os.environ["NTKSCORE_CACHE"] = path
        atexit.register(shutil.rmtree, path, ignore_errors=True)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``$NTKSCORE_DATA`` or ``../shared/data`` next to the repository; tests needing it skip without it."""
    path = Path(os.environ.get("NTKSCORE_DATA", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"benchmark data not found at {path} (set NTKSCORE_DATA)")
    return path


@contextmanager
def compilations():
    """Yields a list that collects the XLA backend compilations (their durations) made inside the block."""
    from jax import monitoring

    compiles: list[float] = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiles
    finally:
        monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops JAX's compiled programs after each test module (a module's tests share theirs). Every executable XLA's
    CPU backend keeps holds memory maps of its own, and the suite's thousands of programs, never released, approach
    the kernel's per-process limit (``vm.max_map_count``, 65530 by default), past which XLA's compiler crashes with
    a segmentation fault."""
    yield
    import jax

    jax.clear_caches()
