r"""A linear autoencoder trained by gradient descent recovers the principal subspace.

For :math:`\min_{A, B} \lVert X - X A B \rVert^2` with :math:`A \in \mathbb R^{D \times k}`, every
minimum spans the top-:math:`k` principal subspace and there are no other local minima
(Baldi & Hornik, 1989). We train genlab's ``ae`` with ``architecture="linear"`` on ``digits`` and
track the principal angles between the decoder's column space and scikit-learn's top-k PCA
subspace (``scipy.linalg.subspace_angles``) at every epoch.

References:
    Baldi & Hornik, "Neural networks and principal component analysis: learning from examples
    without local minima", Neural Networks 2(1), 1989.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA as SklearnPCA

from genlab.api import fit
from genlab.data import load
from genlab.experiments.base import Budget, ExperimentResult
from genlab.models import GenerativeModel
from genlab.report.figures import new_figure

NAME = "linear-ae-is-pca"
CLAIM = (
    "A linear autoencoder trained by gradient descent on digits converges to the top-k "
    "principal subspace."
)
LATENT_DIM = 8
EPOCHS = {"smoke": 300, "full": 600}
THRESHOLD_DEGREES = {"smoke": 5.0, "full": 2.0}


def decoder_columns(model: GenerativeModel) -> np.ndarray:
    """``(D, k)`` weight of the linear decoder (its column space is the learned subspace)."""
    return model.decoder[0][0].weight.detach().double().cpu().numpy()


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    data = load("digits")
    x = data.x_train.flatten(1).numpy()
    principal = SklearnPCA(n_components=LATENT_DIM).fit(x).components_.T
    steps, angles = [], []

    def track(step: int, model: GenerativeModel) -> dict[str, float]:
        degrees = np.degrees(subspace_angles(decoder_columns(model), principal))
        steps.append(step)
        angles.append(np.sort(degrees))
        return {"largest_angle": float(degrees.max())}

    fit(
        "ae", data, seed=seed, architecture="linear", latent_dim=LATENT_DIM,
        epochs=EPOCHS[budget], lr=1e-2, val_fraction=0.0, patience=None, callback=track,
    )  # fmt: skip
    history = np.array(angles)  # (evaluations, k)
    final = float(history[-1].max())
    threshold = THRESHOLD_DEGREES[budget]
    fig, ax = new_figure(1, width=5.5)
    for i in range(LATENT_DIM):
        ax.semilogy(steps, history[:, i], lw=1, color="#1f6fb4", alpha=0.3 + 0.7 * i / LATENT_DIM)
    ax.axhline(threshold, color="#d1495b", ls=":", lw=1, label=f"{threshold:g} degrees")
    ax.set(
        xlabel="step",
        ylabel="principal angle (degrees)",
        title=f"linear AE vs PCA, k={LATENT_DIM}",
    )
    ax.legend(fontsize=8)
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=final < threshold and final < history[0].max() / 5,
        criterion=f"largest principal angle ends below {threshold:g} degrees and 5x below its start",
        numbers={
            "largest_angle_start": float(history[0].max()),
            "largest_angle_final": final,
            "angles_final": history[-1].tolist(),
            "steps": steps[-1],
        },
        figure=fig,
    )
