r"""Two-sample tests of :math:`H_0: P = Q` at level :math:`\alpha`, and their level and power.

Permutation tests (:func:`permutation_test`): the statistic :math:`T` of the observed split of
the pooled sample is compared with :math:`T_1..T_B` of :math:`B` random re-splits; under
:math:`H_0` all splits are exchangeable, so

.. math::
    p = \frac{1 + \#\{b: T_b \ge T\}}{1 + B}

is a valid p-value, :math:`\Pr(p \le \alpha) \le \alpha` exactly for any :math:`B`
(Phipson & Smyth 2010). The threshold is the :math:`(\lfloor\alpha(B+1)\rfloor)`-th largest
:math:`T_b`, and :math:`T` above it :math:`\Leftrightarrow p \le \alpha`. Statistics: unbiased
:math:`\mathrm{MMD}^2_u` (RBF kernel, median-heuristic bandwidth on the pooled sample, which is
permutation invariant), the energy distance, and the squared distance between means
:math:`\|\bar x - \bar y\|^2`. All re-splits share one pooled Gram/distance matrix
:math:`K`; with indicator rows :math:`s_b` of the first group, the within-group sums are
:math:`s_b^\top K s_b`, computed for all :math:`b` as one matrix product.

The classifier two-sample test (C2ST, :func:`classifier_test`) trains a classifier on half of
each sample (labels 1 for ``x``, 0 for ``y``) and counts correct predictions :math:`C` on the
other halves (:math:`n_{te}` points); under :math:`H_0`, :math:`C \sim \mathrm{Bin}(n_{te},
1/2)`, so :math:`p = \Pr(\mathrm{Bin}(n_{te}, \tfrac12) \ge C)`. The larger sample is
subsampled to the size of the smaller so that chance accuracy is exactly 1/2.

References:
    Gretton et al., "A kernel two-sample test", JMLR 2012.
    Szekely & Rizzo, "Testing for equal distributions in high dimension", InterStat 2004.
    Phipson & Smyth, "Permutation p-values should never be zero", SAGMB 2010,
    arXiv:1603.05766.
    Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", ICLR 2017, arXiv:1610.06545.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from genlab.config import check
from genlab.errors import ConfigError
from genlab.stats.kernels import Kernel, RBFKernel
from genlab.stats.mmd import euclidean_distances
from genlab.stats.validation import ArrayLike, as_sample_pair

PermutationStatistic = Literal["mmd", "energy", "mean"]
PERMUTATION_STATISTICS: tuple[str, ...] = get_args(PermutationStatistic)
C2STClassifier = Literal["logistic", "knn"]
C2ST_CLASSIFIERS: tuple[str, ...] = get_args(C2STClassifier)
#: ``fit_predict(x_train, y_train, x_test) -> predicted labels`` (numpy arrays).
FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
Sampler = Callable[[int, torch.Generator], Tensor]

N_PERMUTATIONS = 500
PERMUTATION_BATCH = 256


@dataclass(frozen=True)
class TestResult:
    """Outcome of a two-sample test.

    Attributes:
        statistic: the test statistic on the observed samples.
        p_value: probability under :math:`H_0` of a statistic at least as extreme.
        threshold: critical value: ``reject`` iff ``statistic > threshold``
            (equivalently ``p_value <= alpha``).
        reject: whether :math:`H_0: P = Q` is rejected at level ``alpha``.
        alpha: the level.
        test: which test (``"mmd"``, ``"energy"``, ``"mean"``, ``"c2st"``).
    """

    __test__ = False  # not a pytest test class

    statistic: float
    p_value: float
    threshold: float
    reject: bool
    alpha: float
    test: str

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "reject": self.reject,
            "alpha": self.alpha,
        }


def _check_alpha(alpha: float) -> None:
    check(0.0 < alpha < 1.0, f"alpha must be in (0, 1), got {alpha}")


def _split_statistics(
    z: Tensor, n: int, indicators: Tensor, statistic: str, kernel: Kernel | None
) -> Tensor:
    """Statistic of every split: ``indicators`` ``(B, N)`` marks the first group (n ones)."""
    big_n = len(z)
    m = big_n - n
    s = indicators.to(z.dtype)
    if statistic == "mean":
        sum_x = s @ z  # (B, d)
        mean_y = (z.sum(0) - sum_x) / m
        return (sum_x / n - mean_y).square().sum(1)
    if statistic == "mmd":
        gram = (kernel or RBFKernel()).fitted(z)(z, z)
    else:  # energy: biased MMD^2 of the kernel -||x - y||
        gram = -euclidean_distances(z, z)
    ks = s @ gram  # (B, N)
    s_xx = (ks * s).sum(1)
    s_xy = ks.sum(1) - s_xx
    s_yy = gram.sum() - s_xx - 2 * s_xy
    if statistic == "energy":
        return (s_xx / n**2 + s_yy / m**2 - 2 * s_xy / (n * m)).clamp_min(0).sqrt()
    tr_x = s @ gram.diagonal()
    tr_y = gram.diagonal().sum() - tr_x
    return (s_xx - tr_x) / (n * (n - 1)) + (s_yy - tr_y) / (m * (m - 1)) - 2 * s_xy / (n * m)


def permutation_test(
    x: ArrayLike,
    y: ArrayLike,
    statistic: PermutationStatistic = "mmd",
    *,
    alpha: float = 0.05,
    n_permutations: int = N_PERMUTATIONS,
    kernel: Kernel | None = None,
    generator: torch.Generator | None = None,
) -> TestResult:
    r"""Permutation test of :math:`P = Q` with an MMD, energy or mean-difference statistic.

    Arguments:
        x, y: ``(n, d)`` and ``(m, d)`` samples (at least 2 each).
        statistic: ``"mmd"`` (:math:`\mathrm{MMD}^2_u`), ``"energy"`` (energy distance) or
            ``"mean"`` (:math:`\|\bar x-\bar y\|^2`).
        alpha: level.
        n_permutations: :math:`B` random re-splits.
        kernel: MMD kernel (default: RBF, median heuristic on the pooled sample).
        generator: randomness of the re-splits (on the CPU).

    Memory: the pooled :math:`N \times N` matrix (MMD, energy) plus
    :data:`PERMUTATION_BATCH` :math:`\times N` indicators.
    """
    _check_alpha(alpha)
    check(n_permutations >= 1, f"n_permutations must be positive, got {n_permutations}")
    if statistic not in PERMUTATION_STATISTICS:
        raise ConfigError(
            f"unknown statistic {statistic!r}; choose one of {', '.join(PERMUTATION_STATISTICS)}"
        )
    a, b = as_sample_pair(x, y, min_rows=2)
    z = torch.cat([a, b])
    n, big_n = len(a), len(z)
    observed = torch.zeros(1, big_n, dtype=torch.bool, device=z.device)
    observed[0, :n] = True
    null = []
    for start in range(0, n_permutations, PERMUTATION_BATCH):
        batch = min(PERMUTATION_BATCH, n_permutations - start)
        order = torch.rand(batch, big_n, generator=generator).argsort(1).to(z.device)
        indicators = torch.zeros(batch, big_n, dtype=torch.bool, device=z.device)
        indicators.scatter_(1, order[:, :n], True)
        if start == 0:
            indicators = torch.cat([observed, indicators])
        null.append(_split_statistics(z, n, indicators, statistic, kernel))
    values = torch.cat(null).cpu()
    t_obs, t_null = float(values[0]), values[1:]
    exceed = int((t_null >= t_obs - 1e-12 * abs(t_obs)).sum())
    p_value = (1 + exceed) / (1 + n_permutations)
    rank = math.floor(alpha * (n_permutations + 1)) - 1
    threshold = float(t_null.sort(descending=True).values[rank]) if rank >= 0 else math.inf
    return TestResult(t_obs, p_value, threshold, p_value <= alpha, alpha, statistic)


def mmd_test(x: ArrayLike, y: ArrayLike, **options: Any) -> TestResult:
    """:func:`permutation_test` with the unbiased MMD² statistic (RBF, median heuristic)."""
    return permutation_test(x, y, "mmd", **options)


def energy_test(x: ArrayLike, y: ArrayLike, **options: Any) -> TestResult:
    """:func:`permutation_test` with the energy distance."""
    return permutation_test(x, y, "energy", **options)


def mean_difference_test(x: ArrayLike, y: ArrayLike, **options: Any) -> TestResult:
    r""":func:`permutation_test` with :math:`\|\bar x - \bar y\|^2`."""
    return permutation_test(x, y, "mean", **options)


def _sklearn_fit_predict(name: str, seed: int) -> FitPredict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        if name == "logistic":
            model = LogisticRegression(max_iter=2000, random_state=seed)
        else:
            model = KNeighborsClassifier(n_neighbors=max(1, int(math.sqrt(len(x_train)))))
        return make_pipeline(StandardScaler(), model).fit(x_train, y_train).predict(x_test)

    return fit_predict


def classifier_test(
    x: ArrayLike,
    y: ArrayLike,
    *,
    alpha: float = 0.05,
    classifier: C2STClassifier | FitPredict = "logistic",
    generator: torch.Generator | None = None,
) -> TestResult:
    r"""Classifier two-sample test; the statistic is held-out accuracy (module docstring).

    Arguments:
        x, y: ``(n, d)`` and ``(m, d)`` samples (at least 4 each).
        alpha: level.
        classifier: ``"logistic"`` (standardised logistic regression), ``"knn"``
            (:math:`\sqrt{n_{train}}` neighbours), or a ``fit_predict(x_train, y_train,
            x_test)`` function returning labels in {0, 1}.
        generator: randomness of the subsampling and of the halves.

    Returns:
        a :class:`TestResult` with ``statistic`` = accuracy and ``threshold`` = the accuracy
        above which :math:`H_0` is rejected.
    """
    from scipy.stats import binom

    _check_alpha(alpha)
    a, b = as_sample_pair(x, y, min_rows=4)
    size = min(len(a), len(b))
    a = a[torch.randperm(len(a), generator=generator)[:size].to(a.device)]
    b = b[torch.randperm(len(b), generator=generator)[:size].to(b.device)]
    half = size // 2
    train = torch.cat([a[:half], b[:half]]).cpu().numpy()
    test = torch.cat([a[half:], b[half:]]).cpu().numpy()
    labels_train = np.r_[np.ones(half, dtype=np.int64), np.zeros(half, dtype=np.int64)]
    labels_test = np.r_[np.ones(size - half, np.int64), np.zeros(size - half, np.int64)]
    if isinstance(classifier, str):
        if classifier not in C2ST_CLASSIFIERS:
            raise ConfigError(
                f"unknown classifier {classifier!r}; choose one of {', '.join(C2ST_CLASSIFIERS)}"
            )
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        classifier = _sklearn_fit_predict(classifier, seed)
    predicted = np.asarray(classifier(train, labels_train, test))
    n_test = len(labels_test)
    correct = int((predicted == labels_test).sum())
    p_value = float(binom.sf(correct - 1, n_test, 0.5))
    threshold = float(binom.isf(alpha, n_test, 0.5)) / n_test
    return TestResult(correct / n_test, p_value, threshold, p_value <= alpha, alpha, "c2st")


TWO_SAMPLE_TESTS: dict[str, Callable[..., TestResult]] = {
    "mean": mean_difference_test,
    "mmd": mmd_test,
    "energy": energy_test,
    "c2st": classifier_test,
}
TwoSampleTestName = Literal["mean", "mmd", "energy", "c2st"]


@dataclass(frozen=True)
class RejectionRate:
    r"""A simulated rejection rate :math:`\hat r` with its binomial standard error
    :math:`\sqrt{\hat r(1-\hat r)/R}` over :math:`R` repetitions."""

    rate: float
    std_error: float
    n_repetitions: int
    alpha: float


def power(
    test: TwoSampleTestName | Callable[..., TestResult],
    sample_p: Sampler,
    sample_q: Sampler,
    *,
    n: int,
    m: int | None = None,
    n_repetitions: int = 100,
    alpha: float = 0.05,
    seed: int = 0,
    **options: Any,
) -> RejectionRate:
    r"""Monte-Carlo power :math:`\Pr(\text{reject} \mid P, Q)` of a two-sample test.

    Each repetition draws ``x = sample_p(n, g)``, ``y = sample_q(m, g)`` and runs
    ``test(x, y, alpha=alpha, generator=g, **options)``, all from one seeded generator ``g``.
    With ``sample_q`` = ``sample_p`` this estimates the level (see :func:`level`).

    Arguments:
        test: a key of :data:`TWO_SAMPLE_TESTS` or a function returning a :class:`TestResult`.
        sample_p, sample_q: ``(size, generator) -> (size, d)`` samplers.
        n, m: sample sizes (``m`` defaults to ``n``).
        n_repetitions: :math:`R`.
    """
    if isinstance(test, str):
        if test not in TWO_SAMPLE_TESTS:
            raise ConfigError(
                f"unknown test {test!r}; choose one of {', '.join(TWO_SAMPLE_TESTS)}"
            )
        test = TWO_SAMPLE_TESTS[test]
    check(n_repetitions >= 1, f"n_repetitions must be positive, got {n_repetitions}")
    generator = torch.Generator().manual_seed(seed)
    rejections = 0
    for _ in range(n_repetitions):
        x = sample_p(n, generator)
        y = sample_q(n if m is None else m, generator)
        rejections += bool(test(x, y, alpha=alpha, generator=generator, **options).reject)
    rate = rejections / n_repetitions
    return RejectionRate(rate, math.sqrt(rate * (1 - rate) / n_repetitions), n_repetitions, alpha)


def level(
    test: TwoSampleTestName | Callable[..., TestResult],
    sample: Sampler,
    *,
    n: int,
    m: int | None = None,
    n_repetitions: int = 100,
    alpha: float = 0.05,
    seed: int = 0,
    **options: Any,
) -> RejectionRate:
    r"""Monte-Carlo size :math:`\Pr(\text{reject} \mid H_0)`: :func:`power` with :math:`P = Q`.

    A valid test has level at most ``alpha`` (up to Monte-Carlo error).
    """
    return power(
        test,
        sample,
        sample,
        n=n,
        m=m,
        n_repetitions=n_repetitions,
        alpha=alpha,
        seed=seed,
        **options,
    )
