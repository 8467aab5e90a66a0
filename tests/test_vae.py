"""VAE: objectives against closed forms, the bound against PPCA's exact likelihood, IW ordering,
likelihood options, binarisation, warm-up and posterior-collapse diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

import genlab
from genlab.data import DataInfo, Dataset
from genlab.errors import ConfigError, DataError
from genlab.models import PCA
from genlab.models.pca import PCAConfig
from genlab.models.vae import VAE, VAEConfig
from genlab.nn.likelihoods import LIKELIHOODS
from genlab.objectives import elbo, iw_bound, kl_standard_normal, log_importance_weights
from genlab.runs import read_metrics

# ---------------------------------------------------------------------- objectives


def test_kl_matches_torch_distributions_and_monte_carlo():
    loc = torch.randn(7, 3, dtype=torch.float64)
    log_scale = 0.5 * torch.randn(7, 3, dtype=torch.float64)
    q = Normal(loc, log_scale.exp())
    prior = Normal(torch.zeros(()), torch.ones(()))
    expected = kl_divergence(q, prior)
    torch.testing.assert_close(kl_standard_normal(loc, log_scale), expected)
    z = q.sample((200_000,))
    monte_carlo = (q.log_prob(z) - prior.log_prob(z)).mean(0)
    assert (monte_carlo - expected).abs().max() < 0.02


def test_iw_bound_is_log_mean_of_weights_and_elbo_is_the_difference():
    log_w = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(iw_bound(log_w), log_w.exp().mean(0).log())
    torch.testing.assert_close(iw_bound(log_w[:1]), log_w[0])
    ll, kl = torch.randn(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    torch.testing.assert_close(elbo(ll, kl, beta=0.5), ll - 0.5 * kl)


def test_objectives_pass_gradcheck():
    loc = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    log_scale = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(kl_standard_normal, (loc, log_scale))
    log_w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(iw_bound, (log_w,))
    parts = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    assert torch.autograd.gradcheck(log_importance_weights, tuple(parts))
    ll, kl = (torch.randn(3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda a, b: elbo(a, b, 0.3), (ll, kl))


# ---------------------------------------------------------------------- PPCA as a linear VAE


def _ppca_data(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(6, 2, generator=g, dtype=torch.float64) * 1.5
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return z @ w.T + 0.5 * torch.randn(n, 6, generator=g, dtype=torch.float64) + 2.0


def _vector_info() -> DataInfo:
    return DataInfo("ppca", (6,), "vector", value_range=(-10.0, 10.0))


def test_linear_vae_with_the_exact_posterior_has_elbo_equal_to_log_p():
    """A linear-Gaussian VAE set to PPCA's W, mu, sigma with the encoder set to the exact
    posterior: every importance weight equals p(x), so ELBO = IW bound = log p(x) exactly."""
    x = _ppca_data(300)
    pca = PCA(PCAConfig(latent_dim=2), _vector_info())
    pca.fit_closed_form(x, torch.Generator())
    vae = VAE(
        VAEConfig(latent_dim=2, architecture="linear", likelihood="gaussian"), _vector_info()
    ).double()
    vae.prepare(x)
    m, s = vae.normalizer.shift, vae.normalizer.scale  # encoder and decoder see (x - m) / s
    mu, w, noise = pca.mean, pca.weight, pca.noise_variance
    precision_factor = w.T @ w + noise * torch.eye(2, dtype=torch.float64)  # M, diagonal here
    assert torch.allclose(precision_factor, torch.diag(precision_factor.diagonal()), atol=1e-8)
    gain = torch.linalg.solve(precision_factor, w.T)  # E[z|x] = M^-1 W^T (x - mu)
    target = vae.likelihood.normalizer  # the Gaussian likelihood standardises the same way
    with torch.no_grad():
        encoder = vae.encoder[1][0]
        encoder.weight.zero_()
        encoder.bias.zero_()
        encoder.weight[:2] = gain * s
        encoder.bias[:2] = gain @ (m - mu)
        encoder.bias[2:] = 0.5 * torch.log(noise / precision_factor.diagonal())
        decoder = vae.decoder[0]
        decoder.weight.copy_(w / target.scale[:, None])
        decoder.bias.copy_((mu - target.shift) / target.scale)
        vae.likelihood.log_std.copy_(0.5 * torch.log(noise) - target.scale.log())
    x_test = _ppca_data(50, seed=1)
    exact = pca.log_prob(x_test)
    torch.testing.assert_close(vae.log_prob(x_test, k=1), exact, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(vae.log_prob(x_test, k=20), exact, rtol=1e-9, atol=1e-9)


def test_trained_linear_vae_bound_approaches_ppca_log_likelihood():
    """gap_k = log p_PPCA(x) - IW_k(x), averaged over a test set: small at k = 1000, and
    smaller than at k = 1 (the bound rises with k; the VAE's own model, with one noise variance
    per coordinate, may be a little above or below PPCA's, so the gap is signed)."""
    x_train, x_test = _ppca_data(3000).float(), _ppca_data(2000, seed=1).float()
    data = Dataset(x_train, x_test, _vector_info())
    pca = genlab.fit("pca", data, latent_dim=2)
    vae = genlab.fit(
        "vae",
        data,
        architecture="linear",
        latent_dim=2,
        likelihood="gaussian",
        epochs=40,
        batch_size=100,
        lr=1e-2,
        val_fraction=0.0,
        seed=0,
    )
    with torch.no_grad():
        exact = float(pca.log_prob(x_test).mean())
        gap = {
            k: exact
            - float(vae.log_prob(x_test, k=k, generator=torch.Generator().manual_seed(k)).mean())
            for k in (1, 1000)
        }
    assert abs(gap[1000]) < 0.5, gap
    assert gap[1000] < gap[1], gap


# ---------------------------------------------------------------------- trained on digits


@pytest.fixture(scope="module")
def digits_vae(digits):
    return genlab.fit("vae", digits, epochs=15, latent_dim=8, hidden=(128,), seed=0)


def test_iw_bounds_increase_with_k_on_average(digits_vae, digits):
    x = digits.x_test[:200] + torch.rand(200, 1, 8, 8, generator=torch.Generator()) - 0.5
    with torch.no_grad():
        bounds = {
            k: float(
                digits_vae.log_prob(x, k=k, generator=torch.Generator().manual_seed(k)).mean()
            )
            for k in (1, 10, 100)
        }
    assert bounds[1] < bounds[10] < bounds[100], bounds


def test_vae_beats_ppca_in_bits_per_dim_and_reports_its_bound(digits_vae, digits):
    result = genlab.evaluate(digits_vae, digits, importance_samples=50)
    assert result["log_prob_kind"] == "lower_bound"
    assert result["importance_samples"] == 50
    ppca = genlab.evaluate(genlab.fit("pca", digits, latent_dim=8), digits)
    assert ppca["importance_samples"] is None
    assert result["bits_per_dim"] < ppca["bits_per_dim"] - 0.3, (result, ppca)
    # nats and bits/dim are the same number in two units (D = 64, step 1)
    assert result["bits_per_dim"] == pytest.approx(result["nll_nats"] / (64 * math.log(2)))


def test_log_prob_is_deterministic_and_posterior_is_a_distribution(digits_vae, digits):
    x = digits.x_test[:5]
    with torch.no_grad():
        torch.testing.assert_close(digits_vae.log_prob(x, k=7), digits_vae.log_prob(x, k=7))
        q = digits_vae.posterior(x)
    assert isinstance(q, Independent) and q.event_shape == (8,) and q.batch_shape == (5,)
    torch.testing.assert_close(q.mean, digits_vae.encode(x))
    with pytest.raises(ConfigError, match="k"):
        digits_vae.log_prob(x, k=0)


def test_log_prob_evaluates_in_bounded_chunks_with_the_same_result(
    digits_vae, digits, monkeypatch
):
    import genlab.nn.likelihoods as likelihoods_module

    x = digits.x_test[:20]
    generator = torch.Generator()
    with torch.no_grad():
        whole = digits_vae.log_prob(x, k=64)
        drawn = digits_vae.log_prob(x, k=64, generator=generator.manual_seed(0))
        # 2 parameters of 64 pixels: passes of 8, 8 and 4 examples, of 1, 1 and 2 samples each
        monkeypatch.setattr(likelihoods_module, "PASS_VALUES", 8 * 2 * 64)
        assert digits_vae.likelihood.rows_per_pass() == 8
        torch.testing.assert_close(digits_vae.log_prob(x, k=64), whole)
        chunked = digits_vae.log_prob(x, k=64, generator=generator.manual_seed(0))
        torch.testing.assert_close(chunked, drawn)


def test_validation_logs_per_dimension_kl_and_active_units(tmp_path, digits):
    genlab.fit("vae", digits, out=tmp_path / "run", epochs=2, latent_dim=6, hidden=(32,), seed=0)
    val = [r for r in read_metrics(tmp_path / "run") if r["split"] == "val"]
    assert val and all(f"kl_{j}" in val[-1] for j in range(6))
    assert 0 <= val[-1]["active_units"] <= 6
    assert val[-1]["kl"] == pytest.approx(sum(val[-1][f"kl_{j}"] for j in range(6)), rel=1e-5)


def test_kl_warmup_ramps_beta_linearly():
    config = VAEConfig(latent_dim=2, hidden=(8,), beta=2.0, warmup_steps=4)
    model = VAE(config, _vector_info())
    weights = []
    for _ in range(6):
        weights.append(model.kl_weight())
        model.steps_done += 1
    assert weights == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])


def test_active_units_count_only_informative_coordinates():
    model = VAE(VAEConfig(latent_dim=3, architecture="linear"), _vector_info())
    with torch.no_grad():
        encoder = model.encoder[1][0]
        encoder.weight.zero_()
        encoder.bias.zero_()
        encoder.weight[0, 0] = 1.0  # only z_0's mean varies with x
    x = torch.randn(500, 6)
    assert model.active_units(x) == 1
    kl = model.kl_per_dimension(x)
    assert kl[1] == pytest.approx(0.0, abs=1e-6) and kl[0] > 0.1


# ---------------------------------------------------------------------- likelihood options


def _binary_dataset() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(600, 1, 4, 4, generator=g) < 0.3).float() * 255.0
    info = DataInfo("binary", (1, 4, 4), "image", levels=256, value_range=(0.0, 255.0))
    return Dataset(x[:500], x[500:], info)


@pytest.mark.parametrize(
    "likelihood,dataset",
    [
        ("bernoulli", "binary"),
        ("continuous_bernoulli", "digits"),
        ("gaussian", "digits"),
        ("discretized_logistic", "digits"),
        ("categorical", "digits"),
        ("gaussian", "ring"),
    ],
)
def test_every_likelihood_trains_samples_and_evaluates(likelihood, dataset, request):
    data = _binary_dataset() if dataset == "binary" else request.getfixturevalue(dataset)
    model = genlab.fit(
        "vae", data, likelihood=likelihood, steps=20, latent_dim=2, hidden=(16,), seed=0
    )
    with torch.no_grad():
        x = model.sample(6, generator=torch.Generator().manual_seed(0))
        assert x.shape == (6, *data.info.event_shape) and torch.isfinite(x).all()
        low, high = data.info.value_range
        if likelihood != "gaussian":  # the others have the data's bounded support
            assert x.min() >= low - 0.5 and x.max() <= high + 0.5
        decoded = model.decode(model.encode(data.x_test[:4]))
        assert decoded.shape == (4, *data.info.event_shape)
    result = genlab.evaluate(model, data, importance_samples=5)
    assert math.isfinite(result["nll_nats"])


def test_conv_architecture_trains(digits):
    model = genlab.fit("vae", digits, architecture="conv", channels=4, steps=10, latent_dim=3)
    assert model.encode(digits.x_test[:2]).shape == (2, 3)


def test_bernoulli_refuses_grey_levels_unless_binarised(digits):
    with pytest.raises(DataError, match="binarize"):  # before any training
        genlab.fit("vae", digits, likelihood="bernoulli", steps=2)
    with pytest.raises(ConfigError, match="bernoulli"):
        genlab.fit("vae", digits, binarize=True, steps=2)
    model = genlab.fit(
        "vae", digits, likelihood="bernoulli", binarize=True, steps=20, hidden=(16,), seed=0
    )
    with pytest.raises(DataError, match="binar"):
        model.log_prob(digits.x_test[:3])
    binary = torch.where(digits.x_test[:3] > 8, 16.0, 0.0)  # first and last levels only
    assert torch.isfinite(model.log_prob(binary)).all()


def test_discrete_likelihoods_give_the_probability_of_the_bin():
    """p(x~) = P(bin(x~)) / delta^D: the same for every point of a bin, and log P(x) after
    adding D log delta. Checked with 5 levels spaced 2 apart in 1-D."""
    info = DataInfo("t", (1,), "vector", levels=5, value_range=(0.0, 8.0))
    for name in ("discretized_logistic", "categorical"):
        model = VAE(VAEConfig(latent_dim=1, hidden=(4,), likelihood=name), info)
        params = torch.randn(1, model.likelihood.n_params, 1)
        levels = torch.arange(5.0)
        log_probs = model.likelihood.distribution(params.expand(5, -1, -1)).log_prob(
            levels[:, None]
        )
        assert float(log_probs.exp().sum()) == pytest.approx(1.0, abs=1e-6)
        for j in range(5):
            inside = torch.tensor([[2.0 * j - 0.99], [2.0 * j], [2.0 * j + 0.99]])  # one bin
            target = model.likelihood.target(inside)
            density = model.likelihood.log_prob(params.expand(3, -1, -1), target)
            torch.testing.assert_close(density, (log_probs[j] - math.log(2.0)).expand(3))


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_the_discrete_flag_marks_the_likelihoods_constant_on_each_bin(name):
    """``Likelihood.discrete`` (what ``needs_dequantization`` of the VAE, HVAE, VQ-VAE and
    autoregressive families reads) holds exactly for the likelihoods whose density in data
    units is constant across a level's bin: a law over the levels, which dequantisation noise
    cannot change."""
    levels = 2 if name == "bernoulli" else 5  # Bernoulli: the first and last levels only
    info = DataInfo("t", (1,), "vector", levels=levels, value_range=(0.0, 2.0 * (levels - 1)))
    model = VAE(VAEConfig(latent_dim=1, hidden=(4,), likelihood=name), info).double()
    model.prepare(torch.tensor([[0.0], [2.0], [2.0 * (levels - 1)]], dtype=torch.float64))
    inside = torch.tensor([[-0.9], [0.0], [0.9]], dtype=torch.float64)  # the first level's bin
    params = torch.full((3, model.likelihood.n_params, 1), 0.3, dtype=torch.float64)
    with torch.no_grad():
        density = model.likelihood.log_prob(params, model.likelihood.target(inside))
    constant = bool(torch.allclose(density, density[:1].expand(3)))
    assert model.likelihood.discrete == constant
    assert model.needs_dequantization == (not constant)


def test_continuous_likelihoods_integrate_to_one_in_data_units():
    info = DataInfo("t", (1,), "vector", levels=5, value_range=(0.0, 8.0))  # support [-1, 9]
    grid = torch.linspace(-1.0, 9.0, 20001, dtype=torch.float64)[:, None]
    for name in ("continuous_bernoulli", "gaussian"):
        model = VAE(VAEConfig(latent_dim=1, hidden=(4,), likelihood=name), info).double()
        model.prepare(torch.tensor([[0.0], [2.0], [8.0]], dtype=torch.float64))
        params = torch.full((len(grid), 1, 1), 0.3, dtype=torch.float64)
        with torch.no_grad():
            density = model.likelihood.log_prob(params, model.likelihood.target(grid)).exp()
        mass = float(torch.trapezoid(density, grid[:, 0]))
        if name == "gaussian":  # Gaussian mass outside [-1, 9] is not counted
            loc = model.likelihood.from_target(torch.tensor([[0.3]], dtype=torch.float64))
            std = float(
                model.likelihood.normalizer.scale * model.likelihood.log_std.detach().exp()
            )
            from scipy.stats import norm

            expected = norm.cdf(9.0, float(loc), std) - norm.cdf(-1.0, float(loc), std)
        else:
            expected = 1.0
        assert mass == pytest.approx(expected, abs=1e-4), name


def test_discretized_logistic_log_prob_passes_gradcheck_and_is_stable():
    from genlab.nn.likelihoods import DiscretizedLogistic

    loc = torch.randn(6, dtype=torch.float64, requires_grad=True)
    log_scale = torch.randn(6, dtype=torch.float64, requires_grad=True)
    value = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 2.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: DiscretizedLogistic(a, b, levels=5).log_prob(value), (loc, log_scale)
    )
    # far in the tails the naive log(sigmoid(u) - sigmoid(l)) is -inf; this is finite
    far = DiscretizedLogistic(torch.tensor([40.0]), torch.tensor([-6.0]), levels=5)
    assert torch.isfinite(far.log_prob(torch.tensor([2.0]))).all()
    reference = np.log(np.diff(1 / (1 + np.exp(-(np.array([0.25, 0.75]) - 0.1) / 0.2))))
    near = DiscretizedLogistic(
        torch.tensor([0.1], dtype=torch.float64),
        torch.tensor([math.log(0.2)], dtype=torch.float64),
        levels=5,
    )
    assert float(near.log_prob(torch.tensor([3.0], dtype=torch.float64))) == pytest.approx(
        float(reference[0]), rel=1e-10
    )


# ---------------------------------------------------------------------- command line


def test_cli_evaluate_reports_the_bound_and_its_importance_samples(tmp_path, capsys):
    import json

    from genlab.cli import main

    run = str(tmp_path / "vae")
    assert main(["train", "vae", "--out", run, "--budget", "smoke", "--no-progress"]) == 0
    assert main(["evaluate", run, "--json", "--importance-samples", "20"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["log_prob_kind"] == "lower_bound" and result["importance_samples"] == 20
    assert result["bits_per_dim"] == pytest.approx(result["nll_nats"] / (64 * math.log(2)))


@pytest.mark.parametrize("name", ["bernoulli", "discretized_logistic", "continuous_bernoulli"])
def test_total_log_prob_is_the_batch_sum_of_log_prob(name):
    from genlab.nn.likelihoods import make_likelihood

    info = DataInfo("t", (6,), "vector", levels=2 if name == "bernoulli" else 5)
    likelihood = make_likelihood(name, info).double()
    params = torch.randn(7, likelihood.n_params, 6, dtype=torch.float64)
    x = torch.randint(0, info.levels, (7, 6)).double() / (info.levels - 1)
    target = likelihood.target(x)
    torch.testing.assert_close(
        likelihood.total_log_prob(params, target), likelihood.log_prob(params, target).sum()
    )


@pytest.fixture(scope="module")
def mixture_vae(digits):
    return genlab.fit(
        "vae", digits, epochs=10, latent_dim=4, hidden=(64,), seed=0, prior="mixture",
        prior_components=5,
    )  # fmt: skip


def test_mixture_prior_is_fitted_to_the_aggregate_posterior(mixture_vae, digits):
    from genlab.objectives import log_standard_normal

    # the training examples' posteriors (a tenth of x_train is the validation split; close)
    with torch.no_grad():
        loc, log_scale = mixture_vae._posterior_params(digits.x_train)
    prior = mixture_vae.prior
    assert not torch.allclose(
        prior.means, torch.zeros_like(prior.means)
    )  # not the initial N(0, I)
    # the moments of the aggregate posterior mean_i N(loc_i, scale_i^2): mean E[loc], covariance
    # Cov(loc) + E[diag scale^2] (the law of total covariance)
    z = prior.sample(200_000, torch.Generator().manual_seed(0))
    aggregate = loc.T.cov() + torch.diag((2 * log_scale).exp().mean(0))
    torch.testing.assert_close(z.mean(0), loc.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(
        z.T.cov(), aggregate, atol=0.1 * float(aggregate.diag().max()), rtol=0
    )
    draws = loc + log_scale.exp() * torch.randn(
        loc.shape, generator=torch.Generator().manual_seed(1)
    )
    assert float(prior.log_prob(draws).mean() - log_standard_normal(draws).mean()) > 0.1


def test_mixture_vae_bound_sampling_and_samplers_use_the_mixture(mixture_vae, digits):
    model = mixture_vae
    x = (
        digits.x_test[:16]
        + torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        - 0.5
    )
    # the bound, rebuilt from its pieces with log pi(z) as the prior term
    eps = torch.randn(7, 16, 4, generator=torch.Generator().manual_seed(2))
    loc, log_scale = model._posterior_params(x)
    z = loc + log_scale.exp() * eps
    log_likelihood = model.likelihood.log_prob(
        model._decoder_params(z), model.likelihood.checked_target(x)
    )
    q = Independent(Normal(loc, log_scale.exp()), 1).log_prob(z)
    expected = iw_bound(log_likelihood + model.prior.log_prob(z) - q)
    got = model.log_prob(x, k=7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
    # samples decode codes drawn from the mixture
    means = model.sample_means(6, generator=torch.Generator().manual_seed(3))
    codes = model.prior.sample(6, torch.Generator().manual_seed(3))
    torch.testing.assert_close(means, model.decode(codes))
    # the conditional and posterior samplers target p(z) = pi(z)
    assert model.latent_variable_model().log_prior == model.log_prior
    assert model.latent_generator().log_prior == model.log_prior


def test_latent_posterior_targets_the_given_prior():
    from genlab.nn.mixture_prior import GaussianMixturePrior
    from genlab.samplers.latent import latent_posterior

    prior = GaussianMixturePrior(2, 1)
    prior.weights.copy_(torch.tensor([0.3, 0.7]))
    prior.means.copy_(torch.tensor([[-1.0], [1.5]]))
    prior.scale_tril.copy_(torch.tensor([[[0.5]], [[0.8]]]))
    chains = 4000
    loc, scale = torch.zeros(chains, 1), torch.full((chains, 1), 1.5)
    z, _ = latent_posterior(
        lambda codes: torch.zeros(codes.shape[:2]),  # nothing observed: the posterior is the prior
        loc, scale, n_candidates=16, steps=60, burn_in=30,
        generator=torch.Generator().manual_seed(0), log_prior=prior.log_prob,
    )  # fmt: skip
    mean = 0.3 * -1.0 + 0.7 * 1.5
    variance = 0.3 * (0.25 + 1.0) + 0.7 * (0.64 + 2.25) - mean**2
    assert abs(float(z.mean()) - mean) < 0.06
    assert abs(float(z.var()) - variance) < 0.12


def test_mixture_vae_conforms(mixture_vae, digits, tmp_path):
    from tests.conformance import check_generative_model

    check_generative_model(mixture_vae, digits, tmp_path)


def test_prior_option_is_checked():
    with pytest.raises(ConfigError, match="prior must be one of"):
        VAEConfig(prior="flow")
