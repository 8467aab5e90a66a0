"""Seeded construction of networks from an explicit generator (no global seeding leaks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

M = TypeVar("M")


def draw_seed(generator: torch.Generator | None) -> int:
    """A 63-bit seed drawn from ``generator`` (fresh randomness when it is ``None``)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))


def build_seeded(factory: Callable[[], M], generator: torch.Generator | None) -> M:
    """``factory()`` with torch's default weight initialisation seeded from ``generator``.

    The global RNG state is restored afterwards (as :func:`genlab.api.build_model` does).
    """
    seed = draw_seed(generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()
