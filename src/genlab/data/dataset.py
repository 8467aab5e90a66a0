"""The in-memory dataset every family trains on, and the metadata that travels with a run."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from genlab.errors import DataError

DataKind = Literal["vector", "image", "text"]
DATA_KINDS: tuple[str, ...] = get_args(DataKind)
TextUnits = Literal["lines", "windows"]
TEXT_UNITS: tuple[str, ...] = get_args(TextUnits)
END_TOKEN = 0  # text: token 0 ends an item (a newline); it also starts every context
PAD_TOKEN = -1  # text: positions after an item's end token (they never count)
MAX_FEATURES = 2**31
LARGE_IMAGE_SIDE = 16  # images with a side this long get the ``images`` settings layer


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about its data; stored in every run's ``config.json``.

    Attributes:
        name: the spec the data was loaded from (``"digits"``, ``"ring"``, a path...).
        event_shape: shape of one example: ``(D,)`` for vectors, ``(C, H, W)`` for images.
        kind: ``"vector"``, ``"image"`` or ``"text"`` (token sequences, see
            :mod:`genlab.data.text`).
        levels: number of equally spaced discrete values per coordinate (17 for digits,
            256 for uint8 images), or ``None`` for continuous data.
        value_range: smallest and largest value a coordinate can take (the first and last level
            for discrete data).
        n_classes: number of labels, or ``None`` without labels.
        mode_centres: centres of the mixture components (2-D mixtures only).
        mode_std: standard deviation of each mixture component (2-D mixtures only).
        has_density: whether the true log-density is known (see :attr:`Dataset.true_log_prob`).
        vocabulary: text only: the string of each token; token 0 (:data:`END_TOKEN`) is
            ``"\\n"``, the end of an item (and the newline of running text).
        text_units: text only: ``"lines"`` (one item per line, ending with the end token and
            padded with :data:`PAD_TOKEN` to ``event_shape``) or ``"windows"`` (fixed-length
            windows of running text, no end token, no padding).
    """

    name: str
    event_shape: tuple[int, ...]
    kind: DataKind
    levels: int | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    n_classes: int | None = None
    mode_centres: tuple[tuple[float, ...], ...] | None = None
    mode_std: float | None = None
    has_density: bool = False
    vocabulary: tuple[str, ...] | None = None
    text_units: TextUnits | None = None

    @property
    def n_features(self) -> int:
        """Number of coordinates D of one example."""
        return math.prod(self.event_shape)

    @property
    def level_step(self) -> float | None:
        r"""Spacing :math:`\delta = (\text{high} - \text{low}) / (L - 1)` of discrete levels."""
        if self.levels is None:
            return None
        low, high = self.value_range
        return (high - low) / (self.levels - 1)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, name: str = "info") -> DataInfo:
        """The :meth:`to_json` form back, every field checked (``name`` prefixes the errors).

        Raises:
            DataError: a missing or unknown field, or a value of the wrong type or range.
        """

        def fail(field_name: str, problem: str) -> DataError:
            return DataError(f"field '{name}.{field_name}' {problem}")

        if not isinstance(data, dict):
            raise DataError(f"field {name!r} must be an object")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        missing = sorted({"name", "event_shape", "kind"} - set(data))
        if unknown or missing:
            key = (unknown or missing)[0]
            raise fail(key, "is unknown" if unknown else "is missing")
        values = {**{f.name: f.default for f in dataclasses.fields(cls)}, **data}
        if not isinstance(values["name"], str):
            raise fail("name", "must be a string")
        shape = values["event_shape"]
        if (
            not isinstance(shape, list | tuple)
            or len(shape) not in (1, 3)
            or not all(_is_int(n) and n >= 1 for n in shape)
            or math.prod(shape) > MAX_FEATURES
        ):
            raise fail("event_shape", f"must be 1 or 3 positive sizes (at most {MAX_FEATURES:,} "
                       f"coordinates), got {shape!r}")  # fmt: skip
        if values["kind"] not in DATA_KINDS or (values["kind"] == "image") != (len(shape) == 3):
            raise fail("kind", f"must be 'vector' or 'text' (1-D events) or 'image' (3-D), "
                       f"got {values['kind']!r}")  # fmt: skip
        levels = values["levels"]
        if levels is not None and not (_is_int(levels) and 2 <= levels <= MAX_FEATURES):
            raise fail("levels", f"must be null or an integer >= 2, got {levels!r}")
        low_high = values["value_range"]
        if not (
            isinstance(low_high, list | tuple)
            and len(low_high) == 2
            and all(_is_number(v) and math.isfinite(v) for v in low_high)
            and low_high[0] <= low_high[1]
        ):
            raise fail("value_range", f"must be two finite numbers low <= high, got {low_high!r}")
        n_classes = values["n_classes"]
        if n_classes is not None and not (_is_int(n_classes) and n_classes >= 1):
            raise fail("n_classes", f"must be null or a positive integer, got {n_classes!r}")
        centres = values["mode_centres"]
        if centres is not None and not (
            isinstance(centres, list | tuple)
            and all(
                isinstance(c, list | tuple) and len(c) == math.prod(shape) and
                all(_is_number(v) and math.isfinite(v) for v in c)
                for c in centres
            )
        ):  # fmt: skip
            raise fail("mode_centres", "must be null or a list of points of the data's size")
        mode_std = values["mode_std"]
        if mode_std is not None and not (_is_number(mode_std) and 0 < mode_std < math.inf):
            raise fail("mode_std", f"must be null or a positive number, got {mode_std!r}")
        if not isinstance(values["has_density"], bool):
            raise fail("has_density", "must be true or false")
        vocabulary, units = values["vocabulary"], values["text_units"]
        text = values["kind"] == "text"
        if (vocabulary is not None) != text or (
            text and not (isinstance(vocabulary, list | tuple) and len(vocabulary) >= 2
                          and all(isinstance(t, str) for t in vocabulary))
        ):  # fmt: skip
            raise fail("vocabulary", "must be a list of token strings for text, null otherwise")
        if (units is not None) != text or (text and units not in TEXT_UNITS):
            raise fail("text_units", f"must be one of {TEXT_UNITS} for text, null otherwise")
        return cls(
            name=values["name"],
            event_shape=tuple(shape),
            kind=values["kind"],
            levels=levels,
            value_range=(float(low_high[0]), float(low_high[1])),
            n_classes=n_classes,
            mode_centres=None if centres is None else tuple(tuple(c) for c in centres),
            mode_std=mode_std,
            has_density=values["has_density"],
            vocabulary=None if vocabulary is None else tuple(vocabulary),
            text_units=units,
        )


def is_large_image(info: DataInfo) -> bool:
    """Images with a side of at least :data:`LARGE_IMAGE_SIDE` pixels (28x28 MNIST, not the 8x8
    digits): what the ``images`` settings layer and resolution-dependent defaults key on."""
    return info.kind == "image" and max(info.event_shape[1:]) >= LARGE_IMAGE_SIDE


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def tensor_digest(*tensors: Tensor | None) -> str:
    """SHA-256 (hex) of the dtypes, shapes and bytes of ``tensors`` (``None`` counts as absent)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if tensor is None:
            digest.update(b"none;")
            continue
        array = np.ascontiguousarray(tensor.detach().cpu().numpy())
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


@dataclass
class Dataset:
    """Train and test tensors in memory, with labels when there are any.

    ``x_*`` have shape ``(N, *info.event_shape)`` and dtype float32, in the units of the source
    (digits stay 0..16, uint8 images stay 0..255), or int64 token ids for text (padding
    :data:`PAD_TOKEN`); ``y_*`` are int64 of shape ``(N,)`` or ``None``.
    """

    x_train: Tensor
    x_test: Tensor
    info: DataInfo
    y_train: Tensor | None = None
    y_test: Tensor | None = None
    true_log_prob: Callable[[Tensor], Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for split, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            if x.shape[1:] != self.info.event_shape:
                raise DataError(
                    f"{self.info.name}: {split} examples have shape {tuple(x.shape[1:])}, "
                    f"expected {self.info.event_shape}"
                )
            if y is not None and y.shape != (x.shape[0],):
                raise DataError(
                    f"{self.info.name}: {x.shape[0]} {split} examples but labels of shape "
                    f"{tuple(y.shape)}"
                )

    def fingerprint(self) -> str:
        """``"sha256:<hex>"`` of the train and test examples and labels, exactly as loaded.

        A run records it: it changes when the file or folder changes, when the split does, or
        when a reader of the format does, and stays the same wherever the data is read from.
        """
        return "sha256:" + tensor_digest(self.x_train, self.x_test, self.y_train, self.y_test)


def dequantize(x: Tensor, info: DataInfo, generator: torch.Generator | None = None) -> Tensor:
    r"""Uniform dequantisation centred on the levels: :math:`\tilde x = x + \delta (u - \tfrac12)`.

    With :math:`u \sim U[0,1)^D` and level spacing :math:`\delta`, each discrete value owns the
    bin :math:`[x - \delta/2, x + \delta/2)`, so for any density :math:`p` on :math:`\tilde x`,
    :math:`\log P(x) \ge \mathbb{E}_u \log p(\tilde x) + D \log \delta` (Theis et al., 2016,
    arXiv:1511.01844). Continuous data (``info.levels is None``) is returned unchanged.
    """
    step = info.level_step
    if step is None:
        return x
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + step * (noise - 0.5)


def validate_array(x: Tensor, source: str) -> None:
    """Reject empty data and NaN/inf with a message naming ``source``."""
    if x.shape[0] == 0:
        raise DataError(f"{source}: the dataset is empty (0 examples)")
    if x.numel() == 0:
        raise DataError(f"{source}: examples have no coordinates (shape {tuple(x.shape)})")
    if x.is_floating_point():
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            bad = int((~finite).flatten(1).any(1).nonzero()[0])
            kind = "NaN" if bool(torch.isnan(x).any()) else "infinite values"
            raise DataError(f"{source}: contains {kind} (first in example {bad})")
