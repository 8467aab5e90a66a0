"""Autoencoder: the MLP one beats PCA (the linear one finding the principal subspace is checked by
tests/test_experiments.py::test_linear_ae_is_pca, the same training with its angle < 5 degrees)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA as SklearnPCA

import genlab


def test_nonlinear_autoencoder_reconstructs_better_than_pca(digits):
    model = genlab.fit("ae", digits, latent_dim=8, epochs=150, seed=0)
    x_test = digits.x_test
    with torch.no_grad():
        ae_mse = float((model.reconstruct(x_test) - x_test).square().mean())
    pca = SklearnPCA(n_components=8).fit(digits.x_train.flatten(1).numpy())
    flat = x_test.flatten(1).numpy()
    pca_mse = float(np.square(pca.inverse_transform(pca.transform(flat)) - flat).mean())
    assert ae_mse < 0.8 * pca_mse, (ae_mse, pca_mse)
    # and genlab's own PCA agrees with scikit-learn's reconstruction error
    ours = genlab.evaluate(genlab.fit("pca", digits, latent_dim=8), digits)["recon_mse"]
    assert abs(ours - pca_mse) / pca_mse < 0.02


def test_conv_autoencoder_trains_and_round_trips_shapes(digits):
    model = genlab.fit(
        "ae", digits, architecture="conv", latent_dim=8, channels=8, epochs=3, seed=0
    )
    with torch.no_grad():
        out = model.reconstruct(digits.x_test[:5])
    assert out.shape == (5, 1, 8, 8)


def test_two_stage_samples_resemble_data(digits):
    """Samples from the code-space mixture decode to images with the data's pixel statistics."""
    model = genlab.fit("ae", digits, latent_dim=8, epochs=100, seed=0)
    with torch.no_grad():
        x = model.sample(500, generator=torch.Generator().manual_seed(0))
    data_mean = digits.x_train.mean(0)
    assert float((x.mean(0) - data_mean).abs().mean()) < 0.6  # pixel values span 0..16
