r"""Sample sets to score against a dataset (``genlab score SAMPLES --data DATA``).

A sample set is read by the same readers as a dataset (:mod:`genlab.data.files`): an ``.npy``
array, an ``.npz`` archive with ``x`` (and optional integer labels ``y``), a folder of PNG/JPEG
images (one sub-folder per class gives labels: sorted folder names are classes 0, 1, ...), or
IDX files; a numpy array or tensor from Python. It is then brought to DATA's layout, units and
size by these rules, each applied openly (what was done is listed in :attr:`SampleSet.notes`):

1. **Layout**: as for data files, ``(N, D)`` vectors or ``(N, C, H, W)`` images (``(N, H, W)``
   gains a channel axis, ``(N, H, W, C)`` is transposed). Vectors against images, a different
   number of coordinates, or a different number of channels are refused: genlab guesses
   neither a flattening order nor a colour conversion.
2. **Units**: unsigned 8-bit samples (every PNG/JPEG folder, uint8 arrays) are on 0..255 and
   are mapped linearly onto DATA's value range :math:`[l, h]` when it differs,
   :math:`x \mapsto l + (h - l)\,x / 255`. Samples of any other dtype are taken to be in
   DATA's units already (as ``genlab sample --out FILE.npy`` writes them); when their range
   looks like :math:`[0, 1]` or :math:`[-1, 1]` against a much wider DATA range, a note says so.
3. **Size**: images of another height or width are resized to DATA's by :data:`RESIZE_METHOD`,
   ``torch.nn.functional.interpolate(mode="bicubic", antialias=True, align_corners=False)``,
   which is PIL's bicubic resampling (the cubic kernel with :math:`a = -0.5`, its support
   widened by the scale factor when shrinking, so that shrinking does not alias: the method
   clean-fid argues for; the tests check it against PIL to float precision) on float images
   of every channel at once. The result is clamped to the samples' own value range (cubic
   filters overshoot at edges). A change of aspect ratio is noted.
4. **Labels** must be DATA's class indices ``0 .. n_classes - 1``.

References:
    Parmar, Zhang & Zhu, "On aliased resizing and surprising subtleties in GAN evaluation",
    CVPR 2022, arXiv:2104.11222 (clean-fid).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from genlab.data.dataset import DataInfo, validate_array
from genlab.data.files import read_path, to_examples
from genlab.errors import DataError

RESIZE_METHOD = "bicubic with antialiasing, as PIL's BICUBIC"
UNIT_RANGE_FACTOR = 8  # a sample range this many times narrower than DATA's gets a note

SampleSource = str | Path | np.ndarray | Tensor


@dataclass(frozen=True)
class SampleSet:
    """Samples in DATA's layout and units.

    Attributes:
        x: ``(N, *info.event_shape)`` float32 in DATA's units.
        y: ``(N,)`` int64 class indices, or ``None``.
        source: where the samples came from (a path, or ``"array"``).
        notes: each conversion applied (unit mapping, resize) and each warning.
    """

    x: Tensor
    y: Tensor | None
    source: str
    notes: tuple[str, ...] = ()


def read_sample_set(
    source: SampleSource, info: DataInfo, *, labels: np.ndarray | Tensor | None = None
) -> SampleSet:
    """Read ``source`` and bring it to ``info``'s layout, units and size (module docstring)."""
    if isinstance(source, str | Path):
        name = str(source)
        raw = read_path(Path(source).expanduser())
        if raw.x_test is not None:
            raise DataError(
                f"{name}: a sample file holds one set of samples (key 'x', optional 'y'), "
                "not a train/test split"
            )
        array, raw_labels = raw.x, raw.y
    else:
        name = "array"
        array = source.detach().cpu().numpy() if isinstance(source, Tensor) else source
        raw_labels = None
    if labels is not None:
        raw_labels = labels.cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if not isinstance(array, np.ndarray):
        raise DataError(f"{name}: expected an array of samples, got {type(array).__name__}")
    x_np, kind = to_examples(array, name)
    unsigned_8bit = x_np.dtype == np.uint8
    x = torch.from_numpy(np.ascontiguousarray(x_np)).float()
    validate_array(x, name)
    notes: list[str] = []
    _check_layout(x, kind, info, name)
    x = _to_data_units(x, unsigned_8bit, info, name, notes)
    if info.kind == "image" and tuple(x.shape[2:]) != info.event_shape[1:]:
        x = _resize_noted(x, info.event_shape[1:], notes)
    y = None if raw_labels is None else _class_indices(raw_labels, len(x), info, name)
    return SampleSet(x, y, name, tuple(notes))


def _check_layout(x: Tensor, kind: str, info: DataInfo, name: str) -> None:
    shape = tuple(x.shape[1:])
    if kind != info.kind:
        raise DataError(
            f"{name}: samples are {kind}s of shape {shape} but {info.name} holds {info.kind}s "
            f"of shape {info.event_shape}; save them in the data's layout"
        )
    if kind == "vector" and shape != info.event_shape:
        raise DataError(
            f"{name}: samples have {shape[0]} coordinates but {info.name} has "
            f"{info.event_shape[0]}"
        )
    if kind == "image" and shape[0] != info.event_shape[0]:
        raise DataError(
            f"{name}: images with {shape[0]} channel(s) but {info.name} has "
            f"{info.event_shape[0]}; convert them to the data's channels first (genlab does "
            "not guess a colour conversion)"
        )


def _to_data_units(
    x: Tensor, unsigned_8bit: bool, info: DataInfo, name: str, notes: list[str]
) -> Tensor:
    low, high = info.value_range
    if unsigned_8bit:
        if (low, high) != (0.0, 255.0):
            notes.append(
                f"8-bit samples mapped from 0..255 onto the value range of {info.name} "
                f"({low:g}..{high:g})"
            )
            return low + (high - low) * x / 255.0
        return x
    span, sample_low, sample_high = high - low, float(x.min()), float(x.max())
    if (
        span > 2
        and -1.5 <= sample_low
        and sample_high <= 1.5
        and (sample_high - sample_low) * UNIT_RANGE_FACTOR < span
    ):
        notes.append(
            f"warning: {name} lies in [{sample_low:.3g}, {sample_high:.3g}] but {info.name} "
            f"spans [{low:g}, {high:g}]: samples must be in the data's units (or saved as "
            "8-bit images)"
        )
    return x


def resize_images(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``(N, C, H, W)`` -> ``(N, C, *size)`` by :data:`RESIZE_METHOD`, clamped to ``x``'s range.

    Example:
        >>> resize_images(torch.rand(2, 1, 32, 32), (8, 8)).shape
        torch.Size([2, 1, 8, 8])
    """
    out = F.interpolate(x.float(), size=size, mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(float(x.min()), float(x.max()))


def _resize_noted(x: Tensor, size: tuple[int, ...], notes: list[str]) -> Tensor:
    height, width = int(size[0]), int(size[1])
    old = (int(x.shape[2]), int(x.shape[3]))
    notes.append(f"images resized from {old[0]}x{old[1]} to {height}x{width} ({RESIZE_METHOD})")
    if old[0] * width != old[1] * height:
        notes.append(
            f"warning: resizing {old[0]}x{old[1]} to {height}x{width} changes the aspect ratio"
        )
    return resize_images(x, (height, width))


def _class_indices(labels: np.ndarray, n: int, info: DataInfo, name: str) -> Tensor:
    if labels.ndim != 1 or labels.dtype.kind not in "biu":
        raise DataError(
            f"{name}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    if len(labels) != n:
        raise DataError(f"{name}: {n} samples but {len(labels)} labels")
    if info.n_classes is None:
        raise DataError(f"{name}: the samples carry labels but {info.name} has none")
    if len(labels) and (labels.min() < 0 or labels.max() >= info.n_classes):
        raise DataError(
            f"{name}: labels must be {info.name}'s class indices 0..{info.n_classes - 1}, "
            f"got {int(labels.min())}..{int(labels.max())}"
        )
    return torch.from_numpy(labels.astype(np.int64))
