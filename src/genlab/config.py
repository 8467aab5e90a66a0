"""Typed configuration: frozen dataclasses built from dicts or ``key=value`` strings.

The command line's ``--set key=value`` and the Python API's keyword arguments both go through
:func:`build`, which coerces strings to the field's declared type and rejects unknown keys
with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar

from genlab.errors import ConfigError

C = TypeVar("C")


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """Turn ``["lr=1e-3", "latent_dim=8"]`` into ``{"lr": "1e-3", "latent_dim": "8"}``."""
    out: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key] = value.strip()
    return out


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def build(cls: type[C], values: Mapping[str, Any], *, what: str | None = None) -> C:
    """Instantiate the dataclass ``cls`` from ``values``, coercing strings to the field types.

    Raises:
        ConfigError: on an unknown key or a value that does not fit the field's type.
    """
    what = what or cls.__name__
    names = field_names(cls)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for {what}; "
            f"valid options: {', '.join(names)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {key: coerce(value, hints[key], f"{what}.{key}") for key, value in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"invalid {what}: {exc}") from exc


def coerce(value: Any, annotation: Any, name: str) -> Any:
    """Convert ``value`` (often a string from the command line) to ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; ".join(errors) or f"{name}: cannot use {value!r}")
    if origin is Literal:
        for option in args:
            if value == option or (isinstance(value, str) and str(option) == value):
                return option
        raise ConfigError(f"{name} must be one of {', '.join(map(str, args))}, got {value!r}")
    if origin is tuple:
        items = value
        if isinstance(value, str):
            items = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{name} must be a comma-separated list, got {value!r}")
        item_type = args[0] if args else str
        return tuple(coerce(v, item_type, name) for v in items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return int(as_float)
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if annotation is str:
        return str(value)
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(message)
