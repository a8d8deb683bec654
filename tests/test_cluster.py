"""Ranking on a local Ray cluster (2 CPU workers, the tiny network): the same rows as one process; a worker killed
mid-run loses and duplicates nothing; the driver killed and rerun resumes."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import FEWEST_SETTINGS

from ntkscore import Scorer, ScoreSettings
from ntkscore.study.rank import finished, rank, select_archs

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

SETTINGS = ScoreSettings(**FEWEST_SETTINGS)
CELLS = select_archs(sample=16, seed=3)
VOLATILE = ("seconds",)


def table(path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns=list(VOLATILE)).sort_values("arch").reset_index(drop=True)


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "scores.csv"
    list(rank(CELLS, Scorer(SETTINGS), out))
    return table(out)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_rows_equal_the_single_process_rows(tmp_path, cluster, single_process):
    from ntkscore.study.cluster import rank_on_ray

    out = tmp_path / "ray.csv"
    new = [r for r in rank_on_ray(CELLS, SETTINGS, out, chunk_size=3) if r is not None]
    assert len(new) == len(CELLS)
    pd.testing.assert_frame_equal(table(out), single_process, check_exact=False, rtol=1e-6)
    assert list(rank_on_ray(CELLS, SETTINGS, out)) == [None] * len(CELLS)  # resumed: nothing left to score


def _chunk_workers():
    found = []
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        text = " ".join([p.info["name"] or ""] + (p.info["cmdline"] or []))
        if "score_chunk" in text and p.info["pid"] != os.getpid():
            found.append(p.info["pid"])
    return found


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(tmp_path, cluster, single_process):
    from ntkscore.study.cluster import rank_on_ray

    out = tmp_path / "ray.csv"
    results = rank_on_ray(CELLS, SETTINGS, out, chunk_size=4, max_retries=3)
    first = next(results)  # one row written; both chunks are running
    workers = _chunk_workers()
    assert first is not None and workers, "no worker was running a chunk to kill"
    os.kill(workers[0], signal.SIGKILL)
    rest = [r for r in results if r is not None]
    got = table(out)
    assert len(rest) == len(CELLS) - 1 and not got["arch"].duplicated().any()
    pd.testing.assert_frame_equal(got, single_process, check_exact=False, rtol=1e-6)


def test_the_driver_killed_and_rerun_resumes(tmp_path, single_process):
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(a.to_string() for a in CELLS) + "\n")
    out = tmp_path / "scores.csv"
    command = [sys.executable, "-m", "ntkscore.cli", "rank", "--ray", "--workers", "2", "--chunk-size", "2",
               "--archs", str(archs), "--out", str(out), "--channels", "4", "--cells-per-stage", "1",
               "--input-size", "8", "--inputs", "random", "--batch-size", "4", "--steps", "1", "--kernels", "robust",
               "--no-proxies", "--no-family", "--proxy-batch-size", "8"]  # FEWEST_SETTINGS
    # the session's compilation cache: single_process stored these programs, and each Ray worker loads them (with
    # 16 cells in chunks of 2, the driver is killed after the first chunk's rows, seven chunks before the end)
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 2):
        time.sleep(0.02)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local cluster it started
    driver.wait()
    written = len(finished(out)[1])
    assert 1 <= written < len(CELLS), written
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(CELLS) - written} new cells scored" in done.stdout
    got = table(out)
    assert not got["arch"].duplicated().any()
    pd.testing.assert_frame_equal(got, single_process, check_exact=False, rtol=1e-6)
