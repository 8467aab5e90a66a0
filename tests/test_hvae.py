"""Hierarchical VAE: the per-layer KL in the noise against the KL of the codes, the posterior's
log-density, a two-layer linear-Gaussian hierarchy's bounds against its closed-form marginal
(ELBO <= IW(10) <= IW(100) <= log p, the gap closing as k grows), its completions against the
Gaussian conditional, per-layer diagnostics in metrics.jsonl, and the options."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

import genlab
from genlab.data import DataInfo, Dataset
from genlab.errors import ConfigError
from genlab.models.hvae import HVAE, HVAEConfig
from genlab.nn import likelihoods as likelihoods_module
from genlab.objectives import free_bits_kl
from genlab.runs import read_metrics
from genlab.samplers import gaussian_conditional

D = 5


def test_layer_kl_in_the_noise_is_the_kl_of_the_codes():
    """q(z_l) = N(mu_p + sigma_p dmu, (sigma_p dsigma)^2), p(z_l) = N(mu_p, sigma_p^2): the KL is
    that of N(dmu, dsigma^2) from N(0, 1), whatever mu_p and sigma_p (the Jacobian cancels)."""
    g = torch.Generator().manual_seed(0)
    mu_p, log_sigma_p, dmu, log_dsigma = (
        torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(4)
    )
    q = Normal(mu_p + log_sigma_p.exp() * dmu, (log_sigma_p + log_dsigma).exp())
    p = Normal(mu_p, log_sigma_p.exp())
    from genlab.objectives import kl_standard_normal

    torch.testing.assert_close(kl_standard_normal(dmu, log_dsigma), kl_divergence(q, p))


def _hierarchy() -> HVAE:
    info = DataInfo("tiny", (D,), "vector")
    model = HVAE(HVAEConfig(latent_dims=(2, 3), width=8, hidden=(8,), dropout=0.0), info)
    return model.double().eval()


@torch.no_grad()
def test_posterior_log_density_is_the_product_of_its_layers():
    """log q(eps | x) from the top-down pass equals the sum over layers of the Gaussian
    log-densities of each layer's draw given the layers above (recomputed one layer at a time)."""
    model = _hierarchy()
    u = torch.randn(4, D, dtype=torch.float64)
    noise = torch.randn(3, 4, 5, dtype=torch.float64)
    inference = model.infer(u, noise)
    h = model.h_top.expand(3, 4, -1)
    expected = torch.zeros(3, 4, dtype=torch.float64)
    for block, eps in zip(model.blocks, inference.eps.split((2, 3), -1), strict=True):
        loc, log_scale = block.posterior(h, u.expand(3, 4, -1))
        expected += Independent(Normal(loc, log_scale.exp()), 1).log_prob(eps)
        prior_loc, prior_log_scale = block.prior(h)
        h = block.merge(h, prior_loc + prior_log_scale.exp() * eps)
    torch.testing.assert_close(inference.log_posterior, expected)
    # the likelihood's parameters are the generative path's at the drawn noise
    torch.testing.assert_close(inference.params, model.generate(inference.eps))


# ---------------------------------------------------------------------- linear-Gaussian


def _two_layer_data(n: int, seed: int) -> torch.Tensor:
    """x = B (A z_0 + 0.6 e_1) + 0.3 e_2 + c, z_0 ~ N(0, I_2): a two-layer linear-Gaussian model."""
    g = torch.Generator().manual_seed(100)
    a, b = torch.randn(2, 2, generator=g), torch.randn(D, 2, generator=g)
    g.manual_seed(seed)
    z0 = torch.randn(n, 2, generator=g)
    z1 = z0 @ a.T + 0.6 * torch.randn(n, 2, generator=g)
    return z1 @ b.T + 0.3 * torch.randn(n, D, generator=g) + torch.arange(D) - 2.0


@pytest.fixture(scope="module")
def linear_hvae() -> HVAE:
    info = DataInfo("two-layer", (D,), "vector", value_range=(-30.0, 30.0))
    data = Dataset(_two_layer_data(3000, 0), _two_layer_data(500, 1), info)
    model = genlab.fit(
        "hvae", data, architecture="linear", latent_dims=(2, 2), width=16, likelihood="gaussian",
        warmup_steps=0, dropout=0.0, steps=600, batch_size=100, lr=1e-2, val_fraction=0.0,
        seed=0,
    )  # fmt: skip
    return model.double().eval()


def _exact_marginal(model: HVAE) -> MultivariateNormal:
    r"""x = G(eps) + s * sigma * xi with G affine in eps ~ N(0, I): N(G(0), J J^T + diag(s sigma)^2)."""

    def mean(eps: torch.Tensor) -> torch.Tensor:
        return model.likelihood.mean(model.generate(eps))

    k = model.latent_dim
    zero = torch.zeros(k, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(mean, zero)  # (D, K)
    elsewhere = torch.autograd.functional.jacobian(mean, torch.randn(k, dtype=torch.float64))
    torch.testing.assert_close(jacobian, elsewhere)  # the hierarchy is affine in its noise
    std = (model.likelihood.log_std.exp() * model.likelihood.normalizer.scale).detach()
    cov = jacobian @ jacobian.T + torch.diag(std.square())
    return MultivariateNormal(mean(zero).detach(), cov)


def _mean_bounds(model: HVAE, x: torch.Tensor) -> dict[int, float]:
    return {
        k: float(model.log_prob(x, k=k, generator=torch.Generator().manual_seed(k)).mean())
        for k in (1, 10, 100, 1000)
    }


@torch.no_grad()
def test_linear_hierarchy_bounds_rise_with_k_towards_the_exact_marginal(linear_hvae):
    """On held-out data, averaged: ELBO <= IW(10) <= IW(100) <= IW(1000) <= log p(x), the gap to
    the closed-form log p(x) closing as k grows (Burda et al., 2016, theorem 1): for the trained
    posterior (nearly exact: a two-layer top-down posterior is Gaussian with diagonal layers),
    and for a worse one (its scales doubled, its means moved), whose gap IW takes longer to
    close. The model, hence log p(x), is the same."""
    x = _two_layer_data(500, 2).double()
    exact = float(_exact_marginal(linear_hvae).log_prob(x).mean())
    assert exact > -5.5  # a fitted model: the data's own entropy is about -4.9 nats
    bounds = _mean_bounds(linear_hvae, x)
    assert bounds[1] < bounds[10] and abs(bounds[1000] - exact) < 0.01, (bounds, exact)
    worse = copy.deepcopy(linear_hvae)
    for block in worse.blocks:
        last = block.posterior_net[-1]
        last.bias[: block.latent_dim] += 0.5  # the means
        last.bias[block.latent_dim :] += math.log(2.0)  # the scales
    torch.testing.assert_close(_exact_marginal(worse).log_prob(x).mean().item(), exact)
    bounds = _mean_bounds(worse, x)
    assert bounds[1] < bounds[10] < bounds[100] < bounds[1000] <= exact + 0.01, (bounds, exact)
    gaps = {k: exact - v for k, v in bounds.items()}
    assert gaps[1] > 0.5 and gaps[1000] < 0.1 * gaps[1], gaps


def test_linear_hierarchy_completes_with_the_gaussian_conditional(linear_hvae):
    joint = _exact_marginal(linear_hvae)
    mean, cov = joint.loc, joint.covariance_matrix
    mask = torch.tensor([True, False, True, False, True])
    x = _two_layer_data(1, 3).double()
    n = 2000
    samples = linear_hvae.sample_conditional(
        x, mask, n, generator=torch.Generator().manual_seed(0), steps=100
    )
    assert torch.equal(samples[:, 0, mask], x[:, mask].expand(n, -1))
    mean_u, cov_u = gaussian_conditional(mean, cov, x, mask)
    free = samples[:, 0, ~mask].double()
    sd = cov_u.diagonal().sqrt()
    assert ((free.mean(0) - mean_u[0]).abs() < 4 * sd / np.sqrt(n)).all(), (free.mean(0), mean_u)
    c = cov_u.numpy()
    se = np.sqrt((np.outer(c.diagonal(), c.diagonal()) + c**2) / n)
    assert (np.abs(np.cov(free.numpy().T) - c) < 4.5 * se).all(), (np.cov(free.numpy().T), c)


# ---------------------------------------------------------------------- training and options


def test_each_layer_kl_and_active_units_are_logged(digits, tmp_path):
    genlab.fit("hvae", digits, budget="smoke", seed=0, out=tmp_path / "run")
    records = read_metrics(tmp_path / "run")
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    assert train and val
    for record in train:
        assert record["kl"] == pytest.approx(record["kl_layer_0"] + record["kl_layer_1"], rel=1e-4)
    for record in val:
        assert {"kl_layer_0", "kl_layer_1", "active_layer_0", "active_layer_1"} <= set(record)
        assert 0 <= record["active_layer_0"] <= 2 and 0 <= record["active_layer_1"] <= 2


def test_iwae_training_and_options(ring):
    model = genlab.fit(
        "hvae", ring, budget="smoke", train_samples=3, warmup_steps=0, steps=5, seed=0
    )
    assert torch.isfinite(model.log_prob(ring.x_test[:8], k=5)).all()
    with pytest.raises(ConfigError, match="IWAE"):
        HVAEConfig(train_samples=3, warmup_steps=10)
    with pytest.raises(ConfigError, match="latent_dims"):
        HVAEConfig(latent_dims=())
    with pytest.raises(ConfigError, match="k"):
        model.log_prob(ring.x_test[:2], k=0)


def test_free_bits_floor_each_layers_batch_mean_kl():
    """sum_g max(lambda, mean_b KL_bg): a floored layer gets no gradient, the others their
    batch mean's; lambda = 0 is the plain KL per example."""
    kl = torch.tensor([[0.1, 3.0], [0.3, 1.0]], requires_grad=True)
    floored = free_bits_kl(kl, 0.5)  # layer means 0.2 (under the floor) and 2.0
    assert float(floored.detach()) == pytest.approx(0.5 + 2.0)
    floored.backward()
    assert torch.equal(kl.grad, torch.tensor([[0.0, 0.5], [0.0, 0.5]]))
    plain = free_bits_kl(kl.detach(), 0.0)
    assert float(plain) == pytest.approx(float(kl.detach().sum(1).mean()))


def test_free_bits_keep_a_layer_off_its_prior(ring):
    """On the ring the plain ELBO lets both layers of a small hierarchy collapse onto their
    priors (KL ~0.001 nats after 150 steps); free bits of 1 nat a layer keep both in use (0.45
    and 0.91 nats here). The IWAE objective refuses them."""
    settings = {"latent_dims": (2, 2), "warmup_steps": 0, "steps": 150, "seed": 0}
    plain = genlab.fit("hvae", ring, budget="smoke", **settings)
    floored = genlab.fit("hvae", ring, budget="smoke", free_bits=1.0, **settings)

    def layer_kl(model):
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(len(ring.x_test), model.latent_dim, generator=generator)
        with torch.no_grad():
            return model.infer(model._inputs(ring.x_test), noise).kl.mean(0)

    assert (layer_kl(plain) < 0.05).all()
    assert (layer_kl(floored) > 0.25).all()
    with pytest.raises(ConfigError, match="free_bits"):
        HVAEConfig(free_bits=-1.0)
    with pytest.raises(ConfigError, match="IWAE"):
        HVAEConfig(train_samples=3, warmup_steps=0, free_bits=1.0)


def test_conv_hierarchy_reads_features_and_decodes_with_a_conv_net(digits, ring, monkeypatch):
    """``architecture="conv"``: the posteriors read a conv net's features (trained through the
    bound), the decoder is a conv net, and the model's four tasks keep their shapes; vectors
    are refused before any training; the bound is the same in passes of any size."""
    settings = {"architecture": "conv", "channels": 4, "width": 16, "hidden": (16,)}
    untrained = genlab.fit("hvae", digits, budget="smoke", steps=1, seed=0, **settings)
    model = genlab.fit("hvae", digits, budget="smoke", steps=60, seed=0, **settings)
    assert isinstance(model.features, torch.nn.Module)
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.decoder.modules())
    trained_first_layer = next(model.features.parameters())
    assert not torch.equal(trained_first_layer, next(untrained.features.parameters()))
    x = digits.x_test[:64]
    assert model.log_prob(x, k=5).mean() > untrained.log_prob(x, k=5).mean() + 1.0
    with torch.no_grad():  # in passes of 3, 3 and 1 examples (1, 1 and 3 samples): the same
        whole = model.log_prob(x[:7], k=5, generator=torch.Generator().manual_seed(0))
        per_example = (model.likelihood.n_params + 4) * digits.info.n_features
        monkeypatch.setattr(likelihoods_module, "PASS_VALUES", 3 * per_example)
        assert model.likelihood.rows_per_pass(hidden_channels=4) == 3
        chunked = model.log_prob(x[:7], k=5, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(chunked, whole)
    assert model.encode(x[:3]).shape == (3, model.latent_dim)
    assert model.decode(model.encode(x[:3])).shape == (3, *digits.info.event_shape)
    with pytest.raises(ConfigError, match="conv needs image data"):
        genlab.fit("hvae", ring, architecture="conv", steps=1)


def test_mixture_prior_over_the_noise_of_every_layer(digits, tmp_path):
    """prior=mixture (genlab.models.code_prior): after training, a mixture over epsilon (all
    layers) fitted to the posterior mean paths; the bound's prior term is log pi(epsilon)."""
    from genlab.objectives import log_standard_normal
    from tests.conformance import check_generative_model

    model = genlab.fit(
        "hvae", digits, epochs=4, latent_dims=(4, 4), hidden=(32,), width=64, seed=0,
        prior="mixture", prior_components=3,
    )  # fmt: skip
    with torch.no_grad():
        codes = model.encode(digits.x_train)
    assert float(model.prior.log_prob(codes).mean() - log_standard_normal(codes).mean()) > 0.1
    # the ELBO (k = 1, the same noise) moves by exactly log pi(eps) - log N(eps; 0, I)
    x = digits.x_test[:20] + torch.rand(20, 1, 8, 8, generator=torch.Generator()) - 0.5
    with torch.no_grad():
        mixture = model.log_prob(x, k=1, generator=torch.Generator().manual_seed(5))
        noise = torch.randn(1, 20, model.latent_dim, generator=torch.Generator().manual_seed(5))
        eps = model.infer(model._inputs(x), noise).eps
        prior, model.prior = model.prior, None
        normal = model.log_prob(x, k=1, generator=torch.Generator().manual_seed(5))
        model.prior = prior
    torch.testing.assert_close(
        mixture - normal, (prior.log_prob(eps) - log_standard_normal(eps)).squeeze(0),
        atol=1e-4, rtol=1e-4,
    )  # fmt: skip
    check_generative_model(model, digits, tmp_path)
