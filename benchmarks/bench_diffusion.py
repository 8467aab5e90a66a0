"""genlab's diffusion samplers against diffusers' schedulers, with the same network: speed and
agreement; and the cost of the full variational bound, which diffusers does not compute.

One trained denoiser (``genlab``'s diffusion family on digits, epsilon prediction, fixed
posterior variances so that both libraries run the same chain), in one process:

- DDPM: ``genlab.samplers.diffusion.ancestral_sample`` against a loop over diffusers'
  ``DDPMScheduler.step`` (``variance_type="fixed_small"``, no clipping), T = 1000 steps from
  the same x_T with the same noise; samples per second and the largest difference;
- DDIM, 50 steps (``trailing`` spacing): ``ddim_sample`` against ``DDIMScheduler.step``;
- the bound: every one of the T terms for a batch of test images (``variational_bound``),
  terms per second (no peer computes it).

The network is the same callable in both loops, so the ratio measures the samplers' overhead
per step (the network's cost is shared). Timings on a shared machine are noisy; compare within
one run.

Run: ``python -m benchmarks --only diffusion`` (needs diffusers, in the ``bench`` and ``test``
extras).
"""

from __future__ import annotations

from typing import Any

import torch

import genlab
from benchmarks.report import ratio
from benchmarks.timing import best_of
from genlab.samplers.diffusion import ancestral_sample, ddim_sample, variational_bound

NAME = "diffusion"
TITLE = "DDPM (T = 1000) and DDIM (50 steps) sampling loops, same denoiser, 8x8 digits"
DDIM_STEPS = 50


def _diffusers_loop(scheduler: Any, model: Any, x: torch.Tensor, steps: int, seed: int):
    """Sample with a diffusers scheduler and genlab's network (epsilon output)."""
    scheduler.set_timesteps(steps)
    net = model.averaged["denoiser"]
    generator = torch.Generator().manual_seed(seed)
    for t in scheduler.timesteps:
        step = torch.full((len(x),), int(t), dtype=torch.long)
        eps = net(x.flatten(1), step).view_as(x)
        x = scheduler.step(eps, int(t), x, generator=generator).prev_sample
    return x


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    from diffusers import DDIMScheduler, DDPMScheduler

    data = genlab.data.load("digits")
    n, repeats = (16, 1) if quick else (64, 3)
    model = genlab.fit(
        "diffusion", data, steps=50 if quick else 500, prediction="epsilon",
        variance="fixed_small", loss="simple", schedule="linear", hidden=(256, 256, 256),
        val_fraction=0.0, seed=seed,
    )  # fmt: skip
    process = model.process
    x = torch.randn(n, *data.info.event_shape, generator=torch.Generator().manual_seed(seed))
    ddpm = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
        variance_type="fixed_small",
    )  # fmt: skip
    ddim = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
        timestep_spacing="trailing",
    )  # fmt: skip
    with torch.no_grad():
        runs = {
            "genlab DDPM": lambda: ancestral_sample(process, x, progress=False)[0],
            "diffusers DDPM": lambda: _diffusers_loop(ddpm, model, x, 1000, seed),
            "genlab DDIM-50": lambda: ddim_sample(process, x, DDIM_STEPS, progress=False),
            "diffusers DDIM-50": lambda: _diffusers_loop(ddim, model, x, DDIM_STEPS, seed),
        }
        timings = {name: best_of(fn, repeats) for name, fn in runs.items()}
        ddim_difference = float(
            (timings["genlab DDIM-50"][1] - timings["diffusers DDIM-50"][1]).abs().max()
        )
        x_test = model.to_model(data.x_test[:n])
        bound_seconds, _ = best_of(
            lambda: variational_bound(process, x_test, progress=False), repeats
        )
    rows = [
        {"implementation": name, "samples_per_s": n / seconds, "seconds": seconds}
        for name, (seconds, _) in timings.items()
    ]
    rows.append(
        {
            "implementation": "genlab bound, all 1000 terms",
            "samples_per_s": n / bound_seconds,
            "seconds": bound_seconds,
        }
    )
    speed = {row["implementation"]: row["samples_per_s"] for row in rows}
    return {
        "threads": torch.get_num_threads(),
        "columns": [
            ["implementation", "implementation"],
            ["samples_per_s", "images/s"],
            ["seconds", "seconds"],
        ],
        "rows": rows,
        "notes": [
            f"{n} images, best of {repeats}; deterministic DDIM-50: largest difference between "
            f"the libraries {ddim_difference:.1e} (diffusers rounds its schedule to float32; on "
            "the same float64 schedule the tests find 1e-6 agreement); the DDPM loops draw their "
            "noise differently, so only their speed is compared"
        ],
        "ratios": [
            ratio(
                "DDPM images/s, genlab / diffusers", speed["genlab DDPM"] / speed["diffusers DDPM"]
            ),
            ratio(
                "DDIM-50 images/s, genlab / diffusers",
                speed["genlab DDIM-50"] / speed["diffusers DDIM-50"],
            ),
            ratio("DDIM-50 largest difference, genlab vs diffusers", ddim_difference),
        ],
    }
