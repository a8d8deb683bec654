"""Shared fixtures: the data directory and one tiny network configuration (C=4, N=1, 8×8) for most tests."""

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from ntkscore.cell.network import NetworkConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = NetworkConfig(channels=4, cells_per_stage=1, input_size=8)
TINY_SETTINGS = dict(channels=4, cells_per_stage=1, input_size=8, inputs="random", batch_size=6, steps=2, kernels="all",
                     family=False, proxy_batch_size=8)
FEWEST_SETTINGS = dict(TINY_SETTINGS, batch_size=4, steps=1, kernels="robust", proxies=False)
"""The fewest, smallest programs (the attacked kernels, no zero-cost pass), for tests of what is done with scores,
not of the scores: the cluster, resume and artifact tests share their compiled programs."""


def pytest_configure(config):
    """One persistent compilation cache for the whole run, new and empty: the two xdist workers and the CLI
    subprocesses of the resume tests load what another process already compiled instead of compiling it again. It is
    created by the controlling process (the workers inherit ``$NTKSCORE_CACHE``) and removed at its end; the user's
    own cache is never read or written. Every process turns it on at once, so that the programs a test compiles
    with plain ``jax.jit`` are kept too."""
    import atexit
    import shutil
    import tempfile

    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # the controlling process (or a run without xdist)
        path = tempfile.mkdtemp(prefix="ntkscore-test-xla-")
        os.environ["NTKSCORE_CACHE"] = path
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    from ntkscore import compilation_cache

    compilation_cache.enable()  # from the first test on, whatever builds its programs (not only a Scorer)


MODULE_SECONDS = {"test_train.py": 130, "test_layerwise.py": 120, "test_notebook.py": 85, "test_family.py": 84,
                  "test_proxies.py": 71, "test_cluster.py": 70, "test_cli.py": 67, "test_score.py": 52,
                  "test_network.py": 44, "test_pipeline.py": 44, "test_ntk.py": 39, "test_exported.py": 30,
                  "test_precision.py": 28, "test_model.py": 28, "test_rank.py": 25, "test_search.py": 20}
"""Seconds each module's tests took in one run on two xdist workers on a 2-core CPU, timed per test (modules not
listed take a few seconds): a scheduling hint, not an expectation."""
FIRST = "test_cli.py"


def pytest_collection_modifyitems(config, items):
    """Orders the modules in two lanes of about equal time, each longest first: pytest-xdist's ``worksteal`` gives
    each worker one half of the collection and lets an idle worker take the *end* of the other's queue, so the
    long modules start at once and the short ones fill the end. A module's tests keep their order (and share
    their module fixtures); every worker computes the same order. ``FIRST`` starts its lane."""
    modules = list(dict.fromkeys(item.path.name for item in items))
    lanes, load = ([], []), [0.0, 0.0]
    for module in sorted(modules, key=lambda m: -MODULE_SECONDS.get(m, 2)):
        lane = 0 if load[0] <= load[1] else 1
        lanes[lane].append(module)
        load[lane] += MODULE_SECONDS.get(module, 2)
    for lane in lanes:  # its first test compiles the tiny settings' programs that most modules then load
        if FIRST in lane:
            lane.insert(0, lane.pop(lane.index(FIRST)))
    rank = {module: i for i, module in enumerate(lanes[0] + lanes[1])}
    items.sort(key=lambda item: rank[item.path.name])


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
