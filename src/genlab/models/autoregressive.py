r"""Autoregressive models of vectors and images: an exact likelihood one coordinate at a time.

.. math::
    p(x) = \prod_{i=1}^{D} p\big(x_{\sigma_i} \mid x_{\sigma_1}, \dots, x_{\sigma_{i-1}}\big)

in an ordering :math:`\sigma`. Each conditional is a distribution whose parameters a masked
network computes from the coordinates before it, all :math:`D` in one pass (training and
``log_prob`` are one pass; sampling is :math:`D` passes). Two networks (``architecture``):

- ``"made"``: a masked MLP on flattened data (:class:`~genlab.nn.made.MADE`, Germain et al.,
  2015). With ``n_orders = K > 1`` it is an ensemble: :math:`K` (ordering, connectivity) pairs
  drawn at initialisation (random hidden degrees; the orderings all natural, or random with
  ``order="random"``: order-agnostic training), one drawn per training step, and the model is
  their uniform mixture,

  .. math::
      p(x) = \frac1K \sum_{k=1}^K p_k(x), \qquad
      \log p(x) = \operatorname{logsumexp}_k \log p_k(x) - \log K,

  averaged in probability: a mixture of normalised models is normalised, unlike an average of
  logits;
- ``"pixelcnn"``: a gated PixelCNN on one-channel images in raster order
  (:class:`~genlab.nn.pixelcnn.GatedPixelCNN`, van den Oord et al., 2016).

Conditionals (``likelihood``): for data with :math:`L` levels a ``categorical`` over the levels
or a ``discretized_logistic_mixture``; for real data a ``gaussian_mixture`` on standardised
values (:mod:`genlab.nn.likelihoods`). A discrete model reads the levels themselves (no
dequantisation) and reports the density of the dequantised value,
:math:`p(\tilde x) = P(x)/\delta^D`, so bits/dim are those of :math:`P` exactly.

**Class-conditional models** (``conditional=true``) model :math:`p(x \mid y) = \prod_i
p(x_{\sigma_i} \mid x_{\sigma_{<i}}, y)` with the data's labels as ``context=``: every
conditional reads the one-hot label :math:`e_y`. MADE takes it as extra inputs of degree 0,
connected to every hidden unit (unmasked; :mod:`genlab.nn.made`), the PixelCNN as a
per-channel bias in every gated layer (van den Oord et al., 2016). The masks are unchanged, so
``log_prob(x, context=y)`` is the exact :math:`\log p(x \mid y)` and ``sample(n, context=y)``
draws ancestrally from it; completion given a label is exact as without one.

**Conditional sampling is exact when the observed coordinates come first**: if they are the
first :math:`k` coordinates of every ordering of the model (the top half of an image in raster
order, any prefix of the natural order), ancestral sampling from coordinate :math:`k` on draws
:math:`x_u \sim p(x_u \mid x_o)` exactly; for an ensemble the ordering is drawn first with
weight :math:`\propto p_k(x_o)` (the observed prefix's own likelihood, exact), since
:math:`p(x_u \mid x_o) = \sum_k \frac{p_k(x_o)}{\sum_j p_j(x_o)}\, p_k(x_u \mid x_o)`. For
other masks the conditional has no closed form (the observed part's marginal would need a sum
over the unobserved coordinates before it), and :meth:`Autoregressive.sample_conditional`
refuses them with a clear error rather than approximate under an ``"exact"`` label.

**Autoguidance** (``guide_step``, ``autoguidance``; PixelCNN on data with levels;
:mod:`genlab.models.autoguidance`): at training step ``guide_step`` the network is copied and
frozen, a less trained PixelCNN :math:`p_\text{weak}`; ``sample`` with weight :math:`w > 0`
draws each pixel from

.. math::
    \tilde p(x_d \mid x_{<d}) \propto p(x_d \mid x_{<d})^{1 + w}\,
    p_\text{weak}(x_d \mid x_{<d})^{-w}

over the levels (two network passes a pixel; the same labels for a conditional model), which
favours the levels the trained model prefers over its early self, the structure learned late.
The guided draws have no normalised joint density: ``log_prob`` and completion are the
model's, and ``sample(autoguidance=0)`` gives its own draws.

References:
    Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for Distribution
    Estimation", ICML 2015, arXiv:1502.03509.
    Uria, Murray & Larochelle, "A Deep and Tractable Density Estimator", ICML 2014,
    arXiv:1310.1757 (order-agnostic training, ensembles over orderings).
    van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu, "Conditional Image
    Generation with PixelCNN Decoders", NeurIPS 2016, arXiv:1606.05328.
    Salimans, Karpathy, Chen & Kingma, "PixelCNN++", ICLR 2017, arXiv:1701.05517
    (discretised logistic mixture).
    Karras et al., "Guiding a Diffusion Model with a Bad Version of Itself", NeurIPS 2024,
    arXiv:2406.02507 (autoguidance).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal, get_args

import torch
from torch import Tensor

from genlab.config import check
from genlab.data.dataset import DataInfo
from genlab.errors import UnsupportedCapability
from genlab.models.autoguidance import Autoguided, check_autoguidance
from genlab.models.base import Capabilities, GenerativeModel
from genlab.nn import ACTIVATIONS, Activation
from genlab.nn.likelihoods import (
    MAX_SUMMED_LEVELS,
    Likelihood,
    make_likelihood,
)
from genlab.nn.made import MADE, hidden_degrees, made_masks
from genlab.nn.pixelcnn import GatedPixelCNN
from genlab.samplers import complete, draw_categorical, prefix_length, sample_in_order

if TYPE_CHECKING:
    from genlab.train.optim import Optimizers

ARArchitecture = Literal["auto", "made", "pixelcnn"]
AR_ARCHITECTURES: tuple[str, ...] = get_args(ARArchitecture)
ARLikelihood = Literal["auto", "categorical", "discretized_logistic_mixture", "gaussian_mixture"]
AR_LIKELIHOODS: tuple[str, ...] = get_args(ARLikelihood)
Order = Literal["natural", "random"]
ORDERS: tuple[str, ...] = get_args(Order)


@dataclass(frozen=True)
class AutoregressiveConfig:
    """Attributes:
    architecture: ``"made"``, ``"pixelcnn"`` (one-channel images) or ``"auto"`` (PixelCNN for
        one-channel images, MADE otherwise).
    likelihood: each coordinate's conditional: ``"categorical"`` (L-level data),
        ``"discretized_logistic_mixture"`` (L-level data), ``"gaussian_mixture"`` (real data);
        ``"auto"``: categorical for discrete data of up to 256 levels, a Gaussian mixture otherwise.
    components: mixture components :math:`K` of the mixture likelihoods.
    hidden: MADE hidden sizes.
    activation: MADE non-linearity.
    order: MADE orderings: ``"natural"`` (raster) or ``"random"`` (drawn at initialisation).
    n_orders: MADE ensemble size: (ordering, connectivity) pairs trained together and mixed.
    channels: PixelCNN feature channels per stack.
    n_layers: PixelCNN gated layers.
    kernel: PixelCNN kernel size (odd).
    dilation_cycle: PixelCNN dilations: gated layer :math:`l` spreads its taps
        :math:`2^{l \bmod c}` pixels apart (1: none), widening the rows a pixel reads at no
        cost per layer (:class:`~genlab.nn.pixelcnn.GatedPixelCNN`).
    dropout: dropout in the hidden layers (MADE) or residual branches (PixelCNN).
    conditional: model :math:`p(x \\mid y)` with the data's class labels as ``context=``
        (the one-hot label read by every conditional; module docstring).
    guide_step: autoguidance (PixelCNN; module docstring): the training step at which the
        network is copied, frozen, as the guiding model; ``None``: no copy.
    autoguidance: the default weight :math:`w \\ge 0` of ``sample``'s guidance away from that
        copy (0: the model's own draws); needs ``guide_step``.
    """

    architecture: ARArchitecture = "auto"
    likelihood: ARLikelihood = "auto"
    components: int = 5
    hidden: tuple[int, ...] = (512, 512)
    activation: Activation = "relu"
    order: Order = "natural"
    n_orders: int = 1
    channels: int = 64
    n_layers: int = 7
    kernel: int = 3
    dilation_cycle: int = 1
    dropout: float = 0.0
    conditional: bool = False
    guide_step: int | None = None
    autoguidance: float = 0.0

    def __post_init__(self) -> None:
        check(
            self.architecture in AR_ARCHITECTURES,
            f"architecture must be one of {AR_ARCHITECTURES}, got {self.architecture!r}",
        )
        check(
            self.likelihood in AR_LIKELIHOODS,
            f"likelihood must be one of {AR_LIKELIHOODS}, got {self.likelihood!r}",
        )
        check(self.components >= 1, f"components must be >= 1, got {self.components}")
        check(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        check(self.activation in ACTIVATIONS, f"unknown activation {self.activation!r}")
        check(self.order in ORDERS, f"order must be one of {ORDERS}, got {self.order!r}")
        check(self.n_orders >= 1, f"n_orders must be >= 1, got {self.n_orders}")
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(self.n_layers >= 1, f"n_layers must be >= 1, got {self.n_layers}")
        check(
            self.kernel >= 3 and self.kernel % 2 == 1,
            f"kernel must be odd >= 3, got {self.kernel}",
        )
        check(self.dilation_cycle >= 1, f"dilation_cycle must be >= 1, got {self.dilation_cycle}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        check_autoguidance(self.guide_step, self.autoguidance)


def resolve_architecture(name: str, info: DataInfo) -> str:
    """The network ``"auto"`` stands for on this data."""
    one_channel = info.kind == "image" and info.event_shape[0] == 1
    if name == "auto":
        return "pixelcnn" if one_channel else "made"
    check(name != "pixelcnn" or one_channel, "autoregressive: pixelcnn needs one-channel images")
    return name


def resolve_likelihood(name: str, info: DataInfo) -> str:
    """The conditional ``"auto"`` stands for on this data: categorical over the levels up to
    ``MAX_SUMMED_LEVELS`` (8-bit data), a Gaussian mixture for more levels or continuous data."""
    if name != "auto":
        return name
    if info.levels is None or info.levels > MAX_SUMMED_LEVELS:
        return "gaussian_mixture"
    return "categorical"


class Autoregressive(Autoguided, GenerativeModel):
    """MADE (ensembles over orderings) or gated PixelCNN with exact likelihood (see module)."""

    family = "autoregressive"
    capabilities = Capabilities(
        sample=True,
        log_prob="exact",
        encode=False,
        decode=False,
        conditional="exact",
        context=True,
    )
    description = "MADE and its ensembles over orderings, gated PixelCNN"
    task_notes = {
        "generation": "ancestral, one pass per coordinate",
        "density": "chain rule; MADE ensembles mixed in probability",
        "conditional": "ancestral from the observed prefix: masks that observe the first coordinates of the order",
        "context": "with `conditional=true`: one-hot label into every MADE hidden unit, or a per-channel bias in every PixelCNN gated layer",
    }
    config_class = AutoregressiveConfig
    default_train = {"epochs": 1000, "batch_size": 64, "lr": 1e-3, "patience": 30}
    budgets = {
        "smoke": {"steps": 40, "batch_size": 32, "hidden": (64,), "channels": 8, "n_layers": 2},
        "fast": {"epochs": 15, "patience": 5, "channels": 32, "n_layers": 5},
        "full": {"epochs": 1000, "patience": 30},
    }
    # 28x28 digits, seed 0, fast (one thread, two jobs on the 2 cores): the 5-layer PixelCNN sees
    # 6 rows above a pixel; dilations 1, 2, 4, 8, 1 (17 rows, the same cost a step) raised the
    # confident samples from 0.40 to 0.68 and cut the domain FID from 2,955 to 702 at 1.131
    # bits/dim (1.146); cycling 1, 2, 4 (11 rows) gave 0.68, FID 983, 1.143; 5x5 kernels (12
    # rows, twice the cost) 0.61, FID 1,212. Seven layers at fast (1, 2, 4, 8, 1, 2, 4: 23 rows,
    # the whole digit; 1.4 times the cost), seeds 0, 1, 2: 0.72, 0.73, 0.73 confident (0.68,
    # 0.70 with five, seeds 0 and 1), FID 518, 380, 593 (702, 411), 1.127, 1.125, 1.131 bits/dim
    # (1.131, 1.136). Its 15 epochs at lr 2e-3 decayed by a cosine (the constant 1e-3's validation
    # loss still fell 2 nats an epoch at the end), seeds 0 and 1: FID 386, 319 (518, 380), 1.125,
    # 1.123 bits/dim (1.127, 1.125), 0.715, 0.728 confident (0.718, 0.729), the same cost
    # full at 28x28: the fast network for 20 epochs, about an hour of one core (the 8x8 setting,
    # 64 channels for up to 1,000 epochs, is many CPU hours there); seeds 0, 1, 2: 1.112, 1.110,
    # 1.114 bits/dim, FID 303, 268, 419, 0.747, 0.730, 0.729 confident (fast: 1.125, 1.123,
    # 1.126; 386, 319, 523; 0.715, 0.728, 0.722), 3,440, 3,404, 2,496 s
    step_settings = ("guide_step",)
    large_image_budgets = {
        None: {"dilation_cycle": 4},
        "smoke": {"dilation_cycle": 4},
        "fast": {"dilation_cycle": 4, "n_layers": 7, "lr": 2e-3, "lr_schedule": "cosine"},
        "full": {"dilation_cycle": 4, "channels": 32, "n_layers": 7, "lr": 2e-3,
                 "lr_schedule": "cosine", "epochs": 20, "patience": 5},
    }  # fmt: skip

    def __init__(self, config: AutoregressiveConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        classes = self.use_labels(config.conditional)
        d = info.n_features
        self.architecture = resolve_architecture(config.architecture, info)
        self.likelihood_name = resolve_likelihood(config.likelihood, info)
        self.record_decisions(architecture=self.architecture, likelihood=self.likelihood_name)
        self.likelihood: Likelihood = make_likelihood(
            self.likelihood_name, info, components=config.components
        )
        n_params = self.likelihood.n_params
        check(
            self.architecture == "made" or config.n_orders == 1,
            "autoregressive: n_orders > 1 (an ensemble over orderings) needs architecture=made",
        )
        orders = torch.stack(
            [
                torch.randperm(d) if config.order == "random" else torch.arange(d)
                for _ in range(config.n_orders)
            ]
        )
        self.register_buffer("orders", orders)  # (K, D) coordinates in drawing order
        self.active: int | None = None  # the ensemble member whose masks the MADE holds
        check(
            config.guide_step is None or self.likelihood.discrete,
            f"autoregressive: autoguidance (guide_step) combines the conditionals over the "
            f"levels, and likelihood={self.likelihood_name} is a density on continuous values: "
            "use data with levels (categorical or discretized_logistic_mixture)",
        )
        if self.architecture == "pixelcnn":
            self.net: torch.nn.Module = GatedPixelCNN(
                n_params, config.channels, config.n_layers, config.kernel, config.dropout,
                context_features=classes, dilation_cycle=config.dilation_cycle,
            )  # fmt: skip
            self.make_guide_copy(self.net)
            if config.guide_step is not None:  # saved only by runs with a copy
                self.register_buffer("steps", torch.zeros((), dtype=torch.long))
            return
        check(
            config.guide_step is None,
            "autoregressive: autoguidance (guide_step) needs architecture=pixelcnn",
        )
        self.guide_network = None
        self.net = MADE(
            self.degrees(0), config.hidden, n_params, config.activation, config.dropout,
            context_features=classes,
        )  # fmt: skip
        # connectivity-agnostic ensembles draw the hidden degrees of every member
        draw = torch.Generator().manual_seed(int(torch.randint(2**31, ())))
        for layer, size in enumerate(config.hidden):
            self.register_buffer(f"hidden_degrees_{layer}", torch.empty(0, size, dtype=torch.long))
        if config.n_orders > 1:
            members = [
                hidden_degrees(d, config.hidden, draw, context=classes > 0)
                for _ in range(config.n_orders)
            ]
            for layer in range(len(config.hidden)):
                setattr(self, f"hidden_degrees_{layer}", torch.stack([m[layer] for m in members]))

    # ------------------------------------------------------------------ the network

    def degrees(self, k: int) -> Tensor:
        """``(D,)`` the MADE input degrees of ordering ``k``: coordinate ``c`` gets its rank + 1."""
        return self.orders[k].argsort() + 1

    def _use(self, k: int) -> None:
        """Put ensemble member ``k``'s masks into the MADE (members > 1 only)."""
        if self.config.n_orders == 1 or self.active == k:
            return
        layers = range(len(self.config.hidden))
        degrees = [getattr(self, f"hidden_degrees_{layer}")[k] for layer in layers]
        self.net.set_masks(
            made_masks(self.degrees(k), degrees, self.likelihood.n_params, self.n_classes)
        )
        self.active = k

    def _inputs(self, target: Tensor) -> Tensor:
        """Network inputs from the likelihood's target: levels scaled to [-1, 1], or as is."""
        if self.likelihood.discrete:
            return target * (2.0 / (self.info.levels - 1)) - 1.0
        return target

    def _params(self, target: Tensor, k: int = 0, labels: Tensor | None = None) -> Tensor:
        """``(B, n_params, D)`` every coordinate's conditional parameters under member ``k``
        (given the one-hot ``labels`` ``(B, C)`` of a conditional model)."""
        inputs = self._inputs(target)
        labels = None if labels is None else labels.to(inputs.dtype)
        if self.architecture == "pixelcnn":  # (B, n_params, H, W)
            out = self.net(inputs.view(-1, *self.info.event_shape), labels)
            return out.flatten(2)
        self._use(k)
        if labels is not None:  # the context inputs of degree 0 follow the data's
            inputs = torch.cat([inputs, labels], 1)
        return self.net(inputs).view(len(target), self.likelihood.n_params, -1)

    def _member_log_probs(self, target: Tensor, labels: Tensor | None = None) -> Tensor:
        """``(K, B)`` :math:`\\log p_k(x)` (or :math:`\\log p_k(x \\mid y)`) of each member."""
        return torch.stack(
            [
                self.likelihood.log_prob(self._params(target, k, labels), target)
                for k in range(self.config.n_orders)
            ]
        )

    # ------------------------------------------------------------------ the four tasks

    @property
    def needs_dequantization(self) -> bool:
        """False for discrete conditionals: they read the levels."""
        return not self.likelihood.discrete

    def log_prob(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(B,)`` exact :math:`\\log p(x)` (:math:`\\log p(x \\mid y)` given the labels
        ``context``): the chain rule, ensembles mixed in probability."""
        self.check_input(x, context=context)
        target, labels = self.likelihood.checked_target(x), self.one_hot_labels(context)
        examples = self.likelihood.rows_per_pass()  # passes that fit PASS_VALUES parameters
        log_p = torch.cat(
            [
                self._member_log_probs(
                    target[start : start + examples],
                    None if labels is None else labels[start : start + examples],
                )
                for start in range(0, len(target), examples)
            ],
            dim=1,
        )
        return torch.logsumexp(log_p, 0) - math.log(self.config.n_orders)

    def _sample_member(
        self,
        x: Tensor,
        k: int,
        start: int,
        generator: torch.Generator | None,
        labels: Tensor | None = None,
        temperature: float = 1.0,
        autoguidance: float = 0.0,
    ) -> Tensor:
        """Fill ``x`` ``(B, D)`` (data units) in member ``k``'s order from position ``start``
        (given one-hot ``labels`` ``(B, C)``), each coordinate drawn at ``temperature``, guided
        away from the guiding copy with weight ``autoguidance`` (PixelCNN; module docstring)."""
        draw = partial(self.likelihood.sample_coordinate, temperature=temperature)
        if self.architecture != "pixelcnn":

            def conditionals(current: Tensor, d: int) -> Tensor:
                return self._params(self.likelihood.target(current), k, labels)

            return sample_in_order(conditionals, draw, x, self.orders[k], start, generator)
        shape = self.info.event_shape  # single-channel images, raster order

        def raster(net: torch.nn.Module) -> Callable[[Tensor, int], Tensor]:
            return net.raster_conditionals(
                lambda state: self._inputs(self.likelihood.target(state)).view(-1, *shape),
                len(x), shape[-2], shape[-1],
                None if labels is None else labels.to(next(net.parameters()).dtype),
            )  # fmt: skip

        model = raster(self.net)
        if not autoguidance:
            return sample_in_order(model, draw, x, self.orders[k], start, generator)
        weak = raster(self.guide_copy())

        def both(current: Tensor, d: int) -> tuple[Tensor, Tensor]:
            return model(current, d), weak(current, d)

        def guided(params: tuple[Tensor, Tensor], d: int, gen: torch.Generator | None) -> Tensor:
            return draw(params[0], d, gen, weak=params[1], weight=autoguidance)

        return sample_in_order(both, guided, x, self.orders[k], start, generator)

    def _sample_members(
        self,
        x: Tensor,
        members: Tensor,
        start: int,
        generator: torch.Generator | None,
        labels: Tensor | None = None,
        temperature: float = 1.0,
        autoguidance: float = 0.0,
    ) -> Tensor:
        """Rows of ``x`` filled by the member each row drew (``members`` ``(B,)``), given
        their one-hot ``labels`` ``(B, C)``, if any, at ``temperature`` and ``autoguidance``."""
        out = x.clone()
        for k in members.unique().tolist():
            rows = (members == k).nonzero().squeeze(1)
            given = None if labels is None else labels[rows]
            out[rows] = self._sample_member(
                x[rows], k, start, generator, given, temperature, autoguidance
            )
        return out

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
        temperature: float = 1.0,
        autoguidance: float | None = None,
    ) -> Tensor:
        """``(n, *event_shape)`` ancestral samples (of :math:`p(x \\mid y)` given the labels
        ``context`` ``(n,)``); an ensemble draws a member per sample first.

        A PixelCNN with a guiding copy (``guide_step``) draws each pixel guided away from it
        with weight ``autoguidance`` (default: the config's; 0: the model's own draws; module
        docstring), at ``temperature`` after the guidance.

        ``temperature`` :math:`T \\ne 1` draws every coordinate from its tempered conditional
        :math:`p(x_d \\mid x_{<d})^{1/T}`, renormalised over the levels (for the categorical,
        :math:`\\mathrm{softmax}(\\ell_d / T)` of the logits :math:`\\ell_d`): reduced-temperature
        sampling, which trades diversity for more likely pixels at :math:`T < 1`. Exact for the
        likelihoods over levels (``categorical``, ``discretized_logistic_mixture``: the levels
        are enumerated); ``gaussian_mixture`` refuses :math:`T \\ne 1`. Those are not draws from
        the model's distribution (:meth:`log_prob` is always at :math:`T = 1`), nor from
        :math:`p(x)^{1/T}` renormalised (each conditional is renormalised on its own);
        :math:`T = 1` gives the model's own draws, the same for the same generator.
        """
        self.likelihood.check_temperature(temperature)
        self.check_context(context, n)
        weight = self.autoguidance_weight(autoguidance)
        labels = self.one_hot_labels(context)
        device = self.orders.device
        members = torch.randint(self.config.n_orders, (n,), generator=generator, device=device)
        dtype = next(self.parameters()).dtype
        x = torch.zeros(n, self.info.n_features, device=device, dtype=dtype)
        x = self._sample_members(x, members, 0, generator, labels, temperature, weight)
        return x.view(n, *self.info.event_shape).float()

    @torch.no_grad()
    def sample_conditional(
        self,
        x: Tensor,
        mask: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        r"""``(n, batch, *event_shape)`` exact draws of :math:`x_u \sim p(x_u \mid x_o)`.

        Needs the observed coordinates to be the first ones of every ordering of the model
        (module docstring); other masks raise :class:`~genlab.errors.UnsupportedCapability`.
        An ensemble draws each completion's member with probability
        :math:`\propto p_k(x_o)`, then samples in that member's order. Given the labels
        ``context``, of :math:`p(x_u \mid x_o, y)`, as exactly.
        """
        self.check_input(x, context=context)

        def fill(rows: Tensor, observed: Tensor, n: int, context: Tensor | None = None) -> Tensor:
            starts = {prefix_length(observed, order) for order in self.orders}
            if None in starts:
                raise UnsupportedCapability(
                    f"{self.family}: exact completion needs the observed coordinates to come "
                    "first in the model's ordering"
                    + ("s" if self.config.n_orders > 1 else "")
                    + f" ({self.architecture}, order={self.config.order}); this mask observes "
                    "coordinates after unobserved ones; observe a prefix of the order (the top "
                    "rows of an image in raster order)"
                )
            (start,) = starts
            chains = rows.repeat(n, 1)  # (n * R, D): chain i * R + r completes row r
            labels = self.one_hot_labels(None if context is None else context.repeat(n))
            target = self.likelihood.checked_target(chains)
            members = torch.zeros(len(chains), dtype=torch.long, device=chains.device)
            if self.config.n_orders > 1:  # log p_k(x_o): the observed prefix's conditionals
                log_w = torch.stack(
                    [
                        self.likelihood.coordinate_log_prob(
                            self._params(target, k, labels), target
                        )[:, observed].sum(1)
                        for k in range(self.config.n_orders)
                    ],
                    dim=1,
                )  # (n * R, K)
                members = draw_categorical(log_w, generator)
            filled = self._sample_members(chains, members, start, generator, labels)
            return filled[:, ~observed].view(n, len(rows), -1)

        return complete(x, mask, n, fill, context=context)

    # ------------------------------------------------------------------ training

    def training_step(
        self,
        x: Tensor,
        optimizers: Optimizers,
        generator: torch.Generator,
        *,
        context: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Maximum likelihood of one ensemble member, drawn per step (order-agnostic training)."""
        k = int(torch.randint(self.config.n_orders, (), generator=generator))
        target = self.likelihood.target(x.flatten(1))
        params = self._params(target, k, self.one_hot_labels(context))
        loss = -self.likelihood.total_log_prob(params, target) / len(x)
        optimizers.minimize(loss)
        if self.guide_network is not None:
            self.steps += 1
            self.take_guide_copy_(self.net, int(self.steps))
        return {"loss": loss.detach()}

    def finish_training(
        self, x_train: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> None:
        """Say so when the selected weights predate the guiding copy: samples are unguided."""
        self.warn_if_unguided()

    def prepare(self, x_train: Tensor, *, context: Tensor | None = None) -> None:
        self.likelihood.prepare(x_train)
