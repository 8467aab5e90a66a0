r"""Birthday-paradox estimate of a generator's support size (Arora & Zhang 2017).

If a distribution is uniform on :math:`S` points, a batch of :math:`s` draws holds a repeated
point with probability :math:`1 - \prod_{i<s}(1 - i/S) \approx 1 - e^{-s(s-1)/2S}`, which
passes 1/2 at :math:`s \approx \sqrt{2S\ln 2}`. Conversely, if batches of :math:`s` samples
hold a near-duplicate pair with probability at least 1/2, the support is about :math:`s^2`
(for a uniform support of :math:`S` points, :math:`s^2 \approx 2\ln2\, S \approx 1.4\,S`).

genlab automates the test: two samples are *near-duplicates* when their Euclidean distance is
below a threshold :math:`\tau` calibrated on real data (:func:`duplicate_threshold`: the
``quantile`` of the real examples' nearest-neighbour distances, so only that fraction of real
examples has a near-duplicate among the others). Each repetition draws a stream of samples and
records :math:`T`, the number of samples drawn when the first near-duplicate pair appears;
:math:`\Pr(\text{duplicate in a batch of } s) = \Pr(T \le s)`, so the smallest :math:`s` with
probability :math:`\ge 1/2` is the (lower) median of :math:`T` over repetitions, and the support
estimate is its square. The near-duplicate pairs are kept for a person to look at
(the report layer draws them: :func:`genlab.report.save_pairs`), as the paper did by eye.

References:
    Arora & Zhang, "Do GANs actually learn the distribution? An empirical study", 2017,
    arXiv:1706.08224.
    Arora, Risteski & Zhang, "Do GANs learn the distribution? Some theory and empirics",
    ICLR 2018.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.config import check
from genlab.errors import DataError
from genlab.stats.kernels import squared_distances
from genlab.stats.knn import knn_distances
from genlab.stats.validation import ArrayLike, as_samples

Sampler = Callable[[int, torch.Generator], Tensor]
SCAN_CHUNK = 256


def duplicate_threshold(real: ArrayLike, *, quantile: float = 0.01) -> float:
    """:math:`\\tau`: the ``quantile`` of real examples' nearest-neighbour distances."""
    check(0.0 < quantile < 1.0, f"quantile must be in (0, 1), got {quantile}")
    x = as_samples(real, "real")
    if len(x) < 3:
        raise DataError("calibrating the duplicate threshold needs at least 3 real examples")
    return float(torch.quantile(knn_distances(x, x, 1, skip_self=True), quantile))


def first_duplicate(z: Tensor, threshold: float) -> tuple[int, int, int] | None:
    """``(s, i, j)``: the first index ``j`` (``s = j + 1`` samples) that lies within
    ``threshold`` of an earlier row ``i`` (the closest such), or ``None``."""
    limit = threshold**2
    for start in range(0, len(z), SCAN_CHUNK):
        stop = min(start + SCAN_CHUNK, len(z))
        d = squared_distances(z[start:stop], z[:stop])  # (c, stop)
        rows = torch.arange(start, stop, device=z.device)[:, None]
        d[torch.arange(stop, device=z.device)[None, :] >= rows] = math.inf  # only i < j
        hit = (d < limit).any(1)
        if bool(hit.any()):
            row = int(hit.nonzero()[0])
            return start + row + 1, int(d[row].argmin()), start + row
    return None


@dataclass(frozen=True)
class BirthdayResult:
    """Attributes:
    threshold: :math:`\\tau`.
    batch_size: smallest :math:`s` with :math:`\\Pr(\\text{duplicate}) \\ge 1/2`, or ``None``
        if more than half the repetitions found none within ``max_batch`` samples.
    support: :math:`s^2` (``None`` with ``batch_size``: then the support exceeds
        ``max_batch ** 2``).
    first_duplicates: :math:`T` of each repetition (``None``: no duplicate).
    pairs_a, pairs_b: ``(P, ...)`` the near-duplicate pairs, closest first.
    pair_distances: ``(P,)``.
    """

    threshold: float
    batch_size: int | None
    support: int | None
    first_duplicates: tuple[int | None, ...]
    max_batch: int
    pairs_a: Tensor
    pairs_b: Tensor
    pair_distances: Tensor

    def duplicate_probability(self, s: int) -> float:
        """Fraction of repetitions with a near-duplicate among the first ``s`` samples."""
        hits = [t is not None and t <= s for t in self.first_duplicates]
        return sum(hits) / len(hits)

    def to_json(self) -> dict[str, float | int | None]:
        return {
            "birthday_batch_size": self.batch_size,
            "birthday_support": self.support,
            "birthday_threshold": self.threshold,
            "birthday_max_batch": self.max_batch,
        }


def birthday_support(
    sample: Sampler | Tensor,
    threshold: float,
    *,
    n_repetitions: int = 20,
    max_batch: int = 2048,
    generator: torch.Generator | None = None,
) -> BirthdayResult:
    """Smallest batch size with a near-duplicate with probability >= 1/2, and :math:`s^2`.

    Arguments:
        sample: ``(n, generator) -> (n, ...)`` drawing fresh samples (one stream of
            ``max_batch`` per repetition), or a tensor pool of samples (each repetition scans
            a random permutation of it).
        threshold: :math:`\\tau` (see :func:`duplicate_threshold`).
        n_repetitions: streams to scan.
        max_batch: longest stream (a pool of fewer samples gives streams of its size, and
            the result's ``max_batch`` says so).
        generator: randomness of the sampler or of the permutations.
    """
    check(n_repetitions >= 1, f"n_repetitions must be positive, got {n_repetitions}")
    check(threshold > 0, f"threshold must be positive, got {threshold}")
    if isinstance(sample, Tensor):
        max_batch = min(max_batch, len(sample))
    found: list[int | None] = []
    pairs: list[tuple[float, Tensor, Tensor]] = []
    for _ in range(n_repetitions):
        if isinstance(sample, Tensor):
            order = torch.randperm(len(sample), generator=generator)[:max_batch]
            stream = sample[order.to(sample.device)]
        else:
            stream = sample(max_batch, generator)
        flat = as_samples(stream, "samples")
        hit = first_duplicate(flat, threshold)
        if hit is None:
            found.append(None)
            continue
        s, i, j = hit
        found.append(s)
        pairs.append((float((flat[i] - flat[j]).norm()), stream[i].cpu(), stream[j].cpu()))
    ordered = sorted(math.inf if t is None else t for t in found)
    median = ordered[math.ceil(len(ordered) / 2) - 1]
    batch_size = None if math.isinf(median) else int(median)
    pairs.sort(key=lambda p: p[0])
    shape = tuple(stream.shape[1:])
    return BirthdayResult(
        threshold=threshold,
        batch_size=batch_size,
        support=None if batch_size is None else batch_size**2,
        first_duplicates=tuple(found),
        max_batch=max_batch,
        pairs_a=torch.stack([p[1] for p in pairs]) if pairs else torch.empty(0, *shape),
        pairs_b=torch.stack([p[2] for p in pairs]) if pairs else torch.empty(0, *shape),
        pair_distances=torch.tensor([p[0] for p in pairs], dtype=torch.float64),
    )
