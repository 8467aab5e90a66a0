"""Datasets as in-memory tensors: ``load(spec)`` -> :class:`Dataset`.

Specs:

- ``ring``, ``grid``, ``moons``, ``spirals``, ``checkerboard``: embedded 2-D distributions with
  known densities (20,000 train and 5,000 test points drawn with the data seed);
- ``digits``: scikit-learn's 8x8 digits, a stratified 75/25 split (1,347 / 450) fixed by the seed;
- ``names``, ``first-names``: the census surnames (88,799) and first names (5,163) as text
  (:mod:`genlab.data.text`), a seeded 90/10 split;
- a path: ``.npy`` (``(N, D)``, ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``), ``.npz``
  (keys ``x``/``y``, or ``x_train``/``y_train``/``x_test``/``y_test`` which are used as given),
  a folder of PNG/JPEG images (one sub-folder per class gives labels), or MNIST IDX files
  (one ``*-images-*`` file, or a folder with the train and t10k files), gzipped or not;
  a ``.txt`` file: text, one item per line (:func:`load_text` also cuts running text into
  windows).
  Data without a split gets a seeded 80/20 split, stratified by label when there are labels.

Unsigned 8-bit data is 256-level data on 0..255, unsigned 16-bit data (16-bit PNGs) 65,536-level
data on 0..65535; other integer data has ``max - min + 1`` levels; floating-point data is
continuous. Values keep the units of the source. Training happens in float32, so data that
float32 cannot hold as it is (integers beyond 2**24, values beyond :data:`MAX_ABS_VALUE`) is
refused with the reason, rather than rounded. A path is recorded as an absolute path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from genlab.data.dataset import DataInfo, Dataset, dequantize, validate_array
from genlab.data.digits import read_digits
from genlab.data.files import RawData, read_path, to_examples
from genlab.data.splits import batch_indices, chunks, split_indices
from genlab.data.text import census_names, read_lines, text_dataset
from genlab.data.toy import TOY_DISTRIBUTIONS, ToyDistribution
from genlab.errors import DataError

__all__ = [
    "DATASETS",
    "DataInfo",
    "Dataset",
    "batch_indices",
    "chunks",
    "dequantize",
    "describe",
    "load",
    "load_text",
    "toy_distribution",
]

TOY_TRAIN, TOY_TEST = 20_000, 5_000
# float32 holds every integer up to 2**24 exactly, and values up to 3.4e38; data is kept eight
# decades below that, so that the models' arithmetic (samples, residuals, sums) stays finite.
MAX_EXACT_INTEGER = 2**24
MAX_ABS_VALUE = 1e30
DIGITS_TEST_FRACTION = 0.25
FILE_TEST_FRACTION = 0.2
NAMES_TEST_FRACTION = 0.1

DATASETS: dict[str, str] = {
    "ring": "8 Gaussians on the unit circle, std 0.01 (mode-collapse benchmark)",
    "grid": "25 Gaussians on {-4,-2,0,2,4}^2, std 0.05 (mode-collapse benchmark)",
    "moons": "two interleaved half circles, noise 0.05",
    "spirals": "two spiral arms, noise 0.1",
    "checkerboard": "uniform on the dark squares of a 4x4 board on [-2,2]^2",
    "digits": "scikit-learn's 8x8 handwritten digits, 1,797 images, 17 levels, 10 classes",
    "names": "text: the 88,799 surnames of the 1990 US census, lower case, one item each",
    "first-names": "text: the 5,163 distinct first names of the 1990 US census",
}


def describe() -> list[tuple[str, str]]:
    """(name, description) of every embedded dataset, for ``genlab datasets``."""
    return list(DATASETS.items())


def toy_distribution(name: str) -> ToyDistribution:
    """The true distribution behind an embedded 2-D dataset."""
    if name not in TOY_DISTRIBUTIONS:
        raise DataError(
            f"{name!r} is not an embedded 2-D distribution ({', '.join(TOY_DISTRIBUTIONS)})"
        )
    return TOY_DISTRIBUTIONS[name]()


def load(spec: str, *, seed: int = 0) -> Dataset:
    """Load a dataset by name or path (see the module docstring); ``seed`` fixes draws and splits."""
    if spec in TOY_DISTRIBUTIONS:
        return _load_toy(spec, seed)
    if spec == "digits":
        return _load_digits(seed)
    if spec in ("names", "first-names"):
        return _split_text(census_names(spec), spec, NAMES_TEST_FRACTION, seed)
    if not spec.strip():
        raise DataError("the dataset spec is empty; give an embedded name or a path (--data)")
    path = Path(os.path.abspath(Path(spec).expanduser()))
    if not os.path.lexists(path):
        raise DataError(
            f"unknown dataset {spec!r}: not an embedded dataset ({', '.join(DATASETS)}) "
            "and no such file or directory"
        )
    if path.suffix == ".txt":
        return load_text(path, seed=seed)
    return _load_file(path, seed)


def load_text(
    path: str | Path, *, seed: int = 0, units: str = "lines", window: int = 64
) -> Dataset:
    """A UTF-8 text file as a text dataset with a seeded 80/20 split.

    ``units="lines"``: one item per non-empty line, split at random; ``"windows"``: the lines
    joined as running text, the first 80% for training and the rest for test (contiguous, so
    no window straddles the two), each cut into windows of ``window`` characters.
    """
    path = Path(path).expanduser()
    lines = read_lines(path)
    if units == "windows":
        cut = int(round(len(lines) * (1 - FILE_TEST_FRACTION)))
        return text_dataset(lines[:cut], lines[cut:], str(path), units="windows", window=window)
    if units != "lines":
        raise DataError(f"text units must be lines or windows, got {units!r}")
    return _split_text(lines, str(path), FILE_TEST_FRACTION, seed)


def _split_text(items: list[str], name: str, test_fraction: float, seed: int) -> Dataset:
    train, test = split_indices(len(items), test_fraction, seed)
    return text_dataset([items[i] for i in train], [items[i] for i in test], name)


def _load_toy(name: str, seed: int) -> Dataset:
    dist = toy_distribution(name)
    generator = torch.Generator().manual_seed(seed)
    x_train = dist.sample(TOY_TRAIN, generator)
    x_test = dist.sample(TOY_TEST, generator)
    centres = dist.mode_centres
    info = DataInfo(
        name=name,
        event_shape=(2,),
        kind="vector",
        value_range=(float(x_train.min()), float(x_train.max())),
        mode_centres=None if centres is None else tuple(map(tuple, centres.tolist())),
        mode_std=dist.mode_std,
        has_density=True,
    )
    return Dataset(x_train, x_test, info, true_log_prob=dist.log_prob)


def _load_digits(seed: int) -> Dataset:
    images, labels = read_digits()
    x, y = torch.from_numpy(images).float(), torch.from_numpy(labels).long()
    train, test = split_indices(len(x), DIGITS_TEST_FRACTION, seed, y)
    info = DataInfo(
        name="digits",
        event_shape=(1, 8, 8),
        kind="image",
        levels=17,
        value_range=(0.0, 16.0),
        n_classes=10,
    )
    return Dataset(x[train], x[test], info, y[train], y[test])


def _load_file(path: Path, seed: int) -> Dataset:
    raw = read_path(path)
    source = str(path)
    x_train, kind = to_examples(raw.x, source, channels_last=raw.channels_last)
    if raw.x_test is not None:
        x_test, test_kind = to_examples(raw.x_test, f"{source} (x_test)")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DataError(
                f"{source}: train examples have shape {x_train.shape[1:]} but test examples "
                f"{x_test.shape[1:]}"
            )
    y_train, y_test, n_classes = _labels(raw, len(x_train), source)
    levels, value_range = _levels(
        x_train if raw.x_test is None else np.concatenate([x_train, x_test]), source
    )
    x_train_t = _as_float32(x_train, source)
    if raw.x_test is None:
        train, test = split_indices(len(x_train_t), FILE_TEST_FRACTION, seed, y_train)
        x_test_t = x_train_t[test]
        x_train_t = x_train_t[train]
        if y_train is not None:
            y_train, y_test = y_train[train], y_train[test]
    else:
        x_test_t = _as_float32(x_test, f"{source} (x_test)")
    info = DataInfo(
        name=source,
        event_shape=tuple(x_train_t.shape[1:]),
        kind=kind,
        levels=levels,
        value_range=value_range,
        n_classes=n_classes,
    )
    return Dataset(x_train_t, x_test_t, info, y_train, y_test)


def _as_float32(x: np.ndarray, source: str) -> torch.Tensor:
    """``x`` as a float32 tensor, checked (empty, NaN/inf, values float32 cannot hold)."""
    if x.size and x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            largest = float(np.nanmax(np.abs(x))) if not np.isnan(x).all() else 0.0
        if MAX_ABS_VALUE < largest < np.inf:  # NaN and inf: validate_array names them
            raise DataError(
                f"{source}: values as large as {largest:.3g}; genlab trains in float32 and "
                f"needs |x| <= {MAX_ABS_VALUE:.0e} (so that its arithmetic stays finite): rescale "
                "the data"
            )
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    validate_array(tensor, source)
    return tensor


def _levels(x: np.ndarray, source: str) -> tuple[int | None, tuple[float, float]]:
    """Number of discrete levels and value range implied by the dtype (see module docstring)."""
    if x.dtype == np.uint8:
        return 256, (0.0, 255.0)
    if x.dtype == np.uint16:
        return 65536, (0.0, 65535.0)
    if x.dtype == np.bool_:
        return 2, (0.0, 1.0)
    if x.size == 0:
        return None, (0.0, 1.0)
    if x.dtype.kind in "iu":
        low, high = int(x.min()), int(x.max())
        if max(abs(low), abs(high)) > MAX_EXACT_INTEGER:
            raise DataError(
                f"{source}: {x.dtype} values from {low} to {high}; float32 (what genlab trains "
                f"in) holds integers exactly only up to {MAX_EXACT_INTEGER:,}: shift and scale "
                "the data, or save it as floating point if it is continuous"
            )
        return max(high - low + 1, 2), (float(low), float(max(high, low + 1)))
    return None, (float(x.min()), float(x.max()))


def _labels(
    raw: RawData, n_train: int, source: str
) -> tuple[torch.Tensor | None, torch.Tensor | None, int | None]:
    """Labels as int64 class indices 0..C-1 (shared mapping between train and test)."""
    if raw.y is None:
        return None, None, None
    parts = [raw.y] + ([raw.y_test] if raw.y_test is not None else [])
    for part, name in zip(parts, ("labels", "test labels"), strict=False):
        if part.ndim != 1 or part.dtype.kind not in "biu":
            raise DataError(
                f"{source}: {name} must be a 1-D integer array, got {part.dtype} {part.shape}"
            )
    if len(raw.y) != n_train:
        raise DataError(f"{source}: {n_train} examples but {len(raw.y)} labels")
    if raw.x_test is not None and raw.y_test is not None and len(raw.y_test) != len(raw.x_test):
        raise DataError(
            f"{source}: {len(raw.x_test)} test examples but {len(raw.y_test)} test labels"
        )
    classes, codes = np.unique(np.concatenate(parts), return_inverse=True)
    y_train = torch.from_numpy(codes[:n_train]).long()
    y_test = torch.from_numpy(codes[n_train:]).long() if raw.y_test is not None else None
    return y_train, y_test, len(classes)
