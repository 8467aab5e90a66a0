r"""Freed memory kept for reuse while genlab works (glibc's ``malloc``).

torch's CPU tensors come from ``malloc``. glibc serves a request above its mmap threshold (at
most 32 MB, adjusted as blocks are freed) with fresh pages from the operating system and
returns them when the block is freed, and trims free memory above 128 KB at the top of its
heap. A training step on 28x28 images allocates and frees tensors of tens of megabytes (a
PixelCNN's 256 logits of each pixel for a batch of 64: 51 MB, several times a step, in the
forward and the backward pass), so every step paid the kernel's page faults on the same
memory again: a quarter of the PixelCNN's step, a fifth of the conv VAE's.

:func:`reusing_freed_memory` sets ``M_MMAP_MAX = 0`` (every block from the heap) and a trim
threshold of 2 GB (freed memory stays with the process) for the duration of a block, then
restores glibc's defaults and returns the free memory to the system (``malloc_trim``). Nested
blocks keep the setting until the outermost one ends. Elsewhere than on glibc it does nothing.
A training run (:func:`genlab.train.fit`, its epochs and last fit) and every ``genlab`` command run
inside it.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
from collections.abc import Iterator
from functools import cache

M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024  # glibc's defaults, restored afterwards
DEFAULT_MMAP_MAX = 65536
KEPT_FREE = 2**31 - 1  # bytes of free heap top kept instead of trimmed: all of it, in practice

_depth = 0


@cache
def _glibc() -> ctypes.CDLL | None:
    """The C library this process runs, if it is glibc (``mallopt`` and ``malloc_trim``)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc


@contextlib.contextmanager
def reusing_freed_memory() -> Iterator[None]:
    """Inside the block, freed memory stays with the process for the next allocations (module
    docstring); afterwards glibc's defaults are back and the free memory is returned."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield
        return
    if _depth == 0:
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, KEPT_FREE)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
            libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)
