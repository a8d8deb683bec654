"""Rank on many processes, GPUs and machines with Ray, into the same resumable CSV as :func:`ntkscore.study.rank.rank`.

The cells still to score (those not yet in ``out``) are cut into chunks of ``chunk_size``; each chunk is one Ray task
that builds a :class:`~ntkscore.Scorer` for the settings (once per worker process and settings) and *streams* its
cells' scores back one by one. The driver appends each row to ``out`` as it arrives — one flushed, ``fsync``-ed line,
exactly as a single-process run does — so ``correlate`` and a later resume read the file as they always do.

Faults:

* a worker that dies mid-chunk (killed, out of memory, its machine gone): Ray runs the chunk again on another worker
  (``max_retries`` times); rows of that chunk already written are recognised by their cell and not written twice;
* the driver killed: every row it wrote is complete on disk; rerunning the same command resumes where it stopped.

Every worker builds the same initialisation, batch and attack noise from the same seed, so a cell's row does not
depend on which worker scored it (on one kind of device; a GPU's kernels differ from a CPU's in float32 rounding).
Ray is an optional dependency: ``pip install 'ntkscore[ray]'``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

from ..cell.space import Arch
from ..scores.result import Score
from ..scores.settings import ScoreSettings
from .rank import append_row, open_output, result_row

INSTALL_HINT = "ranking with Ray needs the 'ray' package: pip install 'ntkscore[ray]'"


class RayUnavailable(ImportError):
    """Ray is not installed."""


class ClusterError(RuntimeError):
    """A chunk of cells failed on the cluster after its retries (the rows written so far are kept)."""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(INSTALL_HINT) from None
    return ray


@lru_cache(maxsize=4)
def _scorer(settings: ScoreSettings, data_dir: str | None, images: str | None):
    """One :class:`~ntkscore.Scorer` per worker process and settings (its compiled programs are reused by every
    chunk the process scores)."""
    from ..scores.scorer import Scorer

    return Scorer(settings, data_dir=data_dir, images=images, arch_batch=1)


def score_chunk(settings: ScoreSettings, data_dir: str | None, images: str | None,
                archs: Sequence[str]) -> Iterator[tuple[Score, str]]:
    """The body of a Ray task: ``(score, device kind)`` of each cell of ``archs``, one at a time."""
    import jax

    scorer = _scorer(settings, data_dir, images)
    device = jax.devices()[0].device_kind
    for arch in archs:
        yield scorer(arch), device


def chunks(archs: Sequence[Arch], size: int) -> list[list[str]]:
    """``archs`` as strings, cut into consecutive chunks of ``size`` (the last may be shorter)."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"chunk_size must be a positive int (cells per Ray task), got {size!r}")
    strings = [a.to_string() for a in archs]
    return [strings[i:i + size] for i in range(0, len(strings), size)]


def rank_on_ray(archs: Sequence[Arch], settings: ScoreSettings, out: str | os.PathLike, *, address: str | None = None,
                workers: int | None = None, chunk_size: int = 4, gpus_per_worker: float = 0.0,
                data_dir: str | os.PathLike | None = None, images: str | os.PathLike | None = None,
                resume: bool = True, max_retries: int = 5) -> Iterator[Score | None]:
    """Score ``archs`` on a Ray cluster and append each row to ``out``; yields each new :class:`Score` as its row is
    written, and ``None`` for each cell already in ``out`` (so that a progress bar can count them).

    ``address`` is a running cluster's (``"HOST:6379"``, or ``"auto"`` on one of its nodes); ``None`` starts a local
    cluster of ``workers`` processes (default: the CPU count) and stops it at the end. With the process already
    connected to Ray (``ray.init`` called), that cluster is used. ``gpus_per_worker`` (e.g. 1) gives each task a GPU.
    """
    ray = _import_ray()
    if gpus_per_worker < 0:
        raise ValueError(f"gpus_per_worker must be ≥ 0, got {gpus_per_worker}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    header, done = open_output(out, vars(settings), resume)
    out = Path(out)
    pending = []
    for arch in archs:
        if arch.to_string() in done:
            yield None
        else:
            pending.append(arch)
    if not pending:
        return
    started = not ray.is_initialized()
    if started:
        if address is None:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(score_chunk).options(num_returns="streaming", num_cpus=1, num_gpus=gpus_per_worker,
                                                max_retries=max_retries, retry_exceptions=False)
        data = None if data_dir is None else str(data_dir)
        image_file = None if images is None else str(images)
        live = [task.remote(settings, data, image_file, chunk) for chunk in chunks(pending, chunk_size)]
        while live:
            ready, _ = ray.wait(live, num_returns=1)
            for generator in ready:
                try:
                    ref = next(generator)
                except StopIteration:
                    live.remove(generator)
                    continue
                try:
                    result, device = ray.get(ref)
                except ray.exceptions.RayError as err:
                    raise ClusterError(f"a chunk of cells failed on the cluster after {max_retries} retries; the "
                                       f"{len(done)} rows in {out} are kept and rerunning resumes: "
                                       f"{type(err).__name__}: {str(err).splitlines()[0]}") from None
                if result.arch in done:  # a chunk run again after its worker died: this row is already written
                    continue
                header = append_row(out, header, result_row(result, device))
                done.add(result.arch)
                yield result
    finally:
        if started:
            ray.shutdown()
