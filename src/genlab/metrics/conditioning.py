r"""Conditioning, scored: samples of a class, and posteriors given a measurement.

**Samples of a class** come by one of two routes, named in the result (``class_route``): a
family that models :math:`p(x \mid y)` samples given the label (``"context"``); any other family
that can sample a posterior draws :math:`p(x \mid c) \propto p(x)\, p(c \mid x)` under the domain
classifier (``"guidance"``, :func:`~genlab.samplers.classifier_guidance`). Then

- ``class_accuracy``: the fraction of samples the domain classifier assigns to the asked class;
- ``intra_class_fid``: the mean over classes of the domain FID between a class's samples and the
  test examples of that class (small sets: compare families at equal sizes, never with the
  full-set FID);
- ``class_cas``: the classification accuracy score (Ravuri & Vinyals, 2019): a classifier trained
  only on the generated samples, with the asked classes as labels, scored on the real test split.

**Posteriors given a measurement** :math:`y = f(x) + \sigma\varepsilon` of test examples (the
noise drawn with the seed): ``posterior_mse``, the squared error of the posterior mean against the
truth per coordinate; ``posterior_spread``, the posterior standard deviation per coordinate (a
sampler that returns one point has not sampled a posterior). For downsampling,
:func:`bicubic_mse` is the classical baseline's error on the same measurements.

References:
    Ravuri & Vinyals, "Classification accuracy score for conditional generative models",
    NeurIPS 2019, arXiv:1905.10887.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from genlab.data.dataset import Dataset
from genlab.errors import ConfigError, DataError
from genlab.metrics.classifier_scores import classification_accuracy_score
from genlab.metrics.domain import DomainClassifier
from genlab.metrics.frechet import frechet_feature_distance
from genlab.metrics.sample_quality import to_data_grid
from genlab.models.base import FAMILY_MCMC, GenerativeModel, MCMCSizes
from genlab.samplers import Downsample, Operator, classifier_guidance, gaussian_measurement


def class_route(model: GenerativeModel, classifier: DomainClassifier | None) -> str | None:
    """How ``model`` draws samples of a class: ``"context"``, ``"guidance"`` or ``None``."""
    if model.capabilities.context:
        return "context"
    if model.capabilities.supports("posterior") and model.capabilities.posterior != "exact":
        return "guidance" if classifier is not None else None
    return None  # PPCA's exact posteriors are for linear measurements only


def check_class_options(model: GenerativeModel, options: Mapping[str, Any] | None) -> None:
    """Refuse sampler ``options`` for class draws that do not run the model's own sampler (the
    classifier-guided route), before any classifier is trained."""
    if options and not model.capabilities.context:
        raise ConfigError(
            f"sampler options ({', '.join(options)}) apply to {model.family}'s own sampler, and "
            "a class is drawn by guiding its posterior sampler with the domain classifier: "
            "leave them out, or train with conditional=true to sample given the label"
        )


def sample_classes(
    model: GenerativeModel,
    classes: Tensor,
    *,
    classifier: DomainClassifier | None = None,
    weight: float = 1.0,
    generator: torch.Generator | None = None,
    mcmc: MCMCSizes = FAMILY_MCMC,
    options: Mapping[str, Any] | None = None,
) -> Tensor:
    """``(len(classes), *event_shape)`` one sample of each asked class (routes: module doc).

    Arguments:
        classes: ``(N,)`` long, the class of each sample.
        classifier: the domain classifier that guides families without context.
        weight: the guidance weight :math:`w` (1: the posterior itself).
        mcmc: the posterior sampler's transitions and candidates (guidance only).
        options: keyword options of the model's own ``sample`` (given the labels only).
    """
    route = class_route(model, classifier)
    if route is None:
        raise model.unsupported("sampling a class (context=, or a posterior under a classifier)")
    device = model.device
    if route == "context":
        with torch.no_grad():
            return model.sample(
                len(classes), generator=generator, context=classes.to(device), **(options or {})
            )
    check_class_options(model, options)
    assert classifier is not None
    classifier = classifier.to(device).eval().requires_grad_(False)
    observation = classifier_guidance(lambda x: classifier(x).log_softmax(1), classes, weight)
    draws = model.sample_posterior(
        observation, 1, generator=generator, **model.mcmc_options("posterior", mcmc)
    )
    return draws[0]


def class_scores(
    model: GenerativeModel,
    data: Dataset,
    classifier: DomainClassifier,
    *,
    per_class: int = 50,
    seed: int = 0,
    mcmc: MCMCSizes = FAMILY_MCMC,
    drawn: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``class_route``, ``class_accuracy``, ``intra_class_fid`` and ``class_cas`` (module doc;
    ``mcmc``: as :func:`sample_classes`). ``drawn`` receives the samples scored, ``per_class``
    of each class in turn, as ``"class samples"`` (for pictures of them)."""
    if data.y_test is None or data.info.n_classes is None:
        raise DataError(f"{data.info.name}: samples of a class need a labelled dataset")
    n_classes = data.info.n_classes
    classes = torch.arange(n_classes).repeat_interleave(per_class)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    samples = sample_classes(model, classes, classifier=classifier, generator=generator, mcmc=mcmc)
    samples = to_data_grid(samples.detach().cpu(), data.info)
    if drawn is not None:
        drawn["class samples"] = samples
    predicted = classifier.predict(samples)
    fids = [
        frechet_feature_distance(
            data.x_test[data.y_test == c], samples[classes == c], classifier.features
        )
        for c in range(n_classes)
    ]
    cas = classification_accuracy_score(
        samples, classes, data.x_test, data.y_test, data.info, n_classes,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    return {
        "class_route": class_route(model, classifier),
        "class_samples": len(classes),
        "class_accuracy": float((predicted == classes).double().mean()),
        "intra_class_fid": sum(fids) / n_classes,
        "class_cas": cas,
    }


def measured(
    data: Dataset, operator: Operator, noise_std: float, n_examples: int, seed: int
) -> tuple[Tensor, Tensor]:
    """The first ``n_examples`` test examples and their measurements, noise drawn from ``seed``."""
    truth = data.x_test[:n_examples]
    clean = operator(truth)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    return truth, clean + noise_std * noise


def bicubic_mse(
    data: Dataset, operator: Downsample, noise_std: float, *, n_examples: int = 100, seed: int = 0
) -> float:
    """Squared error per coordinate of bicubic upsampling, on :func:`measured`'s examples."""
    truth, y = measured(data, operator, noise_std, n_examples, seed)
    return float((operator.upsample(y).view_as(truth) - truth).square().mean())


def measurement_scores(
    model: GenerativeModel,
    data: Dataset,
    operator: Operator,
    noise_std: float,
    *,
    n_examples: int = 100,
    n_draws: int = 10,
    seed: int = 0,
    mcmc: MCMCSizes = FAMILY_MCMC,
    drawn: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``posterior_mse`` and ``posterior_spread`` on :func:`measured`'s examples (module doc;
    ``mcmc``: the sizes of an MCMC posterior sampler). ``drawn`` receives ``"posterior"``:
    the examples, their measurements and the ``(n_draws, n_examples, ...)`` draws scored."""
    truth, y = measured(data, operator, noise_std, n_examples, seed)
    observation = gaussian_measurement(operator, y, noise_std)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    options = model.mcmc_options("posterior", mcmc)
    draws = model.sample_posterior(observation, n_draws, generator=generator, **options)
    draws = draws.detach().cpu()
    if drawn is not None:
        drawn["posterior"] = (truth, y, draws)
    draws = draws.double()
    return {
        "measurement": operator.spec,
        "measurement_noise": noise_std,
        "posterior_mse": float((draws.mean(0) - truth).square().mean()),
        "posterior_spread": float(draws.std(0).mean()) if n_draws > 1 else None,
    }
