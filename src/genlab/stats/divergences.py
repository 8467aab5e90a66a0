r"""Divergences between discrete distributions, and f-divergences from a convex :math:`f`.

For probability vectors :math:`p, q` over the same outcomes (last axis; inputs are
normalised to sum to one), an f-divergence is

.. math::
    D_f(P \,\|\, Q) = \sum_i q_i\, f\!\left(\frac{p_i}{q_i}\right),

for :math:`f` convex with :math:`f(1) = 0`, with the conventions :math:`0 f(0/0) = 0` and
:math:`0 f(a/0) = a\, f'(\infty)`, :math:`f'(\infty) = \lim_{t\to\infty} f(t)/t`
(Csiszar 1967; Ali & Silvey 1966). By Jensen, :math:`D_f \ge 0`, with equality iff
:math:`P = Q` when :math:`f` is strictly convex at 1. All values are in nats.

References:
    Csiszar, "Information-type measures of difference of probability distributions", 1967.
    Nowozin, Cseke & Tomioka, "f-GAN", NeurIPS 2016, arXiv:1606.00709.
    Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. IT, 1991.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.stats.validation import ArrayLike, as_probability_pair


@dataclass(frozen=True)
class FDivergence:
    """A convex generator :math:`f` with :math:`f(1) = 0` and its slope at infinity.

    Attributes:
        name: a short name.
        f: elementwise :math:`f(t)` for :math:`t \\ge 0` (finite or ``inf`` at 0).
        slope_at_infinity: :math:`\\lim_{t\\to\\infty} f(t)/t` (``math.inf`` for KL, chi^2).
        symmetric: whether :math:`D_f(P\\|Q) = D_f(Q\\|P)` (iff :math:`f(t) - t f(1/t)` is
            linear in :math:`t - 1`).
    """

    name: str
    f: Callable[[Tensor], Tensor]
    slope_at_infinity: float
    symmetric: bool = False


def _kl(t: Tensor) -> Tensor:
    return torch.xlogy(t, t)


def _reverse_kl(t: Tensor) -> Tensor:
    return -torch.log(t)


def _tv(t: Tensor) -> Tensor:
    return 0.5 * (t - 1).abs()


def _chi2(t: Tensor) -> Tensor:
    return (t - 1).square()


def _hellinger(t: Tensor) -> Tensor:
    return 0.5 * (t.sqrt() - 1).square()


def _js(t: Tensor) -> Tensor:
    return 0.5 * (torch.xlogy(t, t) - torch.xlogy(1 + t, (1 + t) / 2))


#: The f-divergences by name: KL :math:`t\log t`, reverse KL :math:`-\log t`, total variation
#: :math:`\tfrac12|t-1|`, Pearson :math:`\chi^2` :math:`(t-1)^2`, squared Hellinger
#: :math:`\tfrac12(\sqrt t-1)^2` and Jensen-Shannon
#: :math:`\tfrac12[t\log t-(1+t)\log\tfrac{1+t}2]`.
F_DIVERGENCES: dict[str, FDivergence] = {
    "kl": FDivergence("kl", _kl, math.inf),
    "reverse_kl": FDivergence("reverse_kl", _reverse_kl, 0.0),
    "tv": FDivergence("tv", _tv, 0.5, symmetric=True),
    "chi2": FDivergence("chi2", _chi2, math.inf),
    "hellinger": FDivergence("hellinger", _hellinger, 0.5, symmetric=True),
    "js": FDivergence("js", _js, 0.5 * math.log(2.0), symmetric=True),
}


def f_divergence(p: ArrayLike, q: ArrayLike, f: FDivergence | str) -> Tensor:
    r""":math:`D_f(P\|Q) = \sum_i q_i f(p_i / q_i)` with the conventions of the module docstring.

    Arguments:
        p, q: probability vectors ``(..., K)`` (normalised along the last axis).
        f: an :class:`FDivergence` or a key of :data:`F_DIVERGENCES`.

    Returns:
        ``(...)`` float64 divergences (``inf`` where :math:`P \not\ll Q` and
        :math:`f'(\infty) = \infty`).

    Example:
        >>> float(f_divergence([0.5, 0.5], [0.9, 0.1], "tv"))
        0.4
    """
    if isinstance(f, str):
        if f not in F_DIVERGENCES:
            raise ConfigError(
                f"unknown f-divergence {f!r}; choose one of {', '.join(F_DIVERGENCES)}"
            )
        f = F_DIVERGENCES[f]
    p, q = as_probability_pair(p, q)
    if float(f.f(torch.ones((), dtype=torch.float64))) != 0.0:
        raise ConfigError(f"f-divergence {f.name!r}: f(1) must be 0")
    support = q > 0
    ratio = torch.where(support, p / torch.where(support, q, 1.0), 1.0)
    inside = torch.where(support, q * f.f(ratio), 0.0)
    outside_mass = torch.where(support, 0.0, p)
    if math.isinf(f.slope_at_infinity):
        outside = torch.where(outside_mass > 0, math.inf, 0.0)
    else:
        outside = outside_mass * f.slope_at_infinity
    return (inside + outside).sum(-1)


def kl_divergence(p: ArrayLike, q: ArrayLike) -> Tensor:
    r"""Kullback-Leibler divergence :math:`\mathrm{KL}(P\|Q) = \sum_i p_i \log(p_i / q_i)` (nats).

    ``inf`` when some :math:`p_i > 0 = q_i`. Equals ``scipy.stats.entropy(p, q)``.
    """
    p, q = as_probability_pair(p, q)
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def js_divergence(p: ArrayLike, q: ArrayLike) -> Tensor:
    r"""Jensen-Shannon divergence :math:`\tfrac12\mathrm{KL}(P\|M) + \tfrac12\mathrm{KL}(Q\|M)`,
    :math:`M = \tfrac12(P + Q)`; in :math:`[0, \log 2]` nats.

    Equals ``scipy.spatial.distance.jensenshannon(p, q) ** 2`` (which returns its square root).
    """
    p, q = as_probability_pair(p, q)
    m = 0.5 * (p + q)
    return 0.5 * (kl_divergence(p, m) + kl_divergence(q, m))


def tv_distance(p: ArrayLike, q: ArrayLike) -> Tensor:
    r"""Total variation :math:`\mathrm{TV}(P,Q) = \sup_A |P(A) - Q(A)| = \tfrac12\sum_i |p_i - q_i|`."""
    p, q = as_probability_pair(p, q)
    return 0.5 * (p - q).abs().sum(-1)
