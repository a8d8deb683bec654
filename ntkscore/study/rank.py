"""Score many cells into an append-only CSV that survives being killed at any moment.

Each result is appended as one complete line, flushed and ``fsync``-ed, as soon as it exists. On restart
(``resume=True``) a torn last line — the only damage a SIGKILL can do — is cut off, the cells already in the file
are skipped, and scoring continues: no row is lost and none is written twice. CSV rather than Parquet because it
can be appended one row at a time and read back by pandas even while a run is still writing it.

Each row holds the cell, every metric, the flags, the seconds it took, every :class:`~ntkscore.ScoreSettings`
field (``setting.*``), the package version and the device kind; a resumed run refuses a file written with other settings.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import jax
import numpy as np
import pandas as pd

from .. import __version__
from ..cell.space import Arch, as_arch, unique_archs
from ..scores.predictor import LEGACY_SETTINGS
from ..scores.result import Score

VERSION_COLUMN = "ntkscore_version"
DEVICE_COLUMN = "device"
IGNORED_ON_RESUME = ("logit_chunk",)
"""Settings that change no stored value (how many logits the Jacobian engine takes per step), so a resumed run may
differ in them."""


def select_archs(sample: int | None = None, seed: int = 0, archs: Iterable[str | Arch] | None = None) -> list[Arch]:
    """The cells to score: ``archs`` if given, else the 6466 isomorphism-class representatives, or a seeded sample
    of ``sample`` of them: the first ``sample`` of a permutation by ``numpy.random.default_rng(seed)``, so that
    samples of one seed nest (the first 20 of ``sample=60`` are ``sample=20``)."""
    if archs is not None:
        chosen = [as_arch(a) for a in archs]
    else:
        chosen = unique_archs()
        if sample is not None:
            if not 1 <= sample <= len(chosen):
                raise ValueError(f"--sample must be in 1..{len(chosen)}, got {sample}")
            idx = np.random.default_rng(seed).permutation(len(chosen))[:sample]
            chosen = [chosen[i] for i in idx]
    seen, unique = set(), []
    for a in chosen:
        if a not in seen:
            seen.add(a)
            unique.append(a)
    return unique


def read_arch_file(path: str | os.PathLike) -> list[Arch]:
    """One NB201 string per line (blank lines and ``#`` comments ignored); errors name the line."""
    out = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                out.append(as_arch(line))
            except ValueError as err:
                raise ValueError(f"{path}:{number}: {err}") from None
    if not out:
        raise ValueError(f"{path} lists no architectures")
    return out


def _repair(path: Path) -> None:
    """Cut a torn (newline-less) last line left by a kill in the middle of a write."""
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def _legacy(key: str) -> str | None:
    """What a file written before ``key`` was recorded holds for it (``None``: not known)."""
    return str(LEGACY_SETTINGS[key]) if key in LEGACY_SETTINGS else None


def finished(path: str | os.PathLike, settings: dict | None = None) -> tuple[list[str], set[str]]:
    """Header and the arch strings already in ``path`` (after repairing a torn last line).

    With ``settings``, raise ``ValueError`` if the file's rows were produced with different ones or by another
    version of ntkscore (whose values, and columns, may differ).
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return [], set()
    _repair(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if "arch" not in header:
            raise ValueError(f"{path} is not an ntkscore result file (no 'arch' column)")
        done = set()
        for row in reader:
            if settings is not None and not done:
                for key, value in settings.items():
                    if key in IGNORED_ON_RESUME:
                        continue
                    stored = row.get(f"setting.{key}", _legacy(key))
                    if stored is not None and stored != ("" if value is None else str(value)):
                        raise ValueError(f"{path} was produced with {_shown(key, stored)}, this run has "
                                         f"{_shown(key, value)}; use another output file (--out) or the same settings")
                version = row.get(VERSION_COLUMN)
                if version and version != __version__:  # other score values, maybe other columns
                    raise ValueError(f"{path} was produced by ntkscore {version}, this is {__version__}; "
                                     "use another --out file")
            done.add(row["arch"])
    return header, done


def _shown(key: str, value) -> str:
    """``key=value`` as a user sets it: the attack's radius and step in /255 pixel units (as the CLI's flags)."""
    if key in ("eps", "step_size") and value not in (None, ""):
        return f"{key}={float(value) * 255:g}/255"
    return f"{key}={value}"


def _line(header: Sequence[str], row: dict) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([row.get(col, "") for col in header])
    return buf.getvalue()


def rank(archs: Sequence[Arch], score_fn: Callable[[Arch], Score], out: str | os.PathLike,
         resume: bool = True) -> Iterator[Score | None]:
    """Score ``archs`` with ``score_fn`` and append each row to ``out``; yields each new :class:`Score`.

    With ``resume`` (default) cells already in ``out``, and repeats of a cell in ``archs``, are skipped (one ``None``
    is yielded for each, so that a progress bar can count them); without it an existing ``out`` is an error. A ``score_fn`` with an ``arch_batch``
    above 1 and a ``score_many`` method (a :class:`~ntkscore.Scorer` on an accelerator) gets the pending cells
    that many at a time; each row is still written as soon as its step ends.
    """
    settings = getattr(score_fn, "settings", None)
    header, done = open_output(out, None if settings is None else vars(settings), resume)
    out = Path(out)
    step = getattr(score_fn, "arch_batch", 1)
    device = jax.devices()[0].device_kind
    pending: list[Arch] = []

    def flush() -> Iterator[Score]:
        nonlocal header
        results = score_fn.score_many(pending) if step > 1 else [score_fn(a) for a in pending]
        pending.clear()
        for result in results:
            header = append_row(out, header, result_row(result, device))
            done.add(result.arch)
            yield result

    queued: set[str] = set()
    for arch in archs:
        key = arch.to_string()
        if key in done or key in queued:  # scored already, or listed twice: one row per cell
            yield None
            continue
        queued.add(key)
        pending.append(arch)
        if len(pending) >= step:
            yield from flush()
    if pending:
        yield from flush()


def open_output(out: str | os.PathLike, settings: dict | None, resume: bool) -> tuple[list[str], set[str]]:
    """Make ``out``'s folder and return its header and finished cells (:func:`finished`); an existing non-empty
    ``out`` without ``resume`` is an error."""
    out = Path(out)
    if out.exists() and out.stat().st_size and not resume:
        raise FileExistsError(f"{out} exists; resume it (--resume, or resume=True in Python) or choose another file")
    out.parent.mkdir(parents=True, exist_ok=True)
    return finished(out, settings)


def result_row(result: Score, device: str) -> dict:
    """The CSV row of ``result``: :meth:`Score.to_dict` with the package version and the device kind."""
    return {**result.to_dict(), VERSION_COLUMN: __version__, DEVICE_COLUMN: device}


def append_row(out: Path, header: list[str], row: dict) -> list[str]:
    """Append ``row`` as one flushed, fsync-ed line (the header first if the file is new); returns the header."""
    with open(out, "a", newline="") as f:
        if not header:
            header = list(row)
            f.write(_line(header, dict(zip(header, header))))
        f.write(_line(header, row))
        f.flush()
        os.fsync(f.fileno())
    return header


def expand_to_all(scores, index_to_arch: dict[int, str]):
    """Rows for all NB201 indices: each index takes the row of the scored cell in its isomorphism class.

    ``scores`` is a DataFrame with an ``arch`` column; ``index_to_arch`` maps NB201 index → arch string (from
    :func:`ntkscore.study.benchmarks.load_meta`). Indices whose class was not scored are left out.
    """
    import pandas as pd

    by_key = {Arch.from_string(a).canonical_string(): i for i, a in enumerate(scores["arch"])}
    rows, indices = [], []
    for index, arch in sorted(index_to_arch.items()):
        hit = by_key.get(Arch.from_string(arch).canonical_string())
        if hit is not None:
            rows.append(hit)
            indices.append(index)
    out = scores.iloc[rows].reset_index(drop=True)
    out.insert(0, "arch_index", indices)
    out.insert(1, "arch_str", [index_to_arch[i] for i in indices])
    return pd.DataFrame(out)


def pareto_front(objectives) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``objectives`` (cells × objectives, larger = better): a cell is on
    the front when no other cell is at least as good in every objective and better in one. A row with a NaN
    objective is never on it. ``pareto_front(table[["value", "robustness"]])`` is the trade-off between predicted
    robust accuracy and the NTK's robustness prediction."""
    v = np.asarray(objectives, np.float64)
    if v.ndim != 2:
        raise ValueError(f"objectives must be a (cells, objectives) array, got shape {v.shape}")
    valid = np.isfinite(v).all(axis=1)
    front = valid.copy()
    for i in np.flatnonzero(valid):
        others = v[valid]
        dominated = np.any(np.all(others >= v[i], axis=1) & np.any(others > v[i], axis=1))
        front[i] = not dominated
    return front


RENAMED = {"0.6.0": {"lga": "cka"}, "0.7.0": {"flops": "multiply_adds", "tenas_condition": "tenas_condition_all"}}
"""Quantities renamed in a version: before 0.6.0, ``<kernel>.lga`` (and ``<kernel>.layers.lga``) held the CKA;
before 0.7.0, ``flops`` held what is now ``multiply_adds`` (:func:`ntkscore.cell.cost.multiply_adds`) and
``<kernel>.tenas_condition`` the condition number over every parameter (``tenas_condition_all``)."""


def _version(text) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(text).split(".")[:3])
    except ValueError:
        return (0,)


def upgrade_columns(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``table`` with the columns of quantities renamed since the version that wrote it (:data:`RENAMED`, read from
    its ``ntkscore_version`` column) under their current names, and a note per rename; a table of this version
    comes back as it is."""
    if VERSION_COLUMN not in table.columns or table[VERSION_COLUMN].isna().all():
        return table, []
    written = max(_version(v) for v in table[VERSION_COLUMN].dropna().unique())
    notes = []
    for version, renames in RENAMED.items():
        if written >= _version(version):
            continue
        for old, new in renames.items():
            columns = {c: c[: -len(old)] + new for c in table.columns if c == old or c.endswith(f".{old}")}
            if columns:
                table = table.rename(columns=columns)
                notes.append(f"columns {old}, *.{old} read as {new}, *.{new} (written by ntkscore {'.'.join(map(str, written))}, "
                             f"where {old} named what {version} calls {new})")
    return table, notes


def read_scores(path) -> pd.DataFrame:
    """The score table at ``path`` (a file written by :func:`rank`, gzipped or not, by any version) as it is, with
    the columns renamed since it was written under their current names (:func:`upgrade_columns`)."""
    return upgrade_columns(pd.read_csv(path))[0]


def read_rank_table(path) -> tuple[pd.DataFrame, list[str]]:
    """A rank file read for analysis, repaired or refused: a torn last row (a run killed mid-write) and repeated
    cells are dropped, and columns renamed since the file was written are read under their current names
    (:func:`upgrade_columns`), each with a note (the second value); rows scored with different settings, and metric columns
    holding non-numbers, are refused naming the column."""
    from ..scores.predictor import table_settings

    try:
        text = Path(path).read_text()
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(f"rank file {path} does not exist") from None
    if not text.strip():
        raise ValueError(f"{path} is empty; expected a file written by 'ntkscore rank'")
    torn = not text.endswith("\n") and text.count("\n") >= 1
    if torn:
        text = text[: text.rfind("\n") + 1]
    table = pd.read_csv(io.StringIO(text))
    if "arch" not in table.columns:
        raise ValueError(f"{path} has no 'arch' column; expected a file written by 'ntkscore rank'")
    repeated = int(table["arch"].duplicated().sum())
    table = table.drop_duplicates("arch", keep="first").reset_index(drop=True)
    table, renamed = upgrade_columns(table)
    notes = (["a torn last row dropped (a run cut mid-write)"] if torn else []) + \
        ([f"{repeated} repeated cells dropped"] if repeated else []) + renamed
    if any(c.startswith("setting.") for c in table.columns):
        table_settings(table)  # refuses rows scored with different settings
    text_columns = [c for c in table.columns if c not in ("arch", "flags", "device", "ntkscore_version")
                    and not c.startswith("setting.") and not pd.api.types.is_numeric_dtype(table[c])
                    and table[c].notna().any()]
    if text_columns:
        c = text_columns[0]
        bad = table[c][pd.to_numeric(table[c], errors="coerce").isna() & table[c].notna()].iloc[0]
        raise ValueError(f"{path}: column {c!r} holds a non-number ({bad!r}); a rank file's metrics are numbers")
    return table, notes
