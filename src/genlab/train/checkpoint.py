"""Checkpoints in safetensors: model, optimizers, RNG and trainer state, written atomically.

A checkpoint is one ``.safetensors`` file (never a pickle, so loading cannot run code):

- tensors ``model.<name>`` (the state dict), ``best.<name>`` (the best weights so far, when
  validation is on), ``optim.<optimizer>.<param index>.<key>`` (optimizer state), and
  ``rng.train.<rank>`` (each process's generator state as a uint8 tensor);
- header metadata ``format`` (``genlab-checkpoint`` or ``genlab-model``), ``family``,
  ``trainer`` (JSON: step, epoch, best score...) and ``optim`` (JSON: param groups).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor

from genlab.errors import CheckpointError
from genlab.io import atomic_write_bytes, read_safetensors
from genlab.models.base import GenerativeModel

CHECKPOINT_FORMAT = "genlab-checkpoint"
MODEL_FORMAT = "genlab-model"
FORMAT_VERSION = "1"


def _state_tensors(prefix: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _optimizer_tensors(
    name: str, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{name}.{index}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(
    path: str | Path,
    model: GenerativeModel,
    optimizers: dict[str, torch.optim.Optimizer],
    trainer_state: dict[str, Any],
    generator_states: dict[str, Tensor],
    best_state: dict[str, Tensor] | None = None,
) -> None:
    """Write everything needed to resume bit-identically, atomically."""
    tensors = _state_tensors("model", model.state_dict())
    if best_state is not None:
        tensors.update(_state_tensors("best", best_state))
    optim_meta = {}
    for name, optimizer in optimizers.items():
        optim_tensors, optim_meta[name] = _optimizer_tensors(name, optimizer)
        tensors.update(optim_tensors)
    for name, state in generator_states.items():
        tensors[f"rng.{name}"] = state.clone()
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "version": FORMAT_VERSION,
        "family": model.family,
        "trainer": json.dumps(trainer_state),
        "optim": json.dumps(optim_meta),
    }
    atomic_write_bytes(path, save_safetensors_bytes(tensors, metadata=metadata))


def save_model(path: str | Path, model: GenerativeModel) -> None:
    """Write the model's weights alone (what :func:`genlab.load` reads)."""
    metadata = {"format": MODEL_FORMAT, "version": FORMAT_VERSION, "family": model.family}
    atomic_write_bytes(
        path,
        save_safetensors_bytes(_state_tensors("model", model.state_dict()), metadata=metadata),
    )


def _check_header(
    path: Path, metadata: dict[str, str], model: GenerativeModel, formats: tuple[str, ...]
) -> None:
    if metadata.get("format") not in formats:
        raise CheckpointError(
            f"{path}: a safetensors file but not a genlab {' or '.join(formats)} file "
            f"(format={metadata.get('format')!r})"
        )
    if metadata.get("family") != model.family:
        raise CheckpointError(
            f"{path}: checkpoint of the {metadata.get('family')!r} family cannot be loaded into "
            f"a {model.family!r} model"
        )


def _prefixed(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def load_state_into(model: GenerativeModel, state: dict[str, Tensor], source: str) -> None:
    """``model.load_state_dict`` after :meth:`~GenerativeModel.upgrade_state` and
    :func:`check_state`."""
    state = model.upgrade_state(state)
    check_state(model, state, source)
    model.load_state_dict(state)


def check_state(model: GenerativeModel, state: dict[str, Tensor], source: str) -> None:
    """Refuse a state dict with missing, extra, mis-shaped, mistyped or non-finite tensors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: does not match this {model.family} model "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{source}: tensor {key!r} has shape {tuple(value.shape)} but the model expects "
                f"{tuple(expected[key].shape)} (a checkpoint of another configuration?)"
            )
        if value.dtype != expected[key].dtype:
            raise CheckpointError(
                f"{source}: tensor {key!r} is {value.dtype} but the model expects "
                f"{expected[key].dtype}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"{source}: tensor {key!r} holds NaN or infinite values; these weights are "
                "damaged (or come from a diverged run)"
            )


def load_model(path: str | Path, model: GenerativeModel) -> None:
    """Load weights from a model file or a training checkpoint into ``model``."""
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    _check_header(path, metadata, model, (MODEL_FORMAT, CHECKPOINT_FORMAT))
    load_state_into(model, _prefixed(tensors, "model"), str(path))


def load_checkpoint(
    path: str | Path,
    model: GenerativeModel,
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, torch.Generator],
) -> tuple[dict[str, Any], dict[str, Tensor] | None]:
    """Restore model, optimizers and generators; returns (trainer state, best weights or None).

    ``generators`` maps names as saved (``"train.<rank>"``) to the generators to restore.
    """
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    _check_header(path, metadata, model, (CHECKPOINT_FORMAT,))
    try:
        trainer_state = json.loads(metadata["trainer"])
        optim_meta = json.loads(metadata["optim"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: checkpoint header is incomplete ({exc})") from None
    if not isinstance(optim_meta, dict):
        raise CheckpointError(f"{path}: checkpoint header 'optim' is not a JSON object")
    best = _prefixed(tensors, "best") or None
    load_state_into(model, _prefixed(tensors, "model"), str(path))
    if best is not None:
        best = model.upgrade_state(best)
        check_state(model, best, f"{path} (best weights)")
    for name, optimizer in optimizers.items():
        if name not in optim_meta:
            raise CheckpointError(f"{path}: no state for optimizer {name!r}")
        try:
            optimizer.load_state_dict(_optimizer_state(tensors, name, optim_meta[name]))
        except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path}: optimizer {name!r} state does not fit ({exc})"
            ) from None
    for name, generator in generators.items():
        if f"rng.{name}" not in tensors:
            raise CheckpointError(
                f"{path}: no state for random generator {name!r} (a checkpoint of a run with "
                "another number of processes?)"
            )
        try:
            generator.set_state(tensors[f"rng.{name}"])
        except (RuntimeError, TypeError) as exc:
            raise CheckpointError(
                f"{path}: random generator {name!r} state is invalid ({exc})"
            ) from None
    return trainer_state, best


def _optimizer_state(
    tensors: dict[str, Tensor], name: str, meta: dict[str, Any]
) -> dict[str, Any]:
    """The ``state_dict`` of optimizer ``name`` from its tensors and header entry."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in _prefixed(tensors, f"optim.{name}").items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"tensor {key!r} holds NaN or infinite values")
        index, _, field = key.partition(".")
        # Optimizer.load_state_dict moves each value to its parameter's device and dtype.
        state.setdefault(int(index), {})[field] = value
    for index, scalars in meta["scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    return {"state": state, "param_groups": meta["param_groups"]}
