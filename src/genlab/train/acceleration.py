"""Two optional speed-ups of the training step: bf16 autocast and ``torch.compile``.

**Precision** (``precision``): ``"fp32"`` (the default) runs every step in float32;
``"bf16"`` runs the family's forward passes and losses under ``torch.autocast`` with bfloat16
on the run's device (CUDA or CPU): matrix products and convolutions in bf16, reductions, losses
and the ops autocast keeps in float32 in float32. Weights, gradients and optimizer states stay
float32; the backward pass and the optimizer step run outside autocast
(:meth:`genlab.train.optim.Optimizers.minimize`), validation in float32. bf16 keeps float32's
exponent range, so no loss scaling is needed (float16 would need it and is not offered). It
pays on GPUs with bf16 units; on CPUs without them it is usually slower than float32.

**Compilation** (``compile``): the family's networks (the model's direct submodules with
trainable parameters) run their ``forward`` through ``torch.compile`` during the training
steps; validation, callbacks and everything after training run the same modules eagerly, so
the compiled graphs see one mode (training) and one use. The first step of each batch size
pays a compilation (tens of seconds on CPU: inductor writes and builds C++; the epoch's shorter
last batch compiles once more), which the run records (``compile_seconds`` in
``summary.json``, the summed wall time of those steps, and ``compiled_batch_sizes``) so that
a user can see whether the run's length paid it back. Inductor needs a C++ compiler on CPU and
Triton on CUDA; their absence is a :class:`~genlab.errors.ConfigError` before training starts.

Neither is bit-identical to the float32 eager step: a compiled or bf16 run gives slightly
different numbers (float32 compiled code may fuse and reorder arithmetic), and resuming one
continues it in the same mode.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal, get_args

import torch
from torch import nn

from genlab.errors import ConfigError

if TYPE_CHECKING:
    from genlab.models.base import GenerativeModel

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """The context a training step runs in: bf16 autocast on ``device``, or nothing (fp32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def outside_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """Leave autocast (if on) for a backward pass and an optimizer step."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def check_compilable(device: torch.device) -> None:
    """Raise :class:`ConfigError` if ``torch.compile``'s default backend cannot build on ``device``.

    Inductor compiles generated C++ on CPU (the compiler named by ``CXX``, else ``g++``,
    ``clang++`` or ``c++``) and Triton kernels on CUDA.
    """
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            raise ConfigError(
                "compile=true on cuda needs Triton (torch.compile's GPU code generator): "
                "pip install triton, or train without --compile"
            )
        return
    candidates = [os.environ.get("CXX"), "g++", "clang++", "c++"]
    if not any(c and shutil.which(c) for c in candidates):
        raise ConfigError(
            "compile=true on cpu needs a C++ compiler (torch.compile's inductor builds C++): "
            "install g++ or clang++ (or set CXX), or train without --compile"
        )


def compiled_networks(model: GenerativeModel) -> list[nn.Module]:
    """The networks a training step runs: ``model``'s direct submodules with trainable
    parameters (frozen copies such as weight averages are left out), less those it
    differentiates twice (:meth:`~genlab.models.GenerativeModel.differentiated_twice`)."""
    eager_names = model.differentiated_twice()
    return [
        child
        for name, child in model.named_children()
        if name not in eager_names and any(p.requires_grad for p in child.parameters())
    ]


@contextlib.contextmanager
def compiling(model: GenerativeModel) -> Iterator[list[nn.Module]]:
    """Within the block, each of :func:`compiled_networks` runs ``torch.compile(forward)``;
    after it, the modules are as they were (their state dicts never change).

    Compiled backward passes keep their saved buffers (no "donated buffers"): families whose
    step backpropagates twice through one graph (``retain_graph``: the GAN's players) need them.
    """
    import torch._functorch.config as functorch_config

    networks = compiled_networks(model)
    for network in networks:
        network.forward = torch.compile(network.forward)
    try:
        with functorch_config.patch(donated_buffer=False):
            yield networks
    finally:
        for network in networks:
            del network.forward  # the instance attribute: the class's forward again


def eager() -> contextlib.AbstractContextManager:
    """Run compiled functions eagerly inside the block (validation, callbacks, checkpoints)."""
    return torch.compiler.set_stance("force_eager")
