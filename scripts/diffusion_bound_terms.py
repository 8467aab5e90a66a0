"""Where a diffusion model's bound goes: its terms summed by band of log signal-to-noise ratio.

The variational bound (:func:`genlab.samplers.diffusion.variational_bound`) is the prior term
plus one term :math:`L_t` per step; this script draws one :math:`x_t` per step and test image
(:func:`genlab.samplers.diffusion.bound_terms`, as the bound does) and prints each band's share
in bits/dim with its number of steps and its nats per step, the decoder's term
(:math:`t = 0`) and the prior's apart. On discrete data a
network that must learn the rounding to the levels pays most at high :math:`\\lambda_t`, where
the noise is below a level's width (``snap`` removes that: ``genlab.samplers.diffusion
.snap_to_levels``).

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/diffusion_bound_terms.py RUN
[--data DATA] [--images 100] [--seed 0]`` (``--data``: the run's data file if it has moved;
the first ``--images`` test images are scored).
"""

from __future__ import annotations

import argparse
import math

import torch

import genlab
from genlab.samplers.diffusion import bound_terms, prior_kl

BANDS = (11.0, 9.0, 6.0, 3.0, 0.0, -3.0)  # lower edges of the bands of lambda_t, high to low


def band_name(index: int) -> str:
    """``"lambda > 11"``, ``"9 < lambda <= 11"``, ..., ``"lambda <= -3"``."""
    if index == 0:
        return f"lambda > {BANDS[0]:g}"
    if index == len(BANDS):
        return f"lambda <= {BANDS[-1]:g}"
    return f"{BANDS[index]:g} < lambda <= {BANDS[index - 1]:g}"


def band_of(log_snr: float) -> int:
    """The index of the band holding ``log_snr``."""
    return next((i for i, edge in enumerate(BANDS) if log_snr > edge), len(BANDS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--data", help="the run's data file, if it has moved")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = genlab.load(args.run)
    data = genlab.data.load(args.data) if args.data else genlab.api.run_dataset(args.run)
    x0 = model.to_model(data.x_test[: args.images])
    to_bits = 1 / (model.info.n_features * math.log(2))
    generator = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():  # as log_prob(x, generator=...) draws them: the same total
        terms = bound_terms(model.process, x0, generator=generator).double().mean(1)
    log_snr = model.schedule.log_snr.tolist()
    rows = [("prior KL", 0, float(prior_kl(model.schedule, x0).double().mean()))]
    rows.append(("t = 0 (decoder)", 1, float(terms[0])))
    for index in range(len(BANDS) + 1):
        chosen = [t for t in range(1, len(terms)) if band_of(log_snr[t]) == index]
        rows.append((band_name(index), len(chosen), float(terms[chosen].sum()) if chosen else 0.0))
    print(f"{args.run}: {len(x0)} test images, T = {len(terms)}, one draw of x_t per step")
    print(f"| {'terms':<18} | steps | bits/dim | nats/step |")
    print(f"|{'-' * 20}|------:|---------:|----------:|")
    for name, steps, nats in rows:
        per_step = f"{nats / steps:9.2f}" if steps else " " * 9
        print(f"| {name:<18} | {steps:>5} | {nats * to_bits:8.3f} | {per_step} |")
    print(f"| {'bound':<18} | {len(terms):>5} | {sum(r[2] for r in rows) * to_bits:8.3f} |")


if __name__ == "__main__":
    main()
