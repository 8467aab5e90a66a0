"""Probabilistic PCA against scikit-learn and the Gaussian closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.decomposition import PCA as SklearnPCA

import genlab
from genlab.data import DataInfo, Dataset
from genlab.models import PCA
from genlab.models.pca import PCAConfig


def fitted_pca(x: torch.Tensor, k: int) -> PCA:
    info = DataInfo(name="test", event_shape=(x.shape[1],), kind="vector")
    model = PCA(PCAConfig(latent_dim=k), info)
    model.fit_closed_form(x, torch.Generator())
    return model


@pytest.fixture
def correlated():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + rng.normal(size=6)
    return torch.from_numpy(x)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_log_prob_equals_sklearn_score_samples(correlated, k):
    model = fitted_pca(correlated, k)
    reference = SklearnPCA(n_components=k, svd_solver="full").fit(correlated.numpy())
    ours = model.log_prob(correlated).numpy()
    np.testing.assert_allclose(ours, reference.score_samples(correlated.numpy()), rtol=1e-6)


def test_log_prob_equals_sklearn_on_digits(digits):
    x = digits.x_train.flatten(1).double()
    model = fitted_pca(x, 8)
    reference = SklearnPCA(n_components=8, svd_solver="full").fit(x.numpy())
    x_test = digits.x_test.flatten(1).double()
    np.testing.assert_allclose(
        model.log_prob(x_test).numpy(), reference.score_samples(x_test.numpy()), rtol=1e-6
    )


def test_fit_through_the_loop_uses_all_the_training_data():
    """``genlab.fit`` carves no validation split for a closed-form fit: PPCA fitted on all of
    x_train is scikit-learn's probabilistic PCA of x_train (a 90% fit would differ by ~1e-2)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + rng.normal(size=6)
    x = torch.from_numpy(x).float()  # float32, as datasets hold it
    info = DataInfo(name="test", event_shape=(6,), kind="vector")  # continuous: no dequantising
    data = Dataset(x_train=x[:400], x_test=x[400:], info=info)
    for k in (1, 3):
        model = genlab.fit("pca", data, latent_dim=k, device="cpu")
        reference = SklearnPCA(n_components=k, svd_solver="full").fit(data.x_train.double())
        np.testing.assert_allclose(
            model.log_prob(data.x_test.double()).numpy(),
            reference.score_samples(data.x_test.double().numpy()),
            rtol=1e-6,
        )
        np.testing.assert_allclose(
            model.covariance().numpy(), reference.get_covariance(), rtol=1e-6, atol=1e-12
        )


def test_density_is_the_gaussian_with_covariance_wwt_plus_noise(correlated):
    model = fitted_pca(correlated, 2)
    cov = (model.weight @ model.weight.T + model.noise_variance * torch.eye(6)).numpy()
    expected = multivariate_normal(model.mean.numpy(), cov).logpdf(correlated.numpy())
    np.testing.assert_allclose(model.log_prob(correlated).numpy(), expected, rtol=1e-7)


def test_subspace_and_noise_match_the_eigendecomposition(correlated):
    model = fitted_pca(correlated, 3)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(correlated.numpy().T))
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    assert float(model.noise_variance) == pytest.approx(eigenvalues[3:].mean(), rel=1e-9)
    # W W^T = U_k (L_k - s^2) U_k^T
    expected = (
        eigenvectors[:, :3]
        @ np.diag(eigenvalues[:3] - eigenvalues[3:].mean())
        @ eigenvectors[:, :3].T
    )
    np.testing.assert_allclose((model.weight @ model.weight.T).numpy(), expected, atol=1e-9)


def test_posterior_matches_bayes_rule(correlated):
    """p(z|x) from the closed form equals the Gaussian conditional of the joint (z, x)."""
    model = fitted_pca(correlated, 2)
    w, mu, s2 = model.weight, model.mean, model.noise_variance
    joint_cov = torch.cat(
        [
            torch.cat([torch.eye(2, dtype=torch.float64), w.T], 1),
            torch.cat([w, w @ w.T + s2 * torch.eye(6, dtype=torch.float64)], 1),
        ]
    )
    c_zx, c_xx = joint_cov[:2, 2:], joint_cov[2:, 2:]
    x = correlated[:5]
    expected_mean = (c_zx @ torch.linalg.solve(c_xx, (x - mu).T)).T
    expected_cov = torch.eye(2, dtype=torch.float64) - c_zx @ torch.linalg.solve(c_xx, c_zx.T)
    posterior = model.posterior(x)
    torch.testing.assert_close(posterior.mean, expected_mean)
    torch.testing.assert_close(posterior.covariance_matrix[0], expected_cov)


def test_reconstruction_is_the_orthogonal_projection(correlated):
    model = fitted_pca(correlated, 3)
    reference = SklearnPCA(n_components=3, svd_solver="full").fit(correlated.numpy())
    expected = reference.inverse_transform(reference.transform(correlated.numpy()))
    np.testing.assert_allclose(model.reconstruct(correlated).numpy(), expected, atol=1e-9)


def test_conditional_matches_gaussian_conditioning_formulas(correlated):
    model = fitted_pca(correlated, 2)
    c = model.covariance().numpy()
    mu = model.mean.numpy()
    mask = torch.tensor([True, False, True, False, False, True])
    o, u = mask.numpy(), ~mask.numpy()
    x = correlated[:4]
    mean, cov = model.conditional_distribution(x, mask)
    gain = c[np.ix_(u, o)] @ np.linalg.inv(c[np.ix_(o, o)])
    expected_mean = mu[u] + (x.numpy()[:, o] - mu[o]) @ gain.T
    expected_cov = c[np.ix_(u, u)] - gain @ c[np.ix_(o, u)]
    np.testing.assert_allclose(mean.numpy(), expected_mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cov.numpy(), expected_cov, rtol=1e-9, atol=1e-9)


def test_conditional_samples_have_the_closed_form_moments(correlated):
    model = fitted_pca(correlated, 2)
    mask = torch.tensor([True, True, False, True, False, False])
    x = correlated[:1]
    samples = model.sample_conditional(x, mask, 20_000, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (20_000, 1, 6)
    assert torch.equal(samples[:, 0, mask], x[:, mask].expand(20_000, -1))
    mean, cov = model.conditional_distribution(x, mask)
    free = samples[:, 0, ~mask]
    sd = cov.diagonal().sqrt()
    assert ((free.mean(0) - mean[0]).abs() < 4 * sd / np.sqrt(20_000)).all()
    c = cov.numpy()
    se = np.sqrt((np.outer(c.diagonal(), c.diagonal()) + c**2) / 20_000)
    assert (np.abs(np.cov(free.numpy().T) - c) < 4.5 * se).all()


def test_per_example_masks(correlated):
    model = fitted_pca(correlated, 2)
    x = correlated[:3]
    masks = torch.tensor(
        [[1, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool
    )
    out = model.sample_conditional(x, masks, 2, generator=torch.Generator().manual_seed(0))
    for i in range(3):
        assert torch.equal(out[:, i, masks[i]], x[i, masks[i]].expand(2, -1))


def test_samples_have_the_model_covariance(correlated):
    model = fitted_pca(correlated, 3)
    n = 50_000
    x = model.sample(n, generator=torch.Generator().manual_seed(0)).double()
    cov = model.covariance().numpy()
    # standard error of a sample covariance entry: sqrt((c_ii c_jj + c_ij^2) / n)
    se = np.sqrt((np.outer(cov.diagonal(), cov.diagonal()) + cov**2) / n)
    assert (np.abs(np.cov(x.numpy().T) - cov) < 4.5 * se).all()


def test_latent_dim_must_be_below_data_dimension():
    from genlab.errors import ConfigError

    with pytest.raises(ConfigError, match="smaller than the 2 data dimensions"):
        PCA(PCAConfig(latent_dim=2), DataInfo(name="t", event_shape=(2,), kind="vector"))
