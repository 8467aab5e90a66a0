r"""Invertible layers for normalizing flows, each with its log-Jacobian determinant.

**Direction.** Every :class:`Bijection` maps *data* :math:`x` to *latent* :math:`z`:
``forward(x)`` returns ``(z, log_det)`` with ``log_det`` :math:`= \log |\det \partial z /
\partial x|` per example, and ``inverse(z)`` returns :math:`x` (sampling runs the inverse). A
flow's density is then the change of variables

.. math::
    \log p(x) = \log p_Z(f(x)) + \log \left|\det \frac{\partial f}{\partial x}\right|,
    \qquad f = f_L \circ \dots \circ f_1, \quad
    \log |\det J_f| = \sum_l \log |\det J_{f_l}|.

(normflows calls z -> x "forward"; zuko's ``transform`` maps x -> z as here.)

**Context.** Every layer also takes ``context``, ``(B, C)`` features of side information (the
one-hot label :math:`y`), and a conditional layer is a bijection of :math:`x` for each fixed context,
:math:`z = f(x; y)`, so :math:`\log p(x \mid y) = \log p_Z(f(x; y)) + \log |\det
\partial f(x; y) / \partial x|`, as zuko's conditional flows ``flow(c)``. The context enters
every conditioner (built with ``context_features = C``): the MLPs of couplings and splines as
extra inputs, conv conditioners as constant planes (:func:`~genlab.nn.append_context`), MADE as
inputs wired to every hidden unit. Layers without a conditioner (ActNorm, linear, logit,
standardisation) ignore it. With ``context_features = 0`` (the default) every layer is exactly
the unconditional one.

Layers: :class:`ActNorm`, :class:`InvertibleLinear` (LU, a 1x1
convolution on images), :class:`AffineCoupling` (RealNVP, with MLP or conv conditioners),
:class:`SplineCoupling` (neural spline flows), :class:`MaskedAffineAutoregressive` (MAF, with a
:class:`MADE` conditioner), :class:`Logit` (the pre-transform of bounded data) and
:class:`Standardize`; :class:`Chain` composes them, and :class:`Squeezed` runs a chain on
2x2-squeezed images (the multi-scale architecture).

References:
    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017,
    arXiv:1605.08803.
    Kingma & Dhariwal, "Glow", NeurIPS 2018, arXiv:1807.03039 (ActNorm, invertible 1x1 conv).
    Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation",
    NeurIPS 2017, arXiv:1705.07057.
    Germain et al., "MADE: Masked Autoencoder for Distribution Estimation", ICML 2015,
    arXiv:1502.03509.
    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019,
    arXiv:1906.04032.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.nn.affine import affine_transform, soft_clamp
from genlab.nn.context import append_context
from genlab.nn.denoisers import SelfAttention2d
from genlab.nn.fused_couplings import FusedCoupling, fused_affine_couplings
from genlab.nn.made import MADE
from genlab.nn.mlp import ACTIVATIONS, MLP
from genlab.nn.normalizer import AffineNormalizer


def _sum_per_example(t: Tensor) -> Tensor:
    return t.flatten(1).sum(1)


class Bijection(nn.Module):
    """An invertible map x -> z. ``forward(x, context) -> (z, log_det)``; ``inverse(z, context) -> x``.

    ``context`` is ``(B, C)`` side information for conditional layers, or ``None``; layers
    without a conditioner ignore it (module docstring).
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def initialize(self, x: Tensor, context: Tensor | None = None) -> None:
        """Data-dependent initialisation from a batch of inputs (ActNorm); default nothing."""


class Chain(Bijection):
    """Composition :math:`f_L \\circ \\dots \\circ f_1` (x -> z); the inverse runs backwards.

    A chain of affine couplings with ReLU MLP conditioners on vectors (a flow's default layers on
    the plane) runs its training passes (gradients on, no context, no autocast, not compiled) as
    one autograd node with a hand-written backward
    (:func:`~genlab.nn.fused_couplings.fused_affine_couplings`): the same numbers, a faster step.
    ``fused = False`` runs the layers one by one.
    """

    def __init__(self, layers: Sequence[Bijection]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        conditioners = [fusable_conditioner(layer) for layer in self.layers]
        self.fused = bool(conditioners) and all(linears is not None for linears in conditioners)
        self.fused_conditioners = conditioners
        self._fused: list[FusedCoupling] | None = None

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if (
            self.fused
            and context is None
            and torch.is_grad_enabled()
            and not torch.is_autocast_enabled(x.device.type)
            and not torch.compiler.is_compiling()
        ):
            return fused_affine_couplings(x, self._fused_couplings())
        log_dets = []
        for layer in self.layers:
            x, log_det = layer(x, context)
            log_dets.append(log_det)
        return x, torch.stack(log_dets).sum(0)  # two ops instead of one addition per layer

    def _fused_couplings(self) -> list[FusedCoupling]:
        """What the fused pass needs of each coupling, built once (each step rebuilt it: 0.05 ms
        of a small flow's step) and again after ``to()`` and its kin, which replace buffers."""
        if self._fused is None:
            self._fused = [
                FusedCoupling(layer.mask, layer.free, layer.bound, linears)
                for layer, linears in zip(self.layers, self.fused_conditioners, strict=True)
            ]
        return self._fused

    def _apply(self, fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 (torch's)
        self._fused = None  # the masks may be new tensors after a device or dtype move
        return super()._apply(fn, *args, **kwargs)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z, context)
        return z

    @torch.no_grad()
    def initialize(self, x: Tensor, context: Tensor | None = None) -> None:
        """Initialise each layer on the activations the layers before it produce."""
        for layer in self.layers:
            layer.initialize(x, context)
            x = layer(x, context)[0]


class ActNorm(Bijection):
    r"""Per-channel affine map :math:`z = x e^{w} + b` (Kingma & Dhariwal, 2018).

    Channels are axis 1: features of ``(B, D)`` vectors, channels of ``(B, C, H, W)`` images
    (shared over positions). :meth:`initialize` sets :math:`w = -\log \mathrm{std}`,
    :math:`b = -\mathrm{mean}\, e^{w}` on a batch so the output starts standardised.
    ``log_det`` :math:`= HW \sum_c w_c`.
    """

    def __init__(self, channels: int, spatial_dims: int = 0) -> None:
        super().__init__()
        shape = (1, channels) + (1,) * spatial_dims
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.shift = nn.Parameter(torch.zeros(shape))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = torch.addcmul(self.shift, x, torch.exp(self.log_scale))
        positions = math.prod(x.shape[2:])
        return z, (positions * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return (z - self.shift) * torch.exp(-self.log_scale)

    @torch.no_grad()
    def initialize(self, x: Tensor, context: Tensor | None = None) -> None:
        dims = [0, *range(2, x.dim())]
        log_scale = -x.std(dims, keepdim=True).clamp_min(1e-6).log()
        self.log_scale.copy_(log_scale)
        self.shift.copy_(-x.mean(dims, keepdim=True) * log_scale.exp())


class InvertibleLinear(Bijection):
    r"""An invertible linear map of axis 1, :math:`z = W x` (a 1x1 convolution on images).

    LU-parametrised (Kingma & Dhariwal, 2018): :math:`W = P L (U + \mathrm{diag}(\mathrm{sign}
    \odot e^{\log |s|}))` with a fixed permutation :math:`P`, unit lower-triangular :math:`L` and
    strictly upper-triangular :math:`U`, so :math:`\log |\det W| = \sum_c \log |s_c|` (times
    :math:`HW` positions on images). Initialised at a random rotation.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        q = torch.linalg.qr(torch.randn(channels, channels))[0]
        p, lower, upper = torch.linalg.lu(q)
        diag = upper.diagonal()
        self.register_buffer("perm", p)
        self.register_buffer("sign", diag.sign())
        self.lower = nn.Parameter(lower.tril(-1))
        self.upper = nn.Parameter(upper.triu(1))
        self.log_abs_diag = nn.Parameter(diag.abs().log())

    def weight(self) -> Tensor:
        eye = torch.eye(len(self.sign), device=self.sign.device, dtype=self.lower.dtype)
        lower = self.lower.tril(-1) + eye
        upper = self.upper.triu(1) + torch.diag(self.sign * self.log_abs_diag.exp())
        return self.perm @ lower @ upper

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        w = self.weight()
        z = torch.einsum("oc,bc...->bo...", w, x)
        positions = math.prod(x.shape[2:])
        return z, (positions * self.log_abs_diag.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return torch.einsum("oc,bc...->bo...", torch.linalg.inv(self.weight()), z)


class Squeezed(Bijection):
    r"""A bijection run on 2x2-squeezed images, the multi-scale architecture of RealNVP and Glow.

    .. math::
        f(x) = S^{-1}\big(g(S x)\big), \qquad \log |\det J_f| = \log |\det J_g|,

    where :math:`S` is space-to-depth (``(C, H, W) -> (4C, H/2, W/2)``, each 2x2 patch into
    channels; :func:`torch.nn.functional.pixel_unshuffle`), a permutation of the coordinates, so
    it adds nothing to the log-determinant. The inner layers (:math:`g`) see a coarser grid with
    four times the channels: their 3x3 convolutions cover twice the image's extent and their
    couplings can split channels. Unsqueezing the output keeps every layer's input and output the
    image's shape, so squeezed levels nest (a ``Squeezed`` inside the inner chain is the next
    scale) and the flow's latent has the data's layout.
    """

    def __init__(self, inner: Bijection) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, log_det = self.inner(F.pixel_unshuffle(x, 2), context)
        return F.pixel_shuffle(z, 2), log_det

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return F.pixel_shuffle(self.inner.inverse(F.pixel_unshuffle(z, 2), context), 2)

    @torch.no_grad()
    def initialize(self, x: Tensor, context: Tensor | None = None) -> None:
        self.inner.initialize(F.pixel_unshuffle(x, 2), context)


class ConvConditioner(nn.Sequential):
    """``(B, C + K, H, W) -> (B, 2C, H, W)``: 3x3, 1x1, 3x3 convolutions (RealNVP's shape),
    with ``attention`` a residual self-attention layer over the grid's positions after the
    first (:class:`~genlab.nn.denoisers.SelfAttention2d`; it starts at zero).

    The ``K = context_features`` extra input planes carry the context (constant planes,
    :func:`~genlab.nn.append_context`); 0 for an unconditional conditioner.
    """

    def __init__(
        self,
        channels_in: int,
        hidden: int,
        activation: str = "relu",
        *,
        context_features: int = 0,
        attention: bool = False,
    ) -> None:
        act = ACTIVATIONS[activation]
        super().__init__(
            nn.Conv2d(channels_in + context_features, hidden, 3, padding=1),
            act(),
            *([SelfAttention2d(hidden)] if attention else []),
            nn.Conv2d(hidden, hidden, 1),
            act(),
            nn.Conv2d(hidden, 2 * channels_in, 3, padding=1),
        )


def zero_last_layer(net: nn.Module) -> None:
    """Zero the last linear/conv layer so that a flow layer starts as the identity."""
    last = [m for m in net.modules() if isinstance(m, nn.Linear | nn.Conv2d)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


class AffineCoupling(Bijection):
    r"""RealNVP affine coupling (x -> z): with a binary mask :math:`m` (1 = conditioning part),

    .. math::
        z = m \odot x + (1 - m) \odot \left(x \odot e^{s(m \odot x, y)} + t(m \odot x, y)
        \right), \qquad \log |\det J| = \sum_d (1 - m_d)\, s_d(m \odot x, y),

    with :math:`s = c \tanh(\tilde s / c)` (:func:`soft_clamp`) for stability on narrow modes
    and the optional context :math:`y` appended to the conditioner's input
    (:func:`~genlab.nn.append_context`). The conditioner maps ``(B, *event)`` (plus the
    context) to ``(B, 2 * C, ...)``: an :class:`~genlab.nn.MLP` for vectors (``2 D`` outputs)
    or a :class:`ConvConditioner` for images; it starts at zero, so the layer starts as the
    identity.

    Arguments:
        mask: bool, ``event_shape``; True marks the coordinates that condition.
        conditioner: the network :math:`(s, t)` of the masked input.
        scale_bound: :math:`c`.
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module, scale_bound: float = 3.0) -> None:
        super().__init__()
        self.register_buffer("mask", mask.float().unsqueeze(0))
        self.register_buffer("free", 1.0 - mask.float().unsqueeze(0))
        self.bound = scale_bound
        self.conditioner = conditioner
        zero_last_layer(conditioner)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raw_scale, shift = self.conditioner(append_context(x * self.mask, context)).chunk(2, 1)
        return affine_transform(x, raw_scale, shift, self.bound, self.free)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        # the masked part of z is x's
        raw_scale, shift = self.conditioner(append_context(z * self.mask, context)).chunk(2, 1)
        return (z - shift * self.free) * torch.exp(-soft_clamp(raw_scale, self.bound) * self.free)


def fusable_conditioner(layer: nn.Module) -> list[nn.Linear] | None:
    """The linear layers of ``layer``'s conditioner when ``layer`` is what
    :func:`~genlab.nn.fused_couplings.fused_affine_couplings` runs: an :class:`AffineCoupling` on
    vectors whose conditioner is an :class:`~genlab.nn.MLP` of linear layers and ReLUs taking
    no context; ``None`` for any other layer."""
    if not isinstance(layer, AffineCoupling) or not isinstance(layer.conditioner, MLP):
        return None
    modules = list(layer.conditioner)
    linears, activations = modules[0::2], modules[1::2]
    fits = (
        layer.mask.dim() == 2
        and all(type(m) is nn.Linear for m in linears)
        and all(type(m) is nn.ReLU for m in activations)
        and linears[0].in_features == layer.mask.shape[1]
    )
    return linears if fits else None  # type: ignore[return-value]


def rational_quadratic_spline(
    x: Tensor,
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    bound: float,
    inverse: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""Monotonic rational-quadratic spline on :math:`[-B, B]`, the identity outside.

    With knots :math:`(x_k, y_k)`, bin widths :math:`w_k`, heights :math:`h_k`, slopes
    :math:`\delta_k = h_k / w_k`, knot derivatives :math:`d_k` (1 at :math:`\pm B`, so the
    map is :math:`C^1` with the identity tails) and :math:`\theta = (x - x_k)/w_k`
    (Durkan et al., 2019, eq. 4-6):

    .. math::
        y = y_k + \frac{h_k (\delta_k \theta^2 + d_k \theta (1 - \theta))}
        {\delta_k + (d_k + d_{k+1} - 2\delta_k)\theta(1 - \theta)}, \qquad
        \frac{dy}{dx} = \frac{\delta_k^2 (d_{k+1}\theta^2 + 2\delta_k\theta(1-\theta)
        + d_k (1-\theta)^2)}{(\delta_k + (d_k + d_{k+1} - 2\delta_k)\theta(1-\theta))^2}.

    The inverse solves the quadratic in :math:`\theta` (their eq. 29-32).

    Arguments:
        x: ``(*batch)`` inputs (outputs of the forward map when ``inverse``).
        widths: ``(*batch, K)`` unnormalised bin widths (a softmax makes them positive).
        heights: ``(*batch, K)`` unnormalised bin heights.
        derivatives: ``(*batch, K - 1)`` unnormalised inner knot derivatives (softplus).
        bound: :math:`B`.
        inverse: run the inverse map.

    Returns:
        The mapped values and ``(*batch)`` :math:`\log |dy/dx|` at ``x`` (forward) or at the
        returned value (inverse: the log-derivative of the forward map there).

    References:
        Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019,
        arXiv:1906.04032.
    """
    n_bins = widths.shape[-1]
    min_size = 1e-3

    def knots(raw: Tensor) -> tuple[Tensor, Tensor]:
        """Knot positions ``(*batch, K + 1)`` from -B to B exactly, and the ``K`` bin sizes."""
        sizes = min_size + (1 - min_size * n_bins) * torch.softmax(raw, dim=-1)
        inner = torch.cumsum(sizes, dim=-1)[..., :-1]
        cumulative = F.pad(F.pad(inner, (1, 0), value=0.0), (0, 1), value=1.0)
        cumulative = 2 * bound * cumulative - bound
        return cumulative, cumulative[..., 1:] - cumulative[..., :-1]

    x_knots, bin_widths = knots(widths)
    y_knots, bin_heights = knots(heights)
    slopes = F.pad(min_size + F.softplus(derivatives), (1, 1), value=1.0)  # (*batch, K + 1)

    inside = (x > -bound) & (x < bound)
    xc = x.clamp(-bound, bound)
    search = y_knots if inverse else x_knots
    index = torch.searchsorted(search[..., 1:-1].contiguous(), xc.unsqueeze(-1).contiguous())

    def pick(t: Tensor) -> Tensor:
        return t.gather(-1, index).squeeze(-1)

    x_k, w_k, y_k, h_k = pick(x_knots), pick(bin_widths), pick(y_knots), pick(bin_heights)
    d_k, d_k1 = pick(slopes[..., :-1]), pick(slopes[..., 1:])
    delta = h_k / w_k
    if inverse:
        offset = xc - y_k
        a = h_k * (delta - d_k) + offset * (d_k1 + d_k - 2 * delta)
        b = h_k * d_k - offset * (d_k1 + d_k - 2 * delta)
        c = -delta * offset
        theta = (2 * c) / (-b - torch.sqrt((b.square() - 4 * a * c).clamp_min(0)))
        out = theta * w_k + x_k
    else:
        theta = (xc - x_k) / w_k
    between = theta * (1 - theta)
    denominator = delta + (d_k1 + d_k - 2 * delta) * between
    if not inverse:
        out = y_k + h_k * (delta * theta.square() + d_k * between) / denominator
    numerator = delta.square() * (
        d_k1 * theta.square() + 2 * delta * between + d_k * (1 - theta).square()
    )
    log_derivative = torch.log(numerator) - 2 * torch.log(denominator)
    out = torch.where(inside, out, x)
    return out, torch.where(inside, log_derivative, torch.zeros_like(log_derivative))


class SplineCoupling(Bijection):
    r"""Neural-spline coupling (x -> z): with a binary mask :math:`m` (1 = conditioning part),

    .. math::
        z = m \odot x + (1 - m) \odot g_{\theta(m \odot x, y)}(x), \qquad
        \log |\det J| = \sum_d (1 - m_d) \log g'_d(x_d),

    where :math:`g` is an elementwise :func:`rational_quadratic_spline` with ``n_bins`` bins on
    :math:`[-B, B]` (identity outside) whose :math:`3K - 1` parameters per coordinate come
    from the conditioner, an MLP of the masked input and the optional context :math:`y`. Far more flexible per layer than an affine coupling, which narrow
    multi-modal densities (the ``ring``) need (Durkan et al., 2019, arXiv:1906.04032).

    Arguments:
        mask: bool, ``(D,)``; True marks the coordinates that condition (vectors only).
        hidden: hidden sizes of the MLP conditioner.
        n_bins: :math:`K`.
        bound: :math:`B`.
        context_features: size of the context :math:`y` (0: unconditional).
    """

    def __init__(
        self,
        mask: Tensor,
        hidden: Sequence[int],
        n_bins: int = 8,
        bound: float = 4.0,
        activation: str = "relu",
        *,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        d = mask.numel()
        self.register_buffer("mask", mask.float().unsqueeze(0))
        self.register_buffer("free", 1.0 - mask.float().unsqueeze(0))
        self.n_bins, self.bound = n_bins, bound
        self.conditioner = MLP(d + context_features, d * (3 * n_bins - 1), hidden, activation)
        zero_last_layer(self.conditioner)

    def _transform(
        self, x: Tensor, context: Tensor | None, inverse: bool
    ) -> tuple[Tensor, Tensor]:
        k = self.n_bins
        params = self.conditioner(append_context(x * self.mask, context))
        params = params.view(len(x), x.shape[1], 3 * k - 1)  # (B, D, P)
        widths, heights, derivatives = params.split([k, k, k - 1], dim=-1)
        y, log_derivative = rational_quadratic_spline(
            x, widths, heights, derivatives, self.bound, inverse
        )
        z = self.mask * x + self.free * y
        return z, (self.free * log_derivative).sum(1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._transform(x, context, inverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return self._transform(z, context, inverse=True)[0]


class MaskedAffineAutoregressive(Bijection):
    r"""MAF layer (x -> z): :math:`z_i = x_i e^{s_i(x_{<i}, y)} + t_i(x_{<i}, y)`, one MADE pass.

    :math:`\log |\det J| = \sum_i s_i` (the Jacobian is triangular in the order). The inverse
    (sampling) is sequential: :math:`D` MADE passes, each fixing one more coordinate.
    Log-scales are soft-clamped by :func:`affine_transform`; vectors ``(B, D)`` only. The
    optional context :math:`y` (``context_features``) is a MADE input wired to every hidden
    unit.
    """

    def __init__(
        self,
        order: Tensor,
        hidden: Sequence[int],
        activation: str = "relu",
        scale_bound: float = 3.0,
        *,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        self.made = MADE(order, hidden, 2, activation, context_features=context_features)
        self.bound = scale_bound
        zero_last_layer(self.made)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raw_scale, shift = self.made(append_context(x, context)).chunk(2, dim=1)
        return affine_transform(x, raw_scale, shift, self.bound)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        x = torch.zeros_like(z)
        for _ in range(z.shape[1]):  # after pass i, the first i coordinates in the order are exact
            raw_scale, shift = self.made(append_context(x, context)).chunk(2, dim=1)
            x = (z - shift) * torch.exp(-soft_clamp(raw_scale, self.bound))
        return x


class Logit(Bijection):
    r"""Pre-transform of data in :math:`(a, b)` to the real line (Dinh et al., 2017, sec. 4.1).

    .. math::
        p = \alpha + (1 - 2\alpha) \frac{x - a}{b - a}, \qquad z = \log p - \log(1 - p),

        \log |\det J| = \sum_d \left[\log(1 - 2\alpha) - \log(b - a) - \log p_d - \log(1 - p_d)
        \right].

    :math:`\alpha > 0` keeps the edges of :math:`[a, b]` finite.
    """

    def __init__(self, low: float, high: float, alpha: float) -> None:
        super().__init__()
        self.low, self.width, self.alpha = low, high - low, alpha

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * (x - self.low) / self.width
        log_p, log_1mp = torch.log(p), torch.log1p(-p)
        constant = math.log(1 - 2 * self.alpha) - math.log(self.width)
        return log_p - log_1mp, _sum_per_example(constant - log_p - log_1mp)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return self.low + self.width * (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)


class Standardize(Bijection):
    """:class:`~genlab.nn.AffineNormalizer` as a bijection: :math:`z = (x - m)/s`."""

    def __init__(self, normalizer: AffineNormalizer) -> None:
        super().__init__()
        self.normalizer = normalizer

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.normalizer(x), self.normalizer.log_abs_det_jacobian().expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return self.normalizer.inverse(z)


def coupling_conditioner(
    event_shape: tuple[int, ...],
    hidden: Sequence[int],
    channels: int,
    activation: str,
    *,
    context_features: int = 0,
    attention: bool = False,
) -> nn.Module:
    """An MLP conditioner for ``(D,)`` vectors or a conv conditioner for ``(C, H, W)`` images
    (with ``attention``, one that attends over the grid), with ``context_features`` extra
    inputs (features or constant planes) for the context."""
    if len(event_shape) == 1:
        (d,) = event_shape
        return MLP(d + context_features, 2 * d, hidden, activation)
    return ConvConditioner(
        event_shape[0],
        channels,
        activation,
        context_features=context_features,
        attention=attention,
    )


__all__ = [
    "ActNorm",
    "AffineCoupling",
    "Bijection",
    "Chain",
    "ConvConditioner",
    "InvertibleLinear",
    "Logit",
    "MaskedAffineAutoregressive",
    "SplineCoupling",
    "Squeezed",
    "Standardize",
    "affine_transform",
    "coupling_conditioner",
    "rational_quadratic_spline",
    "soft_clamp",
]
