"""Output paths checked before any work is done, so that a long run never ends on an output it cannot write."""

from __future__ import annotations

import tempfile
from pathlib import Path


def writable(path, what: str, folder: bool = False) -> Path:
    """``path`` if a file (or, with ``folder``, a folder) can be written there, else a ``ValueError`` naming the flag
    ``what``. The check writes: it makes the missing folders and a temporary file in the target folder (removed at
    once), and opens an existing file for appending without writing, so that permissions, read-only file systems
    and special folders (``/sys``) are all found out."""
    path = Path(path)
    if not folder and path.is_dir():
        raise ValueError(f"{what} {path} is a directory; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file; give a folder")
    parent = path if folder else path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".ntkscore-write-check-"):
            pass
        if not folder and path.exists():
            with open(path, "a"):
                pass
    except OSError as err:
        raise ValueError(f"{what} {path} cannot be written ({err.strerror or err})") from None
    return path
