"""Shared by the hostile-input tests: run the command line in-process and check that a refusal is
one clear line that names the problem and that nothing on disk changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors_bytes

from genlab.cli import main
from genlab.io import read_safetensors
from genlab.runs import LOCK_FILE


def snapshot(folder: Path) -> dict[str, str]:
    """Path -> SHA-256 of every file under ``folder``; a run's ``.lock`` counts by its existence
    alone (its content names the last process that held the lock: the lock's own state)."""
    return {
        str(p.relative_to(folder)): "" if p.name == LOCK_FILE else _sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(args: list[str], message: str, capsys, folder: Path) -> str:
    """Run ``genlab ARGS``; assert exit 2, one ``genlab: error:`` line containing ``message``,
    no traceback, and no file under ``folder`` changed or added. Returns the line."""
    before = snapshot(folder)
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("genlab: error:")]
    assert len(lines) == 1, err
    assert message in lines[0], err
    assert "Traceback" not in err
    assert snapshot(folder) == before, "the command changed or created files"
    return lines[0]


def succeeds(args: list[str], capsys) -> tuple[str, str]:
    """Run ``genlab ARGS``; assert exit 0 and no traceback. Returns (stdout, stderr)."""
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    return captured.out, captured.err


def edit_checkpoint(path: Path, *, trainer_fields: dict | None = None, **metadata: str) -> None:
    """Rewrite the header of a safetensors checkpoint: ``trainer_fields`` merged into its trainer
    state (a value of ``...`` removes the field), other metadata replaced."""
    tensors, header = read_safetensors(path)
    if trainer_fields is not None:
        state = json.loads(header["trainer"])
        for key, value in trainer_fields.items():
            if value is ...:
                state.pop(key)
            else:
                state[key] = value
        header["trainer"] = json.dumps(state)
    header.update(metadata)
    path.write_bytes(save_safetensors_bytes(tensors, metadata=header))


def poison_weights(path: Path) -> None:
    """Put a NaN into the first floating-point tensor of a safetensors file."""
    tensors, header = read_safetensors(path)
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel())
    poisoned = tensors[name].clone()
    poisoned.view(-1)[0] = torch.nan
    tensors[name] = poisoned
    path.write_bytes(save_safetensors_bytes(tensors, metadata=header))
