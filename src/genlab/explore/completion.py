"""Conditional completion: the observed part of an example and several completions of the rest."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genlab.models.base import GenerativeModel


@torch.no_grad()
def completion_grid(
    model: GenerativeModel,
    x: Tensor,
    mask: Tensor,
    n: int = 5,
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> Tensor:
    """Rows for a picture: per example, the observed part (the rest set to the range's low end),
    ``n`` completions (``options`` go to ``sample_conditional``), then the original. Returns
    ``(batch * (n + 2), *event_shape)``."""
    if not model.capabilities.supports("conditional"):
        raise model.unsupported("sample_conditional")
    x = x.to(model.device)
    completions = model.sample_conditional(x, mask, n, generator=generator, **options)
    observed = torch.where(mask.to(x.device), x, torch.full_like(x, model.info.value_range[0]))
    rows = torch.cat([observed.unsqueeze(0), completions, x.unsqueeze(0)])  # (n + 2, B, ...)
    return rows.transpose(0, 1).reshape(-1, *x.shape[1:])
