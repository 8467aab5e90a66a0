r"""Attribute vectors: the difference of class-mean codes, added to new codes.

:math:`v = \bar z_{\text{target}} - \bar z_{\text{source}}`, and an example is moved by
:math:`\mathrm{decode}(E(x) + \alpha v)` for a few scales :math:`\alpha` (the "smile vector" of
White, 2016, arXiv:1609.04468).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genlab.errors import DataError
from genlab.models.base import GenerativeModel


def attribute_vector(codes: Tensor, labels: Tensor, source: int, target: int) -> Tensor:
    """Mean code of class ``target`` minus mean code of class ``source``; ``(latent_dim,)``."""
    for cls in (source, target):
        if not bool((labels == cls).any()):
            raise DataError(f"no example of class {cls} to compute an attribute vector from")
    return codes[labels == target].mean(0) - codes[labels == source].mean(0)


@torch.no_grad()
def apply_attribute(
    model: GenerativeModel,
    x: Tensor,
    vector: Tensor,
    scales: Sequence[float] = (0.0, 0.5, 1.0, 1.5),
) -> Tensor:
    """``(len(scales), batch, *event_shape)``: ``decode(encode(x) + s * vector)`` for each scale."""
    z = model.encode(x.to(model.device))
    return torch.stack([model.decode(z + s * vector.to(z)) for s in scales])
