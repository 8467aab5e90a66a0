"""How good is a code? Linear-probe and k-nearest-neighbour accuracy of ``encode(x)``.

Both classifiers are fitted on the codes of the training split and scored on the codes of the
test split; the probe's regularisation strength is chosen by cross-validation on the training
codes only (never on the test split).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from genlab.data.dataset import Dataset
from genlab.errors import DataError
from genlab.models.base import GenerativeModel

PROBE_C_GRID = (0.01, 0.1, 1.0, 10.0)


@torch.no_grad()
def encode_all(model: GenerativeModel, x: Tensor, chunk_size: int = 1024) -> Tensor:
    """``model.encode`` over ``x`` in chunks, returned on the CPU as float64."""
    model.eval()
    codes = [model.encode(c.to(model.device)).double().cpu() for c in x.split(chunk_size)]
    return torch.cat(codes)


def linear_probe_accuracy(
    z_train: Tensor, y_train: Tensor, z_test: Tensor, y_test: Tensor, *, seed: int = 0
) -> float:
    """Test accuracy of a multinomial logistic regression on standardised codes.

    The inverse regularisation strength is picked from :data:`PROBE_C_GRID` by 3-fold
    cross-validation on the training codes (fewer folds when a class has fewer examples).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _check(z_train, y_train, z_test, y_test)
    pipeline = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed)
    )
    folds = min(3, int(torch.unique(y_train, return_counts=True)[1].min()))
    search = GridSearchCV(pipeline, {"logisticregression__C": PROBE_C_GRID}, cv=folds)
    search.fit(z_train.numpy(), y_train.numpy())
    return float(search.score(z_test.numpy(), y_test.numpy()))


def knn_accuracy(
    z_train: Tensor, y_train: Tensor, z_test: Tensor, y_test: Tensor, *, k: int = 5
) -> float:
    """Test accuracy of a ``k``-nearest-neighbour vote in code space (Euclidean, standardised;
    at most as many neighbours as training codes)."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _check(z_train, y_train, z_test, y_test)
    classifier = make_pipeline(
        StandardScaler(), KNeighborsClassifier(n_neighbors=min(k, len(z_train)))
    )
    classifier.fit(z_train.numpy(), y_train.numpy())
    return float(classifier.score(z_test.numpy(), y_test.numpy()))


def representation_scores(
    model: GenerativeModel, data: Dataset, *, seed: int = 0, n_train: int | None = None
) -> dict[str, float]:
    """``probe_accuracy`` and ``knn_accuracy`` of the model's codes on a labelled dataset,
    fitted on the codes of ``n_train`` training examples (a uniform draw without replacement,
    seeded by ``seed``; ``None`` or more than the split: all of them).

    Empty when there is nothing to classify: fewer than two classes, or a class with a single
    training example (the probe's cross-validation needs two).
    """
    if not model.capabilities.encode:
        raise model.unsupported("encode")
    if data.y_train is None or data.y_test is None:
        raise DataError(f"{data.info.name}: representation metrics need labels")
    x_train, y_train = data.x_train, data.y_train
    if n_train is not None and n_train < len(x_train):
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(x_train), generator=generator)[:n_train].sort().values
        x_train, y_train = x_train[index], y_train[index]
    counts = torch.unique(y_train, return_counts=True)[1]
    if len(counts) < 2 or int(counts.min()) < 2:
        return {}
    z_train, z_test = encode_all(model, x_train), encode_all(model, data.x_test)
    return {
        "probe_accuracy": linear_probe_accuracy(z_train, y_train, z_test, data.y_test, seed=seed),
        "knn_accuracy": knn_accuracy(z_train, y_train, z_test, data.y_test),
    }


def _check(z_train: Tensor, y_train: Tensor, z_test: Tensor, y_test: Tensor) -> None:
    if len(z_train) != len(y_train) or len(z_test) != len(y_test):
        raise DataError("codes and labels differ in length")
    if not (np.isfinite(z_train.numpy()).all() and np.isfinite(z_test.numpy()).all()):
        raise DataError("codes contain NaN or infinite values")
