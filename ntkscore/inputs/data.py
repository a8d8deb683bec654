"""Image batches: ``.npz`` loading, dataset constants, seeded class-balanced sampling, random-input fallback.

Images are kept as uint8 NHWC on disk and handed to networks as float32 in [0, 1]; per-channel normalisation
happens *inside* the network (so attacks act in pixel space, as in the benchmark).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

DATA_ENV = "NTKSCORE_DATA"


@dataclass(frozen=True)
class DatasetInfo:
    """Normalisation constants and shape of a benchmark dataset; ``file`` is relative to the data directory."""

    name: str
    num_classes: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    file: str | None


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                           "images/cifar10_train_5000.npz"),
    "cifar100": DatasetInfo("cifar100", 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                            "images/cifar100_train.npz"),
    "ImageNet16-120": DatasetInfo("ImageNet16-120", 120, 16, (122.68 / 255, 116.66 / 255, 104.01 / 255),
                                  (63.22 / 255, 61.26 / 255, 65.09 / 255), "images/ImageNet16-120_train.npz"),
}
"""The datasets of the NB201 benchmarks, with the normalisation of xautodl's ``get_datasets`` (ImageNet16-120:
mean (122.68, 116.66, 104.01)/255, std (63.22, 61.26, 65.09)/255). Only the CIFAR-10 file ships with the development data; make the others
with :func:`npz_from_pickles` (``ntkscore data convert``) from the benchmarks' own releases."""


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}") from None


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: ``explicit``, else ``$NTKSCORE_DATA``, else ``../shared/data`` from the working dir."""
    if explicit is not None:
        path, source = Path(explicit), "--data"
    elif os.environ.get(DATA_ENV):
        path, source = Path(os.environ[DATA_ENV]), f"${DATA_ENV}"
    else:
        path, source = Path.cwd().parent / "shared" / "data", None
        if not path.is_dir():
            raise FileNotFoundError(
                f"no data directory found: looked for {path} (../shared/data from the working directory, as no "
                f"--data or ${DATA_ENV} was given); pass --data DIR or set ${DATA_ENV} to a folder holding "
                "images/*.npz, or use random inputs (--inputs random)"
            )
    if not path.is_dir():
        raise FileNotFoundError(f"data directory {path} (from {source}) does not exist")
    return path


def load_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``x`` (uint8, N×H×W×C) and ``y`` (integer labels, N) from an ``.npz`` file, validating both."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not an .npz archive (numpy.savez of 'x', uint8 N×H×W×C, and 'y', labels); "
                         "convert the official releases with 'ntkscore data convert'")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x", "y"} - set(archive.files)
            if missing:
                raise KeyError(f"lacks array(s) {sorted(missing)}; expected 'x' (uint8 NHWC) and 'y' (labels)")
            x, y = archive["x"], archive["y"]
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
                raise TypeError("its members are not .npy arrays")
    except KeyError as err:
        raise ValueError(f"{path} {err.args[0]}") from None
    except Exception as err:  # not a zip, truncated, pickled object arrays, a bare .npy ...
        raise ValueError(f"{path} is not a readable .npz archive of 'x' and 'y' ({type(err).__name__}: {err})") from None
    if x.dtype != np.uint8:
        raise ValueError(f"{path}: 'x' has dtype {x.dtype}; expected uint8 pixels in 0..255")
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{path}: 'x' has shape {x.shape}; expected (N, H, W, C) with C in (1, 3)")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{path}: 'y' has shape {y.shape}; expected ({x.shape[0]},) labels, one per image")
    if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ValueError(f"{path}: 'y' must hold non-negative integer labels, got dtype {y.dtype}")
    return x, y.astype(np.int64)


def to_unit_float(x: np.ndarray) -> jax.Array:
    """uint8 pixels → float32 in [0, 1]."""
    return jnp.asarray(x, jnp.float32) / 255.0


def balanced_sample(key: jax.Array, y: np.ndarray, size: int, num_classes: int) -> np.ndarray:
    """Indices of ``size`` images, as equal a share of each class as possible, drawn without replacement.

    Classes ``0..size % num_classes - 1`` get one extra image. Deterministic in ``key``.
    """
    if size < 1:
        raise ValueError(f"batch size must be positive, got {size}")
    counts = np.bincount(y, minlength=num_classes)
    per_class = [size // num_classes + (c < size % num_classes) for c in range(num_classes)]
    keys = jax.random.split(key, num_classes)
    picked = []
    for c in range(num_classes):
        if per_class[c] > counts[c]:
            raise ValueError(f"class {c} has {counts[c]} images; a balanced batch of {size} needs {per_class[c]}")
        members = np.flatnonzero(y == c)
        order = np.asarray(jax.random.permutation(keys[c], members.size))
        picked.append(members[order[: per_class[c]]])
    return np.concatenate(picked)


def load_batch(key: jax.Array, size: int, dataset: str = "cifar10", data: str | os.PathLike | None = None,
               path: str | os.PathLike | None = None) -> tuple[jax.Array, jax.Array]:
    """A seeded class-balanced batch ``(x in [0,1] float32 NHWC, y int32)`` of ``dataset``.

    ``path`` names an ``.npz`` file directly; otherwise the dataset's file under :func:`data_dir`.
    """
    info = dataset_info(dataset)
    if path is None:
        path = data_dir(data) / info.file
        if not path.is_file():
            raise FileNotFoundError(
                f"no {dataset} images: {path} does not exist. Make it from the official release with 'ntkscore data "
                f"convert {dataset} FILES... --out {path}' (x uint8 N×{info.input_size}×{info.input_size}×3, y labels "
                f"0..{info.num_classes - 1}), or score on uniform noise with --inputs random")
    x, y = load_npz(path)
    if y.max(initial=0) >= info.num_classes:
        raise ValueError(f"{path}: label {int(y.max())} out of range for {dataset} ({info.num_classes} classes)")
    try:
        idx = balanced_sample(key, y, size, info.num_classes)
    except ValueError as err:
        raise ValueError(f"{path}: {err}. A {dataset} file needs enough images of every one of its "
                         f"{info.num_classes} classes; use a larger file or --inputs random") from None
    return to_unit_float(x[idx]), jnp.asarray(y[idx], jnp.int32)


def downsample(x: jax.Array, size: int) -> jax.Array:
    """Area downsampling of NHWC images to ``size × size``: the mean of each ``k × k`` block, ``k = H / size``.

    For cheap scoring at a reduced input size (e.g. CIFAR's 32×32 → 16×16, ``k = 2``); ``k`` must be an integer.
    """
    h, w = x.shape[1], x.shape[2]
    if size < 1 or h % size or w % size or h // size != w // size:
        raise ValueError(f"cannot downsample {h}×{w} images to {size}×{size}: the size must divide both sides "
                         f"by the same integer (e.g. 32 → 16 or 8)")
    k = h // size
    return x.reshape(x.shape[0], size, k, size, k, x.shape[3]).mean(axis=(2, 4))


def random_batch(key: jax.Array, size: int, input_shape: tuple[int, int, int] = (32, 32, 3),
                 num_classes: int = 10) -> tuple[jax.Array, jax.Array]:
    """Explicit fallback: uniform [0, 1] images and balanced labels ``i mod classes`` (no data needed)."""
    if size < 1:
        raise ValueError(f"batch size must be positive, got {size}")
    x = jax.random.uniform(key, (size,) + tuple(input_shape), jnp.float32)
    return x, jnp.arange(size, dtype=jnp.int32) % num_classes


def npz_from_pickles(paths, out: str | os.PathLike, dataset: str) -> tuple[int, int]:
    """Convert the benchmarks' own pickled image batches to our ``.npz`` (``x`` uint8 NHWC, ``y`` int64).

    ``paths`` are the official CIFAR python pickles (``cifar-10-batches-py/data_batch_*``,
    ``cifar-100-python/train``: ``data`` N×3072 channel-first rows, ``labels``/``fine_labels``) or NB201's
    ImageNet16 batches (``train_data_batch_*``: ``data`` N×768 at 16×16, ``labels`` 1-based, of which the
    ImageNet16-120 subset keeps labels 1–120). Returns ``(images, classes)`` written. The pickles are the official
    releases' files: load only files you trust (pickle can run code)."""
    import pickle

    info = dataset_info(dataset)
    xs, ys = [], []
    for path in paths:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        if not isinstance(batch, dict) or "data" not in batch:
            raise ValueError(f"{path} is not a pickled image batch (a dict with 'data' and labels)")
        labels = next((batch[k] for k in ("fine_labels", "labels") if k in batch), None)
        if labels is None:
            raise ValueError(f"{path} has no 'labels' or 'fine_labels'")
        x = np.asarray(batch["data"], np.uint8)
        y = np.asarray(labels, np.int64)
        side = info.input_size
        if x.ndim != 2 or x.shape[1] != 3 * side * side or len(y) != len(x):
            raise ValueError(f"{path}: 'data' has shape {x.shape}; {dataset} expects (N, {3 * side * side}) rows of "
                             f"{side}×{side}×3 pixels, one label each")
        if dataset == "ImageNet16-120":
            keep = (y >= 1) & (y <= 120)
            x, y = x[keep], y[keep] - 1
        xs.append(x.reshape(-1, 3, side, side).transpose(0, 2, 3, 1))
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if y.min(initial=0) < 0 or y.max(initial=0) >= info.num_classes:
        raise ValueError(f"labels {y.min()}..{y.max()} are out of range for {dataset} ({info.num_classes} classes)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, x=np.ascontiguousarray(x), y=y)
    return len(x), len(np.unique(y))
