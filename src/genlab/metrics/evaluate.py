"""``genlab evaluate``: the numbers one trained model earns on the test split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from genlab.data.dataset import Dataset
from genlab.metrics.likelihood import bits_per_dim, log_likelihood
from genlab.metrics.representation import representation_scores
from genlab.metrics.sample_quality import sample_quality
from genlab.models.base import GenerativeModel
from genlab.stats.modes import N_SAMPLES, mode_coverage_for

CHUNK = 512


@torch.no_grad()
def evaluate(
    model: GenerativeModel,
    data: Dataset,
    *,
    seed: int = 0,
    importance_samples: int | None = None,
    metrics: Sequence[str] = (),
    **sample_options: Any,
) -> dict[str, Any]:
    """Test-split metrics for every task the model supports.

    ``importance_samples`` overrides the family's ``default_importance_samples`` (the ``k`` of
    a sampled bound such as the VAE's; ignored by exact densities).

    Returns a JSON-ready dict with ``family``, ``data``, ``n_test``, ``capabilities``,
    ``log_prob_kind``, ``conditional_kind`` (:class:`~genlab.models.Capabilities`), and where supported ``nll_nats`` (mean negative log-likelihood per
    example, a bound when ``log_prob_kind`` says so), ``importance_samples`` (the ``k`` used,
    ``None`` when the density needs no sampling), ``bits_per_dim`` (with the data's levels),
    ``true_nll_nats`` (the generating density's, for embedded 2-D data), ``recon_mse``
    (mean squared error per coordinate, in data units), ``probe_accuracy`` and
    ``knn_accuracy`` (codes of labelled data), whatever the family adds
    (:meth:`GenerativeModel.family_metrics`, e.g. CLIP's ``retrieval_top{1,5}_{ab,ba}``),
    and ``modes_captured``, ``hq_fraction``, ``mode_kl`` (samples of the 2-D mixtures).
    ``metrics`` adds sample-quality metrics (``fid``, ``kid``, ``prdc``, ``is``...: see
    :mod:`genlab.metrics.sample_quality`, which ``sample_options`` such as ``n_samples``,
    ``cache_dir`` and ``picture_dir`` configure).
    """
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
        if caps.context:  # a model of p(x | y) is scored given each test example's label
            kwargs["context"] = data.y_test
        mean_ll = float(log_likelihood(model, x, data.info, generator=generator, **kwargs).mean())
        result["nll_nats"] = -mean_ll
        result["importance_samples"] = kwargs.get("k")
        result["bits_per_dim"] = bits_per_dim(mean_ll, data.info)
        result["levels"] = data.info.levels
    if data.true_log_prob is not None:
        result["true_nll_nats"] = -float(data.true_log_prob(x).double().mean())
    if caps.encode and caps.decode:
        total = sum(  # float64: squares of data far from 1 stay finite
            float((model.reconstruct(c.to(model.device)).cpu().double() - c).square().sum())
            for c in x.split(CHUNK)
        )
        result["recon_mse"] = total / x.numel()
    if caps.encode and data.y_train is not None and data.y_test is not None:
        result.update(representation_scores(model, data, seed=seed))
    result.update(model.family_metrics(x.to(model.device)))
    if caps.sample and data.info.mode_centres is not None:
        generator = torch.Generator(device=model.device).manual_seed(seed)
        samples = model.sample(N_SAMPLES, generator=generator)
        result.update(mode_coverage_for(samples, data.info).to_json())
    if metrics:
        result.update(sample_quality(model, data, metrics, seed=seed, **sample_options))
    return result
