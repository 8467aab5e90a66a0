"""Atomic file writes (temp file in the same folder + fsync + rename), JSON, safetensors reads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from torch import Tensor

from genlab.errors import CheckpointError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def read_safetensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and header metadata of a safetensors file, with clear errors for anything else."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None
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
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise CheckpointError(
            f"{path}: not a valid safetensors file (truncated or corrupt: {exc})"
        ) from None
    return tensors, metadata
