r"""Feature extraction in chunks and streaming Gaussian statistics of features.

A feature extractor is any function ``(batch, *event_shape) -> (batch, n_features)`` (the
domain network's penultimate layer, an encoder, ``None`` for the flattened data itself).
:class:`GaussianStatistics` accumulates, chunk by chunk and in float64,

.. math::
    \hat\mu = c + \frac1N\sum_i (x_i - c), \qquad
    \hat\Sigma = \frac{1}{N-1}\Big(\sum_i (x_i-c)(x_i-c)^\top - N(\hat\mu-c)(\hat\mu-c)^\top\Big),

with the shift :math:`c` = the first chunk's mean (so the sums stay well conditioned); memory
is :math:`O(d^2)` whatever :math:`N`. The outer-product sums use ``c.T @ c``, which numpy
hands to BLAS ``syrk`` (half the work of a general matrix product).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from genlab.errors import DataError
from genlab.stats.validation import ArrayLike

FeatureExtractor = Callable[[Tensor], Tensor]
CHUNK = 4096


class GaussianStatistics:
    """Streaming mean and covariance of feature rows (float64, on the CPU).

    Example:
        >>> stats = GaussianStatistics()
        >>> for chunk in torch.randn(1000, 3).split(300):
        ...     stats.update(chunk)
        >>> stats.n, stats.covariance.shape
        (1000, (3, 3))
    """

    def __init__(self) -> None:
        self.n = 0
        self._shift: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None

    def update(self, features: ArrayLike) -> None:
        """Add ``(batch, n_features)`` rows."""
        x = _as_numpy(features)
        if x.ndim != 2:
            raise DataError(f"features must be (batch, n_features), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise DataError("features contain NaN or infinite values")
        if len(x) == 0:
            return
        if self._shift is None:
            self._shift = x.mean(0, dtype=np.float64)
            self._sum = np.zeros(x.shape[1])
            self._outer = np.zeros((x.shape[1], x.shape[1]))
        elif x.shape[1] != len(self._shift):
            raise DataError(f"features of size {x.shape[1]}, expected {len(self._shift)}")
        centred = np.subtract(x, self._shift, dtype=np.float64)  # one pass, float64 out
        self._sum += centred.sum(0)
        self._outer += centred.T @ centred  # BLAS syrk
        self.n += len(x)

    def _check(self) -> None:
        if self.n < 2:
            raise DataError(f"need at least 2 feature rows for a covariance, got {self.n}")

    @property
    def mean(self) -> np.ndarray:
        """:math:`\\hat\\mu`, ``(n_features,)``."""
        self._check()
        return self._shift + self._sum / self.n

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased :math:`\\hat\\Sigma`, ``(n_features, n_features)``."""
        self._check()
        m = self._sum / self.n
        return (self._outer - self.n * np.outer(m, m)) / (self.n - 1)


def _as_numpy(x: ArrayLike) -> np.ndarray:
    """Floating rows as they are (float32 stays float32 until centring), others as float64."""
    if isinstance(x, Tensor):
        x = x.detach().cpu()
        x = (x if x.dtype in (torch.float32, torch.float64) else x.double()).numpy()
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


@torch.no_grad()
def extract_features(
    x: Tensor, extractor: FeatureExtractor | None = None, chunk_size: int = CHUNK
) -> Iterable[Tensor]:
    """Yield ``extractor(chunk)`` (or the flattened chunk) as ``(chunk, n_features)`` rows."""
    for chunk in x.split(chunk_size):
        out = chunk if extractor is None else extractor(chunk)
        yield out.reshape(len(out), -1)


def feature_statistics(
    x: Tensor | np.ndarray, extractor: FeatureExtractor | None = None, chunk_size: int = CHUNK
) -> GaussianStatistics:
    """:class:`GaussianStatistics` of ``extractor`` features of ``x`` (chunked)."""
    stats = GaussianStatistics()
    source = torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else x
    for features in extract_features(source, extractor, chunk_size):
        stats.update(features)
    return stats


def all_features(
    x: Tensor, extractor: FeatureExtractor | None = None, chunk_size: int = CHUNK
) -> Tensor:
    """All feature rows at once, float64 on the CPU (for k-NN and kernel metrics)."""
    return torch.cat([f.double().cpu() for f in extract_features(x, extractor, chunk_size)])
