"""The Gaussian-mixture code prior (genlab.nn.mixture_prior) against torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

import genlab
from genlab.nn.mixture_prior import GaussianMixturePrior

COVARIANCES = ("full", "diag")


def scale_tril(prior: GaussianMixturePrior) -> torch.Tensor:
    """``(M, K, K)`` the Cholesky factors of the components' covariances."""
    return prior.scale_tril if prior.covariance == "full" else torch.diag_embed(prior.scales)


def reference(prior: GaussianMixturePrior) -> MixtureSameFamily:
    return MixtureSameFamily(
        Categorical(prior.weights),
        MultivariateNormal(prior.means, scale_tril=scale_tril(prior)),
    )


def random_prior(
    components: int, dim: int, generator: torch.Generator, covariance: str = "full"
) -> GaussianMixturePrior:
    prior = GaussianMixturePrior(components, dim, covariance).double()
    prior.weights.copy_(torch.rand(components, generator=generator, dtype=torch.float64) + 0.1)
    prior.weights /= prior.weights.sum()
    prior.means.copy_(torch.randn(components, dim, generator=generator, dtype=torch.float64))
    lower = torch.randn(components, dim, dim, generator=generator, dtype=torch.float64).tril(-1)
    diag = torch.rand(components, dim, generator=generator, dtype=torch.float64) + 0.3
    if covariance == "full":
        prior.scale_tril.copy_(lower * 0.5 + torch.diag_embed(diag))
    else:
        prior.scales.copy_(diag)
    return prior


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_log_prob_is_the_mixture_density_for_any_batch_shape(covariance):
    g = torch.Generator().manual_seed(0)
    prior = random_prior(4, 3, g, covariance)
    z = torch.randn(5, 7, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(prior.log_prob(z), reference(prior).log_prob(z))


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_unfitted_prior_is_the_standard_normal(covariance):
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    expected = -0.5 * z.square().sum(1) - 2.5 * math.log(2 * math.pi)
    torch.testing.assert_close(GaussianMixturePrior(7, 5, covariance).log_prob(z), expected)


def test_an_unknown_covariance_is_refused():
    with pytest.raises(ValueError, match="covariance must be one of"):
        GaussianMixturePrior(2, 2, "spherical")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("covariance", "temperature"), [("full", 1.0), ("diag", 1.0), ("diag", 0.7)]
)
def test_samples_have_the_mixture_moments(covariance, temperature):
    """At temperature T each component's deviation from its mean is scaled by T."""
    g = torch.Generator().manual_seed(2)
    prior = random_prior(3, 2, g, covariance)
    z = prior.sample(200_000, g, temperature=temperature)
    w, mu = prior.weights, prior.means
    tril = temperature * scale_tril(prior)
    covariances = tril @ tril.transpose(-1, -2)
    mean = w @ mu
    # law of total covariance: E[C_m + mu_m mu_m^T] - mean mean^T
    second = (w[:, None, None] * (covariances + mu[:, :, None] * mu[:, None, :])).sum(0)
    torch.testing.assert_close(z.mean(0), mean, atol=0.01, rtol=0)
    torch.testing.assert_close(
        z.T.cov(), second - mean[:, None] * mean[None, :], atol=0.03, rtol=0
    )


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_fit_recovers_two_separated_clusters(covariance):
    g = torch.Generator().manual_seed(3)
    codes = torch.cat(
        [torch.randn(3000, 2, generator=g) * 0.2 - 3, torch.randn(1000, 2, generator=g) * 0.5 + 3]
    )
    prior = GaussianMixturePrior(2, 2, covariance)
    prior.fit_(codes, torch.Generator().manual_seed(0))
    order = prior.means[:, 0].argsort()
    torch.testing.assert_close(prior.weights[order], torch.tensor([0.75, 0.25]), atol=0.01, rtol=0)
    torch.testing.assert_close(
        prior.means[order], torch.tensor([[-3.0, -3.0], [3.0, 3.0]]), atol=0.05, rtol=0
    )
    stds = scale_tril(prior)[order].diagonal(dim1=-2, dim2=-1)
    torch.testing.assert_close(stds, torch.tensor([[0.2, 0.2], [0.5, 0.5]]), atol=0.03, rtol=0)


def test_fewer_codes_than_components_weigh_the_rest_zero():
    prior = GaussianMixturePrior(5, 2)
    prior.fit_(
        torch.randn(3, 2, generator=torch.Generator().manual_seed(4)),
        torch.Generator().manual_seed(0),
    )
    assert (prior.weights[3:] == 0).all() and torch.isclose(prior.weights.sum(), torch.tensor(1.0))
    assert torch.isfinite(prior.log_prob(torch.zeros(2, 2))).all()


def test_an_autoencoder_saved_before_the_prior_module_loads(tmp_path, digits):
    model = genlab.fit("ae", digits, steps=5, seed=0, out=tmp_path / "run")
    path = tmp_path / "run" / "model.safetensors"
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as opened:
        metadata = opened.metadata()
    state = load_file(path)
    old = {k.replace("model.prior.", "model.prior_", 1): v for k, v in state.items()}
    assert "model.prior_means" in old
    save_file(old, path, metadata=metadata)
    reloaded = genlab.load(tmp_path / "run")
    torch.testing.assert_close(reloaded.prior.means, model.prior.means)
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(
        reloaded.sample(4, generator=g),
        model.sample(4, generator=torch.Generator().manual_seed(0)),
    )
