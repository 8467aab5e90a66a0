"""Distances, divergences and two-sample tests between distributions (pure functions).

- :mod:`~genlab.stats.divergences`: TV, KL, JS and f-divergences of probability vectors;
- :mod:`~genlab.stats.histogram`: the same between two samples via empirical histograms;
- :mod:`~genlab.stats.gaussian`: KL and Wasserstein-2 (Frechet) between Gaussians;
- :mod:`~genlab.stats.transport`: exact 1-D W1, exact and Sinkhorn OT (POT);
- :mod:`~genlab.stats.mmd`, :mod:`~genlab.stats.kernels`: MMD^2 and energy distance;
- :mod:`~genlab.stats.knn`: nearest-neighbour distances and the k-NN KL estimator;
- :mod:`~genlab.stats.ipm`: integral probability metrics with a learned critic;
- :mod:`~genlab.stats.two_sample`: permutation and classifier two-sample tests, level, power;
- :mod:`~genlab.stats.bootstrap`: confidence intervals.
"""

from genlab.stats.bootstrap import ConfidenceInterval, bootstrap_ci, mean_and_std
from genlab.stats.divergences import (
    F_DIVERGENCES,
    FDivergence,
    f_divergence,
    js_divergence,
    kl_divergence,
    tv_distance,
)
from genlab.stats.gaussian import frechet_distance, kl_gaussians, trace_sqrt_product
from genlab.stats.histogram import empirical_histograms, histogram_divergence
from genlab.stats.ipm import CRITIC_CLASSES, Critic, IPMResult, critic_ipm, train_critic
from genlab.stats.kernels import KERNELS, PolynomialKernel, RBFKernel, median_heuristic
from genlab.stats.knn import knn_distances, knn_kl_divergence
from genlab.stats.mmd import energy_distance, mmd2_biased, mmd2_unbiased
from genlab.stats.transport import optimal_transport_cost, wasserstein_1d, wasserstein_distance
from genlab.stats.two_sample import (
    TWO_SAMPLE_TESTS,
    RejectionRate,
    TestResult,
    classifier_test,
    energy_test,
    level,
    mean_difference_test,
    mmd_test,
    permutation_test,
    power,
)

__all__ = [
    "CRITIC_CLASSES",
    "F_DIVERGENCES",
    "KERNELS",
    "TWO_SAMPLE_TESTS",
    "ConfidenceInterval",
    "Critic",
    "FDivergence",
    "IPMResult",
    "PolynomialKernel",
    "RBFKernel",
    "RejectionRate",
    "TestResult",
    "bootstrap_ci",
    "classifier_test",
    "critic_ipm",
    "empirical_histograms",
    "energy_distance",
    "energy_test",
    "f_divergence",
    "frechet_distance",
    "histogram_divergence",
    "js_divergence",
    "kl_divergence",
    "kl_gaussians",
    "knn_distances",
    "knn_kl_divergence",
    "level",
    "mean_and_std",
    "mean_difference_test",
    "median_heuristic",
    "mmd2_biased",
    "mmd2_unbiased",
    "mmd_test",
    "optimal_transport_cost",
    "permutation_test",
    "power",
    "trace_sqrt_product",
    "train_critic",
    "tv_distance",
    "wasserstein_1d",
    "wasserstein_distance",
]
