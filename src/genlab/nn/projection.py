r"""The projection discriminator of class-conditional GANs (Miyato & Koyama, 2018).

References:
    Miyato & Koyama, "cGANs with Projection Discriminator", ICLR 2018, arXiv:1802.05637.
"""

from __future__ import annotations

from torch import Tensor, nn


class ProjectionDiscriminator(nn.Module):
    r""":math:`D(x, y) = \psi(\phi(x)) + \langle V e_y, \phi(x) \rangle` (Miyato & Koyama, eq. 3).

    :math:`\phi` maps data to ``n_features`` features, :math:`\psi` is a linear head and
    :math:`V e_y` the learned embedding of the one-hot label :math:`e_y` (a bias-free linear map,
    so that spectral normalisation and weight clipping treat it as every other layer). The label
    enters by an inner product with the features rather than as an input: the optimal
    discriminator is :math:`\log \frac{p(x, y)}{q(x, y)} = \log \frac{p(x)}{q(x)} + \log
    \frac{p(y \mid x)}{q(y \mid x)}`, and when both class posteriors are softmaxes of linear maps
    of :math:`\phi(x)`, the second term is :math:`(v^p_y - v^q_y)^\top \phi(x)` plus a term of
    :math:`x` alone, which :math:`\psi` absorbs (their section 3).

    Arguments:
        features: :math:`\phi`, ``(B, *event_shape) -> (B, n_features)``.
        n_features: its output size.
        n_classes: number of labels.

    Example:
        >>> d = ProjectionDiscriminator(nn.Flatten(), 4, n_classes=3)
        >>> d(torch.zeros(2, 1, 2, 2), torch.eye(3)[:2]).shape
        torch.Size([2, 1])
    """

    def __init__(self, features: nn.Module, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(n_features, 1)
        self.embed = nn.Linear(n_classes, n_features, bias=False)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        """``(B, 1)`` outputs for data ``x`` and ``(B, n_classes)`` one-hot ``labels``."""
        h = self.features(x)  # (B, F)
        return self.head(h) + (self.embed(labels.to(h.dtype)) * h).sum(1, keepdim=True)


__all__ = ["ProjectionDiscriminator"]
