"""The 28x28 denoiser's training step: genlab's U-Net on 2x2 patches (the default on 28x28
images), the same U-Net at full resolution, and diffusers' ``UNet2DModel`` of the same widths.

One training step (forward, mean-square loss on the output, backward, Adam) on a batch of
random 28x28 single-channel images at random timesteps, each network with two outputs a pixel
(the prediction and the learned variance's interpolation, as the diffusion family's default):

- genlab ``UNet((1, 28, 28), channels=32, blocks=1, patch=2)`` (the ``images`` settings
  layer's width): 4 x 14 x 14 inside, levels 14 and 7 with 32 and 64 channels;
- genlab ``UNet(..., patch=1)``: levels 28, 14 and 7 with 32, 64 and 128 channels;
- diffusers ``UNet2DModel(block_out_channels=(32, 64, 128), layers_per_block=1)`` with plain
  ResNet blocks (no attention), the same three levels as genlab's full-resolution U-Net;
- the default's capacity variants on 2x2 patches, whose quality README's 28x28 section
  measures: 16 channels (``genlab compare``'s time share on large images), 48 channels, and two
  residual blocks a level (``blocks=2``).

Steps per second, median of repeats; the ratios say how much the patches save a step, where
genlab's full-resolution U-Net stands against the peer, and what each variant's step costs
against the default's (no target: the patches and widths are modelling choices, whose quality
README's 28x28 scorecard measures).

Run: ``python -m benchmarks --only denoiser`` (needs diffusers, in the ``bench`` and ``test``
extras).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from benchmarks.report import ratio
from benchmarks.timing import median_seconds
from genlab.models.diffusion import Diffusion
from genlab.nn.denoisers import UNet

NAME = "denoiser"
TITLE = "one training step of a 28x28 diffusion denoiser: patches, full resolution, diffusers"
TIMESTEPS = 250
CHANNELS = Diffusion.large_image_budgets["fast"]["channels"]  # the 28x28 default's width


def _step(net: torch.nn.Module, forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
          x: torch.Tensor, t: torch.Tensor) -> Callable[[], None]:  # fmt: skip
    """One Adam step of ``net`` on the mean square of ``forward(x, t)``."""
    optimizer = torch.optim.Adam(net.parameters(), 1e-4)

    def step() -> None:
        loss = forward(x, t).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    batch, repeats = (32, 3) if quick else (128, 5)
    x = torch.randn(batch, 1, 28, 28)
    t = torch.randint(0, TIMESTEPS, (batch,))
    patched = UNet((1, 28, 28), TIMESTEPS, CHANNELS, blocks=1, out_factor=2, patch=2)
    full = UNet((1, 28, 28), TIMESTEPS, CHANNELS, blocks=1, out_factor=2, patch=1)
    peer = UNet2DModel(
        sample_size=28, in_channels=1, out_channels=2, layers_per_block=1,
        block_out_channels=(CHANNELS, 2 * CHANNELS, 4 * CHANNELS), norm_num_groups=8,
        down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
    )  # fmt: skip
    networks = {
        "genlab U-Net, 2x2 patches (the 28x28 default)": (patched, patched),
        "genlab U-Net, full resolution": (full, full),
        "diffusers UNet2DModel, full resolution": (peer, lambda x, t: peer(x, t).sample),
    }
    variants = {  # name: (channels, blocks)
        f"2x2 patches, {CHANNELS // 2} channels (compare's time share)": (CHANNELS // 2, 1),
        f"2x2 patches, {CHANNELS * 3 // 2} channels": (CHANNELS * 3 // 2, 1),
        "2x2 patches, blocks=2": (CHANNELS, 2),
    }
    for name, (channels, blocks) in variants.items():
        net = UNet((1, 28, 28), TIMESTEPS, channels, blocks=blocks, out_factor=2, patch=2)
        networks[f"genlab U-Net, {name}"] = (net, net)
    rows = []
    for name, (net, forward) in networks.items():
        seconds = median_seconds(_step(net, forward, x, t), repeats=repeats)
        parameters = sum(p.numel() for p in net.parameters())
        rows.append({"network": name, "parameters": parameters, "steps_per_s": 1 / seconds})
    speed = [row["steps_per_s"] for row in rows]
    return {
        "threads": torch.get_num_threads(),
        "columns": [
            ["network", "network"],
            ["parameters", "parameters"],
            ["steps_per_s", "steps/s"],
        ],
        "rows": rows,
        "notes": [f"batch {batch} of 28x28 images, median of {repeats} steps after one warm-up"],
        "ratios": [
            ratio("steps/s, genlab patches / genlab full resolution", speed[0] / speed[1]),
            ratio("steps/s, genlab full resolution / diffusers", speed[1] / speed[2]),
            *(
                ratio(f"step seconds, {name} / the default", speed[0] / speed[3 + i])
                for i, name in enumerate(variants)
            ),
        ],
    }
