"""The in-memory dataset every family trains on, and the metadata that travels with a run."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from genlab.errors import DataError

DataKind = Literal["vector", "image", "text"]
TextUnits = Literal["lines", "windows"]
END_TOKEN = 0  # text: token 0 ends an item (a newline); it also starts every context
PAD_TOKEN = -1  # text: positions after an item's end token (they never count)


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
    def from_json(cls, data: dict[str, Any]) -> DataInfo:
        data = dict(data)
        data["event_shape"] = tuple(data["event_shape"])
        data["value_range"] = tuple(data["value_range"])
        if data.get("vocabulary") is not None:
            data["vocabulary"] = tuple(data["vocabulary"])
        if data.get("mode_centres") is not None:
            data["mode_centres"] = tuple(tuple(c) for c in data["mode_centres"])
        return cls(**data)


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
