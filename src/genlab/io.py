"""Files: atomic writes (temp file in the same folder + fsync + rename), reads of regular files
only, JSON, safetensors reads, and operating-system errors turned into one clear line.

Every read here refuses what is not a regular file (a FIFO would block forever, ``/dev/zero``
never ends) before reading a byte, and every failure of the file system (disk full, read-only,
permission, a file where a folder should be) becomes a :class:`~genlab.errors.StorageError`
that names the path, the problem and the way out.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any

from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from torch import Tensor

from genlab.errors import CheckpointError, StorageError

# What each errno means to a user, and what to do about it.
_REASONS = {
    errno.ENOSPC: "no space left on the device; free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
    errno.EROFS: "read-only file system; write elsewhere (another --out or --cache)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EFBIG: "the file is too large for this file system",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists",
}

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def storage_error(exc: OSError, action: str, path: str | Path) -> StorageError:
    """``exc`` as one line: ``cannot <action> <path>: <reason and way out>``."""
    reason = _REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    return StorageError(f"cannot {action} {path}: {reason}")


def file_kind(mode: int) -> str:
    """``"a FIFO (named pipe)"``, ``"a folder"``... for an ``st_mode`` that is not a regular file."""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def make_folder(path: str | Path) -> Path:
    """``mkdir -p path``, with a clear error when a part of it is a file or cannot be created."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise StorageError(
            f"cannot create the folder {path}: {blocker} is a file, not a folder; "
            "choose another path"
        ) from None
    except OSError as exc:
        raise storage_error(exc, "create the folder", path) from None
    return path


def open_regular(path: str | Path) -> IO[bytes]:
    """Open ``path`` for reading if it is a regular file (symbolic links are followed).

    Opens without blocking and checks the opened file, so a FIFO, a device or a socket is
    refused at once instead of hanging or reading forever.

    Raises:
        FileNotFoundError: ``path`` does not exist (callers say what was expected there).
        StorageError: it is not a regular file, or cannot be opened.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise StorageError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise storage_error(exc, "read", path) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise StorageError(
            f"{path}: is {file_kind(mode)}, not a regular file; genlab reads only regular files"
        )
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: str | Path, *, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (see :func:`open_regular`), at most ``limit``."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if limit is not None and size > limit:
            raise StorageError(
                f"{path}: {size:,} bytes, more than the {limit:,} such a file can have"
            )
        try:
            return handle.read()
        except OSError as exc:
            raise storage_error(exc, "read", path) from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    path = Path(path)
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise storage_error(exc, "write", path) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise storage_error(exc, "write", path) from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def writable_folder(path: str | Path) -> bool:
    """Whether a file can be created in the existing folder ``path`` (tries, then cleans up)."""
    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> None:
    """``data`` as indented JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def read_safetensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and header metadata of a safetensors file, with clear errors for anything else."""
    path = Path(path)
    try:
        data = read_regular(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    header_len = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if not (0 < header_len and data[8:9] == b"{"):
        if (
            data[:1] == b"\x80"
            and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
            or data[:4] == b"PK\x03\x04"
        ):
            raise CheckpointError(
                f"{path}: looks like a pickle/torch.save file; genlab reads only safetensors "
                "checkpoints and never unpickles"
            )
        raise CheckpointError(f"{path}: not a safetensors file (corrupt or foreign header)")
    if 8 + header_len > len(data):
        raise CheckpointError(
            f"{path}: not a valid safetensors file (truncated or corrupt header)"
        )
    try:
        header = json.loads(data[8 : 8 + header_len])
        metadata = header.get("__metadata__") or {}
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise CheckpointError(
            f"{path}: not a valid safetensors file (truncated or corrupt: {exc})"
        ) from None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: the safetensors metadata is not a map of strings")
    return tensors, metadata
