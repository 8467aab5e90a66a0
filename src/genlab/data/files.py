"""Readers for user data files: ``.npy``, ``.npz``, image folders and MNIST IDX files.

Every reader returns raw arrays (examples first) and optional labels; :func:`to_examples`
then brings them to genlab's layout: ``(N, D)`` vectors or ``(N, C, H, W)`` images.
Each failure raises :class:`~genlab.errors.DataError` naming the file and the problem.

Data is read as it is, or refused: never silently clipped, converted with loss, or skipped.

- Only regular files are read (a FIFO, a device or a socket is refused before a byte is read;
  inside a folder, so is a symbolic link that leaves the folder).
- Sizes come from headers (``.npy``, IDX) and are checked, in exact integer arithmetic, against
  the bytes the file holds and against :data:`MAX_DATA_BYTES` before anything is allocated or
  decompressed; a compressed file stops decompressing at the size its header promises.
- Images keep their channels and depth: 8-bit grey, RGB, grey + alpha and RGBA as 1-4 uint8
  channels (alpha is kept; images without alpha get an opaque one when others have it), 16-bit
  grey as uint16 (65,536 levels). 16-bit colour, CMYK and other modes are refused.
- Every image in a folder is read: an image beside class folders, or a folder inside a class
  folder, is refused rather than skipped. Hidden entries (``.name``) are ignored.
"""

from __future__ import annotations

import ast
import gzip
import math
import os
import stat
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from genlab.errors import DataError, StorageError
from genlab.io import file_kind, open_regular

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# The most bytes one data array may hold in memory (genlab keeps data as one tensor).
MAX_DATA_BYTES = 8 * 2**30
# PIL image modes -> the mode genlab reads them in, before unifying a folder.
_EIGHT_BIT = {
    "1": "L",
    "L": "L",
    "LA": "LA",
    "RGB": "RGB",
    "RGBA": "RGBA",
    "P": "RGB",
    "PA": "RGBA",
}
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")
_CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


@dataclass
class RawData:
    """Arrays as read from disk; ``x_test is None`` when the file carries no split.

    ``channels_last``: 4-D arrays are known to be ``(N, H, W, C)`` (images read from a folder),
    so :func:`to_examples` need not guess the channel axis.
    """

    x: np.ndarray
    y: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    channels_last: bool = False


def is_idx_file(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return name.endswith(".idx") or name.endswith("-ubyte") or ".idx" in name


def _open(path: Path) -> IO[bytes]:
    """:func:`genlab.io.open_regular` with data errors."""
    try:
        return open_regular(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except StorageError as exc:
        raise DataError(str(exc)) from None


def _bytes_text(n: int) -> str:
    return f"{n:,} bytes ({n / 2**30:.3g} GiB)" if n >= 2**30 else f"{n:,} bytes"


def check_size(nbytes: int, source: str, what: str) -> None:
    """Refuse an array of ``nbytes`` (exact) above :data:`MAX_DATA_BYTES`."""
    if nbytes > MAX_DATA_BYTES:
        raise DataError(
            f"{source}: {what} {_bytes_text(nbytes)}, more than genlab's limit of "
            f"{_bytes_text(MAX_DATA_BYTES)} for data held in memory (genlab.data.files."
            "MAX_DATA_BYTES); use a smaller file"
        )


def read_path(path: Path) -> RawData:
    """Dispatch on what ``path`` is: an array file, an IDX file, or a folder."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        entries = _folder_entries(path)
        if any(is_idx_file(p) for p in entries):
            return read_idx_folder(path)
        return read_image_folder(path)
    if not stat.S_ISREG(mode):
        raise DataError(f"{path}: is {file_kind(mode)}; genlab reads data from regular files")
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


def _folder_entries(folder: Path, root: Path | None = None) -> list[Path]:
    """The visible entries of ``folder``, each a regular file or a folder inside ``root`` (the
    data folder ``folder`` belongs to; default ``folder`` itself).

    Raises:
        DataError: a FIFO, device or socket, or a symbolic link whose target leaves ``root``
            (or does not exist).
    """
    root = (root or folder).resolve()
    entries = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink():
            target = path.resolve()
            if not target.exists() or not target.is_relative_to(root):
                raise DataError(
                    f"{path}: a symbolic link to {target}, outside {root}; a data folder may "
                    "link only to files inside it (copy the file in instead)"
                )
        mode = path.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise DataError(
                f"{path}: is {file_kind(mode)}; a data folder may hold only files and folders"
            )
        entries.append(path)
    return entries


# ---------------------------------------------------------------- .npy and .npz


def _npy_header(handle: IO[bytes], source: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, header length)`` of a ``.npy`` stream, checked, without reading data."""
    start = handle.read(8)
    if start[:6] != b"\x93NUMPY" or len(start) < 8:
        raise DataError(f"{source}: not a readable .npy file (no NumPy header)")
    size_bytes = 2 if start[6] == 1 else 4
    header_len = int.from_bytes(handle.read(size_bytes), "little")
    text = handle.read(header_len)
    try:
        header = ast.literal_eval(text.decode("latin1" if start[6] < 3 else "utf8"))
        shape = tuple(header["shape"])
        descr = header["descr"]
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ValueError(f"shape {shape}")
        dtype = np.lib.format.descr_to_dtype(descr)
    except (ValueError, SyntaxError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DataError(f"{source}: not a readable .npy file (bad header: {exc})") from None
    if dtype.hasobject:
        raise DataError(
            f"{source}: holds Python objects (a ragged or object array); genlab needs a "
            "numeric array of equally shaped examples and never unpickles"
        )
    return shape, dtype, 8 + size_bytes + header_len


def _check_npy(shape: tuple[int, ...], dtype: np.dtype, available: int, source: str) -> None:
    """The data a ``.npy`` header promises fits the limit and the bytes the file holds."""
    nbytes = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    check_size(nbytes, source, f"its header promises shape {shape} of {dtype}:")
    if nbytes > available:
        raise DataError(
            f"{source}: not a readable .npy file (its header promises {nbytes:,} bytes of "
            f"data but the file holds {available:,}: truncated or corrupt)"
        )


def read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array in native byte order; header and size checked before it is read."""
    with _open(path) as handle:
        shape, dtype, offset = _npy_header(handle, str(path))
        _check_npy(shape, dtype, os.fstat(handle.fileno()).st_size - offset, str(path))
        handle.seek(0)
        try:
            array = np.load(handle, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    return native(array)


def native(array: np.ndarray) -> np.ndarray:
    """``array`` in the machine's byte order (big-endian files are valid; torch needs native)."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def read_npz(path: Path) -> RawData:
    try:
        with _open(path) as handle, np.load(handle, allow_pickle=False) as archive:
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
        source = f"{path} (array {key!r})"
        info = archive.zip.getinfo(f"{key}.npy")
        check_size(info.file_size, source, "it expands to")
        try:
            with archive.zip.open(info) as member:
                shape, dtype, offset = _npy_header(member, source)
            _check_npy(shape, dtype, info.file_size - offset, source)
            return native(archive[key])
        except (OSError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as exc:
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


# ---------------------------------------------------------------- IDX


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not.

    Layout: two zero bytes, a dtype code, the number of dimensions ``n``, then ``n`` big-endian
    uint32 sizes and the data. A gzipped file is decompressed as a stream that stops at the
    size the header promises (plus one byte, to tell a longer file).
    """
    with _open(path) as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        stream: IO[bytes] = gzip.GzipFile(fileobj=handle) if compressed else handle
        try:
            magic = stream.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
                raise DataError(
                    f"{path}: wrong IDX magic number {magic.hex() or '(empty file)'}; expected "
                    "0000 followed by a type code (08 uint8 ... 0e float64) and the number of "
                    "dimensions"
                )
            dtype, ndim = IDX_DTYPES[magic[2]], magic[3]
            sizes = stream.read(4 * ndim)
            if ndim == 0 or len(sizes) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            shape = tuple(int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(ndim))
            expected = math.prod(shape) * dtype.itemsize
            check_size(expected, str(path), f"its IDX header promises shape {shape}:")
            body = stream.read(expected + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: unreadable IDX file ({exc})") from None
    if len(body) != expected:
        held = f"more than {expected:,}" if len(body) > expected else f"{len(body):,}"
        raise DataError(
            f"{path}: IDX header promises shape {shape} ({expected} bytes) but the file holds "
            f"{held} bytes of data (truncated or corrupt)"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


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
    entries = _folder_entries(folder)
    images = [p for p in entries if is_idx_file(p) and "images" in p.name]
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


# ---------------------------------------------------------------- image folders


def read_image_folder(folder: Path) -> RawData:
    """PNG/JPEG images; one sub-folder per class gives labels (sorted folder names = classes 0..).

    Either every image is at the top (no labels) or every image is in a class folder; an image
    beside class folders, or a folder inside one, is refused (see the module docstring for
    modes and depths).
    """
    entries = _folder_entries(folder)
    subfolders = [p for p in entries if p.is_dir()]
    if subfolders:
        stray = [p.name for p in entries if not p.is_dir()]
        if stray:
            raise DataError(
                f"{folder}: holds class folders ({', '.join(p.name for p in subfolders[:5])}) "
                f"and also files beside them ({', '.join(stray[:5])}); move every image into "
                "a class folder, or remove the class folders for unlabelled data"
            )
    groups = list(enumerate(subfolders)) if subfolders else [(None, folder)]
    files: list[tuple[int | None, Path]] = []
    for label, sub in groups:
        for path in _folder_entries(sub, folder) if subfolders else entries:
            if path.is_dir():
                raise DataError(
                    f"{path}: a folder inside the class folder {sub.name}; class folders hold "
                    "image files only (genlab reads one level of class folders)"
                )
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(
                    f"{path}: not an image file (image folders may hold only "
                    f"{', '.join(IMAGE_SUFFIXES)} files{' in class sub-folders' if subfolders else ''})"
                )
            files.append((label, path))
    if not files:
        raise DataError(f"{folder}: the image folder holds no images")
    arrays = _unify([_read_image(path) for _, path in files], [p for _, p in files], folder)
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        first = files[0][1]
        odd_path, odd = next(
            (p, a) for (_, p), a in zip(files, arrays, strict=True) if a.shape != arrays[0].shape
        )
        raise DataError(
            f"{folder}: images differ in size ({first.name}: {arrays[0].shape}, "
            f"{odd_path.name}: {odd.shape}); resize them to one size first"
        )
    x = np.stack(arrays)
    y = np.array([label for label, _ in files]) if subfolders else None
    return RawData(x, y, channels_last=True)


@dataclass
class _Image:
    """One decoded image: 8-bit data in a PIL mode of :data:`_EIGHT_BIT`, or 16-bit grey."""

    pixels: Any  # a PIL image (8-bit) or a uint16 array (16-bit grey)
    mode: str  # "L", "LA", "RGB", "RGBA" or "I;16"


def _read_image(path: Path) -> _Image:
    from PIL import Image, UnidentifiedImageError

    with _open(path) as handle:
        head = handle.read(26)
        handle.seek(0)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] != 0:
            raise DataError(
                f"{path}: a 16-bit colour PNG (colour type {head[25]}); genlab reads 16-bit "
                "PNGs in grey only (PIL would cut colour to 8 bits): save it as 8-bit, or the "
                "array as .npy (uint16)"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(handle)
                image.load()
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise DataError(f"{path}: refused as a decompression bomb ({exc})") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{path}: unreadable image ({exc})") from None
    if image.mode in _SIXTEEN_BIT:
        pixels = np.asarray(image)
        if pixels.min() < 0 or pixels.max() > 65535:
            raise DataError(f"{path}: 32-bit integer pixels beyond 16 bits; save as .npy")
        return _Image(pixels.astype(np.uint16), "I;16")
    if image.mode not in _EIGHT_BIT:
        raise DataError(
            f"{path}: image mode {image.mode!r} is not read by genlab (8-bit grey, grey + "
            "alpha, RGB, RGBA, palette, or 16-bit grey); convert it, e.g. to RGB"
        )
    mode = _EIGHT_BIT[image.mode]
    if image.mode == "P" and "transparency" in image.info:
        mode = "RGBA"
    return _Image(image, mode)


def _unify(images: list[_Image], paths: list[Path], folder: Path) -> list[np.ndarray]:
    """One array layout for every image of a folder, losing nothing (module docstring)."""
    deep = [image.mode == "I;16" for image in images]
    if all(deep):
        return [image.pixels for image in images]
    if any(deep):
        a, b = paths[deep.index(True)], paths[deep.index(False)]
        raise DataError(
            f"{folder}: mixes 16-bit ({a.name}) and 8-bit ({b.name}) images; save them all at "
            "one depth"
        )
    colour = any(image.mode in ("RGB", "RGBA") for image in images)
    alpha = any(image.mode in ("LA", "RGBA") for image in images)
    target = _CHANNEL_MODES[(3 if colour else 1) + int(alpha)]
    return [np.asarray(image.pixels.convert(target)) for image in images]


def to_examples(
    x: np.ndarray, source: str, *, channels_last: bool = False
) -> tuple[np.ndarray, str]:
    """Bring an array to ``(N, D)`` (kind ``"vector"``) or ``(N, C, H, W)`` (kind ``"image"``).

    ``(N, H, W)`` gains a channel axis. For 4-D arrays the channel axis is axis 3 with
    ``channels_last``; otherwise axis 1 or axis 3, whichever has at most 4 entries; when both
    do, the smaller one (ties: axis 1, torch's layout).
    """
    if x.dtype == object or x.dtype.kind not in "biuf":
        raise DataError(f"{source}: dtype {x.dtype} is not numeric")
    if x.ndim == 2:
        return x, "vector"
    if x.ndim == 3:
        return x[:, None], "image"
    if x.ndim == 4 and channels_last:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "image"
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
