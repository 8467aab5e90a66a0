"""``genlab evaluate``: the numbers one trained model earns on the test split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genlab.data.dataset import Dataset
from genlab.errors import DataError
from genlab.metrics.likelihood import bits_per_dim, log_likelihood, token_scores
from genlab.metrics.representation import representation_scores
from genlab.metrics.sample_quality import sample_quality
from genlab.metrics.stages import StageTimer
from genlab.models.base import GenerativeModel
from genlab.stats.modes import N_SAMPLES, mode_coverage_for

CHUNK = 512


def labels_of(
    model: GenerativeModel, labels: Tensor | None, start: int, n: int
) -> dict[str, Tensor]:
    """``{"context": n labels}`` for a model of p(x | y): ``labels`` from ``start`` on, cycled
    (a sample of ``n`` gets the test split's labels in turn); ``{}`` for a model of p(x)."""
    if not model.capabilities.context:
        return {}
    if labels is None:
        raise DataError(f"{model.family} models p(x | y): evaluating it needs labelled data")
    index = torch.arange(start, start + n) % len(labels)
    return {"context": labels[index].to(model.device)}


@torch.no_grad()
def evaluate(
    model: GenerativeModel,
    data: Dataset,
    *,
    seed: int = 0,
    importance_samples: int | None = None,
    probe_examples: int | None = None,
    metrics: Sequence[str] = (),
    timer: StageTimer | None = None,
    **sample_options: Any,
) -> dict[str, Any]:
    """Test-split metrics for every task the model supports.

    ``importance_samples`` overrides the family's ``default_importance_samples`` (the ``k`` of
    a sampled bound such as the VAE's; ignored by exact densities). ``probe_examples``: the
    training examples whose codes fit the linear probe and k-NN (a seeded subsample; ``None``:
    all).

    Returns a JSON-ready dict with ``family``, ``data``, ``n_test``, ``capabilities``,
    ``log_prob_kind``, ``conditional_kind`` (:class:`~genlab.models.Capabilities`), and where supported ``nll_nats`` (mean negative log-likelihood per
    example, a bound when ``log_prob_kind`` says so), ``importance_samples`` (the ``k`` used,
    ``None`` when the density needs no sampling), ``bits_per_dim`` (with the data's levels),
    ``true_nll_nats`` (the generating density's, for embedded 2-D data); for text, instead of
    bits/dim, ``nll_per_token``, ``bits_per_char``, ``perplexity`` and ``n_tokens``
    (:func:`~genlab.metrics.likelihood.token_scores`: tokens count, padding does not);
    ``recon_mse``
    (mean squared error per coordinate, in data units), ``probe_accuracy`` and
    ``knn_accuracy`` (codes of labelled data), whatever the family adds
    (:meth:`GenerativeModel.family_metrics`, e.g. CLIP's ``retrieval_top{1,5}_{ab,ba}``),
    and ``modes_captured``, ``hq_fraction``, ``mode_kl`` (samples of the 2-D mixtures).
    ``metrics`` adds the sample-quality card (``fid``, ``kid``, ``prdc``, ``is``...: see
    :func:`genlab.metrics.sample_quality.sample_quality`, which ``sample_options`` such as
    ``n_samples``, ``features`` and ``cache_dir`` configure) as its JSON fields.
    ``stage_seconds`` holds the wall seconds of each stage (``likelihood``, ``reconstruction``,
    ``representation``, ``family metrics``, ``modes``, ``sample metrics``), timed by ``timer``
    (a caller's, to add stages of its own and show them on its bar) or a new one.
    """
    timer = timer or StageTimer()
    model.eval()
    caps = model.capabilities
    x = data.x_test
    result: dict[str, Any] = {
        "family": model.family,
        "data": data.info.name,
        "n_test": len(x),
        "capabilities": caps.to_json(),
        "log_prob_kind": caps.log_prob,
        "conditional_kind": caps.conditional,
    }
    if caps.log_prob != "none":
        generator = torch.Generator(device=model.device).manual_seed(seed)
        kwargs: dict[str, Any] = {}
        if model.default_importance_samples is not None:
            kwargs["k"] = importance_samples or model.default_importance_samples
        kwargs.update(labels_of(model, data.y_test, 0, len(x)))  # p(x | y): given the labels
        with timer.stage("likelihood"):
            log_p = log_likelihood(model, x, data.info, generator=generator, **kwargs)
        mean_ll = float(log_p.mean())
        result["nll_nats"] = -mean_ll
        result["importance_samples"] = kwargs.get("k")
        if data.info.kind == "text":
            result.update(token_scores(log_p, x))
        else:
            result["bits_per_dim"] = bits_per_dim(mean_ll, data.info)
            result["levels"] = data.info.levels
    if data.true_log_prob is not None:
        result["true_nll_nats"] = -float(data.true_log_prob(x).double().mean())
    if caps.encode and caps.decode:
        with timer.stage("reconstruction"):
            result["recon_mse"] = _reconstruction_mse(model, data)
    # a model of p(x | y) takes the label as an input: its codes are not probed for the label
    labelled = data.y_train is not None and data.y_test is not None
    if caps.encode and labelled and not caps.context:
        with timer.stage("representation"):
            result.update(representation_scores(model, data, seed=seed, n_train=probe_examples))
    with timer.stage("family metrics"):
        result.update(model.family_metrics(x.to(model.device)))
    if caps.sample and data.info.mode_centres is not None:
        with timer.stage("modes"):
            generator = torch.Generator(device=model.device).manual_seed(seed)
            samples = model.sample(
                N_SAMPLES, generator=generator, **labels_of(model, data.y_test, 0, N_SAMPLES)
            )
            result.update(mode_coverage_for(samples, data.info).to_json())
    if metrics:
        with timer.stage("sample metrics"):
            quality = sample_quality(model, data, metrics, seed=seed, **sample_options)
        result.update(quality.to_json())
    result["stage_seconds"] = dict(timer.seconds)
    return result


def _reconstruction_mse(model: GenerativeModel, data: Dataset) -> float:
    """Mean squared error per coordinate of ``reconstruct(x)`` over the test split."""
    x = data.x_test
    total = 0.0
    for start in range(0, len(x), CHUNK):
        chunk = x[start : start + CHUNK]
        context = labels_of(model, data.y_test, start, len(chunk))
        recon = model.reconstruct(chunk.to(model.device), **context).cpu().double()
        total += float((recon - chunk).square().sum())  # float64: far-from-1 data stays finite
    return total / x.numel()
