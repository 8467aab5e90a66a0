r"""Mode coverage on the 2-D mixtures, the protocol of VEEGAN and PacGAN.

Given samples and the mixture's centres :math:`\mu_k` and component std :math:`s`:

- a sample is *high quality* if it lies within :math:`3s` of its nearest centre;
- a mode is *captured* if it is the nearest centre of at least one high-quality sample;
- ``mode_kl`` is the reverse KL between the histogram :math:`q` of nearest modes of the
  high-quality samples and the uniform histogram: :math:`\sum_k q_k \log(K q_k)`.

The papers use 2,500 generated samples (:data:`N_SAMPLES`).

References:
    Srivastava et al., "VEEGAN", NeurIPS 2017, arXiv:1705.07761.
    Lin et al., "PacGAN", NeurIPS 2018, arXiv:1712.04086.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.data.dataset import DataInfo
from genlab.errors import DataError

N_SAMPLES = 2500
QUALITY_STDS = 3.0


@dataclass(frozen=True)
class ModeCoverageResult:
    modes_captured: int
    n_modes: int
    hq_fraction: float
    mode_kl: float
    counts: tuple[int, ...]

    def to_json(self) -> dict[str, float | int]:
        return {
            "modes_captured": self.modes_captured,
            "n_modes": self.n_modes,
            "hq_fraction": self.hq_fraction,
            "mode_kl": self.mode_kl,
        }


def mode_coverage(samples: Tensor, centres: Tensor, std: float) -> ModeCoverageResult:
    """Modes captured, high-quality fraction and mode KL of ``(N, 2)`` samples (see module)."""
    if samples.dim() != 2 or samples.shape[1] != centres.shape[1]:
        raise DataError(
            f"samples of shape {tuple(samples.shape)} do not match {centres.shape[1]}-D centres"
        )
    centres = centres.to(torch.float64)
    distances = torch.cdist(samples.detach().double().cpu(), centres.cpu())
    nearest_distance, nearest = distances.min(dim=1)
    high_quality = nearest_distance <= QUALITY_STDS * std
    counts = torch.bincount(nearest[high_quality], minlength=len(centres))
    n_hq = int(high_quality.sum())
    if n_hq:
        q = counts.double() / n_hq
        mode_kl = float((q[q > 0] * (q[q > 0] * len(centres)).log()).sum())
    else:
        mode_kl = math.inf
    return ModeCoverageResult(
        modes_captured=int((counts > 0).sum()),
        n_modes=len(centres),
        hq_fraction=n_hq / len(samples),
        mode_kl=mode_kl,
        counts=tuple(counts.tolist()),
    )


def mode_coverage_for(samples: Tensor, info: DataInfo) -> ModeCoverageResult:
    """:func:`mode_coverage` with the centres and std recorded in the dataset's metadata."""
    if info.mode_centres is None or info.mode_std is None:
        raise DataError(f"{info.name}: mode coverage needs a mixture dataset (ring, grid)")
    return mode_coverage(samples, torch.tensor(info.mode_centres), info.mode_std)
