"""Model evaluation: likelihood, reconstruction, representation and sample-quality metrics."""

from genlab.metrics.birthday import birthday_support, duplicate_threshold
from genlab.metrics.domain import (
    ClassifierConfig,
    confident_fraction,
    domain_network,
    inception_score,
)
from genlab.metrics.evaluate import evaluate
from genlab.metrics.features import GaussianStatistics, feature_statistics
from genlab.metrics.frechet import (
    fid_infinity,
    frechet_feature_distance,
    kernel_inception_distance,
)
from genlab.metrics.likelihood import bits_per_dim, log_likelihood
from genlab.metrics.memorization import memorization
from genlab.metrics.prdc import precision_recall_density_coverage
from genlab.metrics.sample_quality import (
    SAMPLE_METRICS,
    SampleQualityResult,
    sample_quality,
    score_samples,
)

__all__ = [
    "SAMPLE_METRICS",
    "ClassifierConfig",
    "GaussianStatistics",
    "SampleQualityResult",
    "birthday_support",
    "bits_per_dim",
    "domain_network",
    "duplicate_threshold",
    "evaluate",
    "feature_statistics",
    "fid_infinity",
    "frechet_feature_distance",
    "confident_fraction",
    "inception_score",
    "kernel_inception_distance",
    "log_likelihood",
    "memorization",
    "precision_recall_density_coverage",
    "sample_quality",
    "score_samples",
]
