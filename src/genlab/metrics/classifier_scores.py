r"""Scores that train a fresh classifier: classification accuracy score and fresh discriminator.

- Classification accuracy score (CAS, Ravuri & Vinyals 2019): train a classifier on
  *generated* samples labelled by a conditional model or, for unconditional models, by the
  domain classifier's predictions, and report its accuracy on the *real* test split. A model
  whose samples cover every class with realistic variety scores close to a classifier trained
  on real data.
- Fresh discriminator: with the generator frozen, train a new classifier to tell its samples
  from held-out real examples and report the held-out accuracy (0.5 is ideal), as a C2ST
  (:func:`genlab.stats.classifier_test`) with the domain classifier's architecture, so it
  comes with a binomial p-value.

References:
    Ravuri & Vinyals, "Classification accuracy score for conditional generative models",
    NeurIPS 2019, arXiv:1905.10887.
    Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", ICLR 2017, arXiv:1610.06545.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from genlab.data.dataset import DataInfo
from genlab.metrics.domain import DEFAULT_CLASSIFIER, ClassifierConfig, accuracy, train_classifier
from genlab.stats.seeding import draw_seed
from genlab.stats.two_sample import TestResult, classifier_test


def classification_accuracy_score(
    samples: Tensor,
    labels: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    info: DataInfo,
    n_classes: int,
    config: ClassifierConfig = DEFAULT_CLASSIFIER,
    *,
    generator: torch.Generator | None = None,
) -> float:
    """Accuracy on ``(x_test, y_test)`` of a classifier trained on ``(samples, labels)``."""
    classifier = train_classifier(samples, labels, info, n_classes, config, generator=generator)
    return accuracy(classifier, x_test, y_test)


def fresh_discriminator(
    samples: Tensor,
    real: Tensor,
    info: DataInfo,
    config: ClassifierConfig = DEFAULT_CLASSIFIER,
    *,
    alpha: float = 0.05,
    generator: torch.Generator | None = None,
) -> TestResult:
    """C2ST of ``samples`` against held-out ``real`` with a newly trained domain-style network.

    Returns a :class:`~genlab.stats.TestResult` whose ``statistic`` is the held-out accuracy.
    """
    seed = draw_seed(generator)

    def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        shape = (-1, *info.event_shape)
        x = torch.from_numpy(x_train).float().reshape(shape)
        y = torch.from_numpy(y_train).long()
        g = torch.Generator().manual_seed(seed)
        classifier = train_classifier(x, y, info, 2, config, generator=g)
        return classifier.predict(torch.from_numpy(x_test).float().reshape(shape)).numpy()

    return classifier_test(samples, real, alpha=alpha, classifier=fit_predict, generator=generator)
