"""Readers for user data files: ``.npy``, ``.npz``, image folders and MNIST IDX files.

Every reader returns raw arrays (examples first) and optional labels; :func:`to_examples`
then brings them to genlab's layout: ``(N, D)`` vectors or ``(N, C, H, W)`` images.
Each failure raises :class:`~genlab.errors.DataError` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass
class RawData:
    """Arrays as read from disk; ``x_test is None`` when the file carries no split."""

    x: np.ndarray
    y: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


def is_idx_file(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return name.endswith(".idx") or name.endswith("-ubyte") or ".idx" in name


def read_path(path: Path) -> RawData:
    """Dispatch on what ``path`` is: an array file, an IDX file, or a folder."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        if any(is_idx_file(p) for p in path.iterdir()):
            return read_idx_folder(path)
        return read_image_folder(path)
    if path.suffix == ".npy":
        return RawData(read_npy(path))
    if path.suffix == ".npz":
        return read_npz(path)
    if is_idx_file(path):
        return read_idx_pair(path)
    raise DataError(
        f"{path}: unsupported file type {path.suffix!r}; genlab reads .npy, .npz, IDX files "
        "(.idx, -ubyte, optionally .gz) and folders of PNG/JPEG images"
    )


def read_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            raise DataError(f"{path}: not a readable .npy file (no NumPy header)")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                f"{path}: holds Python objects (a ragged or object array); genlab needs a "
                "numeric array of equally shaped examples and never unpickles"
            ) from None
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    return array


def read_npz(path: Path) -> RawData:
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            return _npz_arrays(path, archive)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None


def _npz_arrays(path: Path, archive: np.lib.npyio.NpzFile) -> RawData:
    keys = set(archive.files)

    def get(key: str) -> np.ndarray | None:
        if key not in keys:
            return None
        try:
            return archive[key]
        except ValueError:
            raise DataError(
                f"{path}: array {key!r} holds Python objects (ragged?); genlab never unpickles"
            ) from None
        except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise DataError(f"{path}: array {key!r} is unreadable ({exc})") from None

    if "x_train" in keys:
        if "x_test" not in keys:
            raise DataError(f"{path}: has 'x_train' but no 'x_test'")
        return RawData(get("x_train"), get("y_train"), get("x_test"), get("y_test"))
    if "x" in keys:
        return RawData(get("x"), get("y"))
    raise DataError(
        f"{path}: no data key; expected 'x' (and optional 'y') or 'x_train'/'x_test' "
        f"(and optional 'y_train'/'y_test'), found {sorted(keys)}"
    )


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not.

    Layout: two zero bytes, a dtype code, the number of dimensions ``n``, then ``n`` big-endian
    uint32 sizes and the data.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: unreadable IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(
            f"{path}: wrong IDX magic number {raw[:4].hex() or '(empty file)'}; expected "
            "0000 followed by a type code (08 uint8 ... 0e float64) and the number of dimensions"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header promises shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes of data (truncated or corrupt)"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _labels_sibling(path: Path) -> Path | None:
    """``train-images-idx3-ubyte`` -> ``train-labels-idx1-ubyte`` (same folder), if it exists."""
    name = path.name
    if "images" not in name:
        return None
    candidate = path.with_name(name.replace("images", "labels").replace("idx3", "idx1"))
    return candidate if candidate.exists() else None


def read_idx_pair(path: Path) -> RawData:
    x = read_idx(path)
    labels_path = _labels_sibling(path)
    return RawData(x, read_idx(labels_path) if labels_path else None)


def read_idx_folder(folder: Path) -> RawData:
    """A folder with MNIST's four files: ``train-images``/``t10k-images`` and their labels."""
    images = sorted(p for p in folder.iterdir() if is_idx_file(p) and "images" in p.name)
    train = [p for p in images if p.name.startswith("train")]
    test = [p for p in images if p.name.startswith(("t10k", "test"))]
    if len(train) == 1 and len(test) == 1:
        a, b = read_idx_pair(train[0]), read_idx_pair(test[0])
        return RawData(a.x, a.y, b.x, b.y)
    if len(images) == 1:
        return read_idx_pair(images[0])
    raise DataError(
        f"{folder}: expected IDX image files named train-images-*/t10k-images-* "
        f"(found {[p.name for p in images] or 'none'})"
    )


def read_image_folder(folder: Path) -> RawData:
    """PNG/JPEG images; one sub-folder per class gives labels (sorted folder names = classes 0..)."""
    from PIL import Image, UnidentifiedImageError

    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    groups = [(i, sub) for i, sub in enumerate(subfolders)] if subfolders else [(None, folder)]
    files: list[tuple[int | None, Path]] = []
    for label, sub in groups:
        for path in sorted(sub.iterdir()):
            if path.name.startswith(".") or path.is_dir():
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(
                    f"{path}: not an image file (image folders may hold only "
                    f"{', '.join(IMAGE_SUFFIXES)} files{' in class sub-folders' if subfolders else ''})"
                )
            files.append((label, path))
    if not files:
        raise DataError(f"{folder}: the image folder holds no images")
    images = []
    for _, path in files:
        try:
            with Image.open(path) as image:
                image.load()
                images.append(image.copy())
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(f"{path}: unreadable image ({exc})") from None
    mode = "L" if all(im.mode in ("L", "1") for im in images) else "RGB"
    arrays = [np.asarray(im.convert(mode)) for im in images]
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        first = files[0][1]
        odd = next(
            p for (_, p), a in zip(files, arrays, strict=True) if a.shape != arrays[0].shape
        )
        raise DataError(
            f"{folder}: images differ in size ({first.name}: {arrays[0].shape}, "
            f"{odd.name}: {next(a.shape for a in arrays if a.shape != arrays[0].shape)}); "
            "resize them to one size first"
        )
    x = np.stack(arrays)
    y = np.array([label for label, _ in files]) if subfolders else None
    return RawData(x, y)


def to_examples(x: np.ndarray, source: str) -> tuple[np.ndarray, str]:
    """Bring an array to ``(N, D)`` (kind ``"vector"``) or ``(N, C, H, W)`` (kind ``"image"``).

    ``(N, H, W)`` gains a channel axis. For 4-D arrays the channel axis is axis 1 or axis 3,
    whichever has at most 4 entries; when both do, the smaller one (ties: axis 1, torch's layout).
    """
    if x.dtype == object or x.dtype.kind not in "biuf":
        raise DataError(f"{source}: dtype {x.dtype} is not numeric")
    if x.ndim == 2:
        return x, "vector"
    if x.ndim == 3:
        return x[:, None], "image"
    if x.ndim == 4:
        first, last = x.shape[1], x.shape[3]
        if last <= 4 and (first > 4 or last < first):
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "image"
        if first <= 4:
            return x, "image"
        raise DataError(
            f"{source}: 4-D array of shape {x.shape} has no channel axis of size <= 4 "
            "(expected (N, C, H, W) or (N, H, W, C))"
        )
    raise DataError(
        f"{source}: array of rank {x.ndim} (shape {x.shape}); expected (N, D), (N, H, W), "
        "(N, H, W, C) or (N, C, H, W)"
    )
