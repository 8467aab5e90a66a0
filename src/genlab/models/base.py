"""The protocol every model family implements, and the capability flags that say what it can do.

Unsupervised learning asks four things of a model of data :math:`p(x)`:

========================  =========================================  ============================
task                      question                                   method
========================  =========================================  ============================
generation                draw :math:`x \\sim p`                      :meth:`sample`
density                   how likely is :math:`x`?                   :meth:`log_prob`
representation            a code :math:`z = E(x)`                    :meth:`encode`, :meth:`decode`
conditional sampling      :math:`x_u \\sim p(x_u \\mid x_o)`            :meth:`sample_conditional`
========================  =========================================  ============================

A family declares which it supports, and how exactly, in :attr:`GenerativeModel.capabilities`;
:meth:`Capabilities.support` maps the four tasks (:data:`TASKS`) to those flags, and everything
that shows them (``genlab families``, README's table, the report, the scorecard) reads it.
Callers check the flags (never ``hasattr``), and a method whose flag is off raises
:class:`~genlab.errors.UnsupportedCapability` naming the family and what it can do.

Side information (a class label, an attribute vector: any tensor with one row per example) is
the ``context=`` keyword of every method, for families whose ``capabilities.context`` is set:
they model :math:`p(x \\mid y)`. The trainer passes the dataset's labels (``y_train``) to their
training hooks as ``context=`` too; other families refuse a context.

Units: every method takes and returns data in the units of the dataset (digits 0..16, uint8
images 0..255). :meth:`log_prob` is a log-density in those units: internal rescaling is
accounted for by its log-Jacobian. For discrete data it is the density of the *dequantised*
value (see :func:`genlab.data.dequantize`); :mod:`genlab.metrics.likelihood` turns it into the
discrete log-likelihood bound.

Training hooks (used by :func:`genlab.train.fit`, which knows nothing else of a family):
:meth:`prepare`, :meth:`configure_optimizers`, :meth:`training_step`, :meth:`validation_loss`,
:meth:`fit_closed_form` (for ``fit_method = "closed_form"``) and :meth:`finish_training`.
Families with ``capabilities.context`` take ``context=`` in :meth:`prepare`,
:meth:`training_step`, :meth:`validation_loss`, :meth:`validation_metrics` and
:meth:`finish_training` as well (the rows of the labels that go with ``x``).

Class labels as context: a family with a ``conditional`` option calls :meth:`use_labels` from
``__init__`` (which sets ``n_classes`` and, for a model of p(x) alone, the instance's
``capabilities.context`` to False), and turns each ``context=`` into one-hot rows with
:meth:`one_hot_labels`, the one encoding every conditional family shares.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from genlab.config import check, coerce
from genlab.data.dataset import DataInfo
from genlab.errors import ConfigError, DataError, UnsupportedCapability
from genlab.optim import adam
from genlab.samplers.posterior import LatentGenerator, Observation, sample_latent_posterior

if TYPE_CHECKING:
    from genlab.train.config import TrainConfig
    from genlab.train.optim import Optimizers

LogProbKind = Literal["exact", "lower_bound", "estimate", "none"]
LOG_PROB_KINDS: tuple[str, ...] = get_args(LogProbKind)
ConditionalKind = Literal["exact", "mcmc", "smc", "approximate", "none"]
CONDITIONAL_KINDS: tuple[str, ...] = get_args(ConditionalKind)
FitMethod = Literal["gradient", "closed_form"]
# ``large_image_budgets`` of the encoder/decoder families (VAE, HVAE, autoencoder) on 28x28 images:
# conv nets (28 -> 14 -> 7 -> 4 and back), early stopping on the validation loss. fast: 16
# channels, 25 epochs of 7,200 digits (VAE, seed 0: test bound 1.48 bits/dim; 10 epochs give
# 1.56, an MLP VAE of 60 epochs 1.61; README); full: 32 channels (2.4x the time a step), 60 epochs
CONV_IMAGE_BUDGETS: dict[str | None, dict[str, Any]] = {
    None: {"architecture": "conv"},
    "smoke": {"architecture": "conv", "channels": 4},
    "fast": {"architecture": "conv", "channels": 16, "epochs": 25, "patience": 5},
    "full": {"architecture": "conv", "channels": 32, "epochs": 60, "patience": 10},
}


@dataclass(frozen=True)
class Task:
    """One of the four things asked of a model, and the methods that answer it."""

    name: str
    title: str
    question: str
    methods: tuple[str, ...]


TASKS: tuple[Task, ...] = (
    Task("generation", "generation", "draw x ~ p", ("sample",)),
    Task("density", "density", "how likely is x?", ("log_prob",)),
    Task("representation", "representation", "a code z = E(x)", ("encode", "decode")),
    Task(
        "conditional",
        "conditional sampling",
        "draw x_u ~ p(x_u | x_o)",
        ("sample_conditional",),
    ),
    Task(
        "posterior",
        "given f(x) = y",
        "draw x ~ p(x | f(x) + noise = y), or x of a class",
        ("sample_posterior",),
    ),
)
TASK_NAMES: tuple[str, ...] = tuple(task.name for task in TASKS)
# keywords of ``sample`` that its callers fill in, not options of the sampler
NOT_SAMPLER_OPTIONS = frozenset({"generator", "context", "progress"})


@dataclass(frozen=True)
class MCMCSizes:
    """The work of an MCMC sampler: ``steps`` transitions from ``n_candidates`` SIR candidates
    a chain (:func:`~genlab.samplers.sir_mala`); ``None``: the family's default."""

    steps: int | None = None
    n_candidates: int | None = None


FAMILY_MCMC = MCMCSizes()  # every size the family's own default


@dataclass(frozen=True)
class Capabilities:
    r"""What a family can do, and how exactly.

    Attributes:
        sample: :meth:`GenerativeModel.sample` draws from the model.
        log_prob: what :meth:`GenerativeModel.log_prob` returns: the ``"exact"`` log-density,
            a ``"lower_bound"`` (ELBO, importance-weighted bound), an unbiased-in-p
            ``"estimate"``, or ``"none"``.
        encode: :meth:`GenerativeModel.encode` maps data to a code.
        decode: :meth:`GenerativeModel.decode` maps a code to data.
        conditional: how :meth:`GenerativeModel.sample_conditional` draws
            :math:`x_u \sim p(x_u \mid x_o)`: ``"exact"`` (independent draws from the model's
            own conditional: PPCA's Gaussian conditional, an autoregressive model completing a
            prefix), ``"mcmc"`` (Markov chains whose stationary law is that conditional:
            asymptotically exact as the chains run longer), ``"smc"`` (sequential Monte Carlo:
            weighted particles whose law converges to that conditional as their number grows:
            asymptotically exact), ``"approximate"`` (a heuristic with no such guarantee, e.g.
            replacement inpainting) or ``"none"``. A family with several samplers declares
            the kind of its default ``sample_conditional`` and names the others' kinds in
            their docstrings.
        posterior: how :meth:`GenerativeModel.sample_posterior` draws :math:`x \sim p(x \mid o)`
            given a measurement :math:`y = f(x) + \sigma\varepsilon` or a class under a
            classifier (the same kinds as ``conditional``): conditional sampling's second form.
        context: the methods and training hooks take side information per example
            (``context=``: a class label, an attribute vector), modelling :math:`p(x \mid y)`.

    A family's class declares what the family can do; an instance's flags say what this
    configured model does (a VAE takes context only when built with ``conditional=true``, so
    its instances otherwise say ``context=False``).
    """

    sample: bool
    log_prob: LogProbKind
    encode: bool
    decode: bool
    conditional: ConditionalKind
    posterior: ConditionalKind = "none"
    context: bool = False

    def __post_init__(self) -> None:
        if self.log_prob not in LOG_PROB_KINDS:
            raise ValueError(f"log_prob must be one of {LOG_PROB_KINDS}, got {self.log_prob!r}")
        for name in ("conditional", "posterior"):
            if getattr(self, name) not in CONDITIONAL_KINDS:
                raise ValueError(
                    f"{name} must be one of {CONDITIONAL_KINDS}, got {getattr(self, name)!r}"
                )

    def support(self, task: str) -> str | None:
        """How the family does ``task`` (a name of :data:`TASKS`); ``None``: not at all.

        generation: ``"yes"``; density: the ``log_prob`` kind; representation: ``"encode and
        decode"``, ``"encode only"`` or ``"decode only"``; conditional and posterior: their
        kinds. This is the one map from tasks to capabilities: ``genlab families``, README's
        table, the report's badges and the scorecard's columns all read it.
        """
        if task == "generation":
            return "yes" if self.sample else None
        if task == "density":
            return None if self.log_prob == "none" else self.log_prob
        if task == "representation":
            if self.encode and self.decode:
                return "encode and decode"
            return "encode only" if self.encode else "decode only" if self.decode else None
        if task in ("conditional", "posterior"):
            kind = getattr(self, task)
            return None if kind == "none" else kind
        raise ValueError(f"unknown task {task!r}; one of {TASK_NAMES}")

    def describe(self, task: str) -> str | None:
        """:meth:`support` in words (``"lower bound"``, ``"mcmc"``...); ``None``: not at all."""
        support = self.support(task)
        return None if support is None else support.replace("_", " ")

    def supports(self, task: str) -> bool:
        """Whether the family does ``task`` at all."""
        return self.support(task) is not None

    def supported(self) -> list[str]:
        """Names of the supported methods, with their kinds, for error messages."""
        names = [name for name in ("sample", "encode", "decode") if getattr(self, name)]
        if self.log_prob != "none":
            names.append(f"log_prob ({self.log_prob})")
        if self.conditional != "none":
            names.append(f"sample_conditional ({self.conditional})")
        if self.posterior != "none":
            names.append(f"sample_posterior ({self.posterior})")
        if self.context:
            names.append("context=")
        return names

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class GenerativeModel(nn.Module, abc.ABC):
    """Base class of every family. Subclasses set the class attributes and override what they can do.

    Class attributes:
        family: the registry name (``"pca"``, ``"ae"``...).
        capabilities: the declared :class:`Capabilities`.
        config_class: the frozen dataclass of the family's hyper-parameters.
        fit_method: ``"gradient"`` (the training loop) or ``"closed_form"``.
        default_train: the family's defaults for :class:`~genlab.train.TrainConfig` fields.
        recipe_option: a config field whose value brings other settings with it (the GAN's
            ``loss``), or ``None``.
        recipes: value of ``recipe_option`` -> the settings it brings (the WGAN paper's
            optimiser for ``loss="wasserstein"``).
        budgets: named settings (``"smoke"``, ``"fast"``, ``"full"``) used by ``genlab compare``
            and the tests; each maps option names to values, as ``--set`` does.

        large_image_budgets: for images of side 16 and more (28x28 MNIST), budget (``None``:
            none named) -> the settings that replace the 8x8-tuned ones (conv nets...).
        settings_before: config fields added after runs were saved without them -> the value
            that reproduces those runs (a run's ``config.json`` lacking the field loads with
            it, not with the new default).
        step_settings: config fields counted in training steps that mark a stage of the run
            (a warm-up's end, the prior's stage, the autoguided copy): scaled with the run's
            steps when a run is fitted to a time share (:mod:`genlab.train.time_share`).

    The settings layers, in the order :func:`genlab.settings.resolve_settings` applies them:
    the config dataclasses' defaults, ``default_train``, the recipe, the budget, the large
    images' budget, the user's.
        default_importance_samples: for families whose ``log_prob`` is a sampled bound or
            estimate, the number of samples evaluation passes as ``log_prob(x, k=...)``
            (``None``: ``log_prob`` takes no such argument).

        data_kinds: the kinds of data (:attr:`DataInfo.kind`) the family models; it refuses
            others when built. Default: vectors and images; sequence families take ``"text"``.

        pixel_noise: :meth:`sample` draws :math:`x \\sim p(x \\mid z)`, noise independent per
            coordinate around the decoder's mean ``decode(z)``, :math:`z \\sim \\mathcal N(0, I)`
            (VAE, HVAE, VQ-VAE, PPCA); :meth:`sample_means` then gives that mean, what pictures
            show.

        description: what the family is, in a few words (``genlab families``, README).
        task_notes: for each task the family does, how it does it, in a few words (the cells
            of ``genlab families --markdown``, README's table).

    Instance attributes: ``config``, ``info`` (the :class:`DataInfo` it was built for),
    ``n_classes`` (the labels it takes as context, 0 for a model of p(x): see
    :meth:`use_labels`) and, for families with a code, ``latent_dim`` (set by
    ``--set latent_dim=K``).
    """

    family: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    config_class: ClassVar[type]
    fit_method: ClassVar[FitMethod] = "gradient"
    default_train: ClassVar[dict[str, Any]] = {}
    recipe_option: ClassVar[str | None] = None
    recipes: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    budgets: ClassVar[dict[str, dict[str, Any]]] = {}
    large_image_budgets: ClassVar[dict[str | None, dict[str, Any]]] = {}
    settings_before: ClassVar[dict[str, Any]] = {}
    step_settings: ClassVar[tuple[str, ...]] = ()
    default_importance_samples: ClassVar[int | None] = None
    data_kinds: ClassVar[tuple[str, ...]] = ("vector", "image")
    description: ClassVar[str] = ""
    task_notes: ClassVar[dict[str, str]] = {}
    pixel_noise: ClassVar[bool] = False
    n_classes: int = 0

    def __init__(self, config: Any, info: DataInfo) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        if info.kind not in self.data_kinds:
            raise DataError(
                f"the {self.family!r} family models {' and '.join(self.data_kinds)} data, not "
                f"{info.kind} data ({info.name}); choose a family that models {info.kind} data"
            )
        self.config = config
        self.info = info
        self.decisions: dict[str, Any] = {}

    def record_decisions(self, **values: Any) -> None:
        """Record in :attr:`decisions` what the settings left to the data (``"auto"`` or
        ``None`` in the config) became in this model: of ``values`` (setting name -> the value
        used), those whose setting was left open. ``genlab train --dry-run`` prints them and a
        run's ``config.json`` keeps them (``decided``)."""
        for name, value in values.items():
            if getattr(self.config, name) in ("auto", None):
                self.decisions[name] = value

    def decisions_text(self) -> str:
        """:attr:`decisions` on one line, ``"levels=3, logit=True"`` (empty without any)."""
        return ", ".join(f"{name}={value}" for name, value in self.decisions.items())

    # ------------------------------------------------------------------ the four tasks

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        """``(n, *event_shape)`` draws from the model (given ``context``, ``(n, ...)``, if any)."""
        raise self.unsupported("sample")

    @property
    def sample_note(self) -> str | None:
        """How ``sample`` draws by default when that is not from the model's own distribution
        (words for a picture's caption, e.g. a guided chain); ``None``: its own draws."""
        return None

    def sampler_options(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (option name -> value, often a string from ``genlab sample --set``) as
        keyword arguments of this family's :meth:`sample`, each coerced to its declared type
        (:func:`~genlab.config.coerce`): e.g. diffusion's ``method``, ``steps`` and
        ``autoguidance``, the flow's ``temperature``.

        Raises:
            ConfigError: on an option this family's ``sample`` does not take (naming those it
                does) or a value that does not fit its type.
        """
        hints = typing.get_type_hints(type(self).sample)
        signature = inspect.signature(type(self).sample)
        names = [
            name
            for name, parameter in signature.parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in NOT_SAMPLER_OPTIONS
        ]
        unknown = sorted(set(values) - set(names))
        if unknown:
            offered = f"its options: {', '.join(names)}" if names else "it takes no options"
            raise ConfigError(
                f"{self.family}'s sampler has no option {', '.join(map(repr, unknown))}; {offered}"
            )
        return {
            name: coerce(value, hints[name], f"{self.family} sample option {name}")
            for name, value in values.items()
        }

    def sample_means(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        r"""``(n, *event_shape)`` decoder means :math:`\mathbb E[x \mid z] =` ``decode(z)``,
        :math:`z \sim p(z)` (:meth:`draw_codes`): :meth:`sample` without its per-coordinate noise.

        Only for families with :attr:`pixel_noise`; the codes are drawn as :meth:`sample` draws
        them, so the same generator state gives the means of the same codes.
        """
        if not self.pixel_noise:
            raise self.unsupported("sample_means (its samples carry no per-pixel noise)")
        self.check_context(context, n)
        z = self.draw_codes(n, generator)
        return self.decode(z) if context is None else self.decode(z, context=context)

    def draw_codes(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        r"""``(n, latent_dim)`` codes from the family's prior: :math:`\mathcal N(0, I)` unless
        the family fits one of its own."""
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device)

    def log_prob(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(batch,)`` log-density of ``x`` in nats, exact or a bound as ``capabilities.log_prob`` says."""
        raise self.unsupported("log_prob")

    def encode(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(batch, latent_dim)`` codes of ``x`` (the posterior mean for probabilistic encoders)."""
        raise self.unsupported("encode")

    def decode(self, z: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(batch, *event_shape)`` data from codes (the mean of :math:`p(x \\mid z)` where random)."""
        raise self.unsupported("decode")

    def sample_conditional(
        self,
        x: Tensor,
        mask: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        """``(n, batch, *event_shape)`` completions of ``x`` where ``mask`` is False.

        How exact the draws are is ``capabilities.conditional``.

        Arguments:
            x: ``(batch, *event_shape)`` data; only the observed coordinates are read.
            mask: bool, ``event_shape`` or ``(batch, *event_shape)``; True marks observed.
            n: completions per example.
            context: ``(batch, ...)`` side information (families with ``capabilities.context``).
        """
        raise self.unsupported("sample_conditional")

    def mcmc_options(
        self, task: Literal["conditional", "posterior"], sizes: MCMCSizes
    ) -> dict[str, int]:
        """The keyword arguments that size the sampler of ``task`` (:meth:`sample_conditional`
        or :meth:`sample_posterior`) where it is MCMC (``capabilities.<task>`` is ``"mcmc"``):
        ``sizes``' transitions and SIR candidates; none for exact and SMC samplers, which have
        neither, and none given as ``None`` (the family's default)."""
        if getattr(self.capabilities, task) != "mcmc":
            return {}
        options = dataclasses.asdict(sizes)
        return {key: value for key, value in options.items() if value is not None}

    def sample_posterior(
        self,
        observation: Observation,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
        steps: int = 300,
        n_candidates: int = 64,
    ) -> Tensor:
        r"""``(n, rows, *event_shape)`` draws of :math:`x \sim p(x \mid o) \propto p(x)\, p(o \mid x)`.

        ``observation`` is what is known of each of its ``rows`` examples: a measurement
        :math:`y = f(x) + \sigma\varepsilon` (:func:`~genlab.samplers.gaussian_measurement`)
        or a class under a classifier (:func:`~genlab.samplers.classifier_guidance`). How
        exactly: ``capabilities.posterior``. By default, through the family's
        :meth:`latent_generator` (:func:`~genlab.samplers.sample_latent_posterior`: SIR +
        MALA on the code, ``steps`` transitions from ``n_candidates`` prior candidates).

        Arguments:
            observation: what is known of each example.
            n: draws per example.
            context: ``(rows, ...)`` side information (families with ``capabilities.context``).
        """
        self.check_context(context, observation.rows)
        latent = (
            self.latent_generator(context) if self.capabilities.supports("posterior") else None
        )
        if latent is None:
            raise self.unsupported("sample_posterior")
        return sample_latent_posterior(
            latent, observation, n, steps=steps, n_candidates=n_candidates, rng=generator
        )

    def latent_generator(self, context: Tensor | None = None) -> LatentGenerator | None:
        r""":math:`x = G(z)`, :math:`z \sim \mathcal N(0, I)`, for :meth:`sample_posterior`;
        ``None`` where the family has no such generator."""
        return None

    def reconstruct(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``decode(encode(x))``: the model's reconstruction of ``x``."""
        if context is None:
            return self.decode(self.encode(x))
        return self.decode(self.encode(x, context=context), context=context)

    def family_metrics(self, x_test: Tensor) -> dict[str, float]:
        """Test-split numbers only this family has (e.g. CLIP's retrieval); default none."""
        return {}

    def illustrations(self, generator: torch.Generator) -> list[tuple[str, Tensor, int]]:
        """Pictures only this family has, as data: ``(caption, images, columns)`` with images
        ``(rows * columns, *event_shape)`` in data units (e.g. a diffusion model's denoising
        chain); the report draws them for image data. Default none."""
        return []

    # ------------------------------------------------------------------ training hooks

    def prepare(self, x_train: Tensor, *, context: Tensor | None = None) -> None:
        """Fit data-dependent constants (e.g. the input normaliser) before training starts."""

    def upgrade_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A state dict written by an earlier genlab, in this version's layout (default: as it
        is). A family whose state gained entries fills them here, so that older runs load;
        every model file and checkpoint passes through it before it is checked."""
        return state

    def has_next_stage(self) -> bool:
        """Whether a stage of training follows the current one (the VQ-VAE's prior alone, after
        its autoencoder). Early stopping then ends the stage, not the training. Default no."""
        return False

    def stage_ended(self) -> bool:
        """Whether the training step just taken ended the current stage (the VQ-VAE's
        ``autoencoder_steps``). The trainer then closes the stage, as when early stopping ends
        it: it restores the stage's best validated weights, calls :meth:`start_next_stage_`,
        and selects among the next stage's weights alone. Default never (one stage)."""
        return False

    def start_next_stage_(self) -> None:
        """Move on to the next stage of training (once :meth:`stage_ended`, after the trainer has
        restored the ended stage's best weights)."""

    def differentiated_twice(self) -> set[str]:
        """Names of the submodules a training step differentiates twice (a gradient penalty's
        ``create_graph``). ``compile=true`` leaves them eager: a compiled graph has no double
        backward. Default none."""
        return set()

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """The optimizers by name (adversarial families return two); default: one fused Adam."""
        return {"main": adam(self.parameters(), lr=train.lr, weight_decay=train.weight_decay)}

    def training_step(
        self,
        x: Tensor,
        optimizers: Optimizers,
        generator: torch.Generator,
        *,
        context: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """One update on the batch ``x``; returns scalar metrics (the first is shown as the loss)."""
        raise NotImplementedError(f"{self.family} does not train by gradient steps")

    def validation_loss(
        self, x: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> Tensor | None:
        """``(batch,)`` held-out loss for early stopping and model selection (lower is better).

        Defaults to the negative log-density for families that have one; ``None`` means the
        family has no such loss (the trainer then keeps the last weights and never stops early).
        """
        if self.capabilities.log_prob == "none":
            return None
        return -self.log_prob(x, context=context)

    def validation_metrics(
        self, x_val: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> dict[str, float]:
        """Extra diagnostics logged with each validation (e.g. mode coverage); default none."""
        return {}

    def fit_closed_form(
        self, x_train: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> None:
        """Fit in one shot (``fit_method = "closed_form"`` families)."""
        raise NotImplementedError(f"{self.family} has no closed-form fit")

    def finish_training(
        self, x_train: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> None:
        """Run once after the best weights are restored (e.g. fit a prior on the codes)."""

    @property
    def needs_dequantization(self) -> bool:
        """Whether the trainer dequantises discrete training data for this model.

        Density families do (a density on continuous values); a family whose likelihood is
        itself discrete (a VAE with a discrete decoder) reads the levels directly and says no,
        which saves the noise and the rounding back.
        """
        return self.capabilities.log_prob != "none"

    # ------------------------------------------------------------------ helpers

    def use_labels(self, conditional: bool) -> int:
        """Model :math:`p(x \\mid y)` with the data's class labels as ``context=`` when
        ``conditional``, else :math:`p(x)` alone; returns ``n_classes`` (0 for the latter).

        A family whose class declares ``capabilities.context`` calls this from ``__init__``
        with its ``conditional`` option: a model of p(x) alone says ``context=False`` on its
        instance (so the trainer passes it no labels, and it refuses them), and a conditional
        model needs labelled data (:attr:`DataInfo.n_classes`).
        """
        check(
            not conditional or self.info.n_classes is not None,
            f"{self.family}: conditional=true models p(x | y) with the data's labels as "
            f"context, and {self.info.name} has no labels: give labelled data or drop "
            "conditional",
        )
        if not conditional:
            self.capabilities = dataclasses.replace(type(self).capabilities, context=False)
        self.n_classes = (self.info.n_classes or 0) if conditional else 0
        return self.n_classes

    def one_hot_labels(self, context: Tensor | None) -> Tensor | None:
        r"""``(B, C)`` float one-hot rows :math:`e_y` of the labels ``context`` ``(B,)``.

        ``None`` for a model of p(x) alone (``n_classes`` 0), which never reads a context (the
        public methods refuse one first, :meth:`check_context`). A conditional model refuses
        what :meth:`class_labels` refuses.
        """
        labels = self.class_labels(context)
        return None if labels is None else F.one_hot(labels, self.n_classes).float()

    def class_labels(self, context: Tensor | None) -> Tensor | None:
        """``(B,)`` the labels ``context``, checked: ``None`` for a model of p(x) alone.

        A conditional model refuses a missing context, non-integer labels and labels outside
        ``0 .. n_classes - 1`` (families that embed labels rather than one-hot them read these).
        """
        if not self.n_classes:
            return None
        if context is None:
            raise DataError(
                f"{self.family} (conditional=true) models p(x | y): pass the labels as context="
            )
        if context.dim() != 1 or context.is_floating_point():
            raise DataError(
                f"{self.family}: context must be (batch,) integer labels, got shape "
                f"{tuple(context.shape)} and {context.dtype}"
            )
        if bool(((context < 0) | (context >= self.n_classes)).any()):
            raise DataError(f"{self.family}: labels must lie in 0..{self.n_classes - 1}")
        return context.long()

    @property
    def device(self) -> torch.device:
        for tensor in self.state_dict().values():
            return tensor.device
        return torch.device("cpu")

    def unsupported(self, method: str) -> UnsupportedCapability:
        """The error for a method this family does not support."""
        return UnsupportedCapability(
            f"the {self.family!r} family does not support {method}; it supports: "
            f"{', '.join(self.capabilities.supported()) or 'nothing'}"
        )

    def check_input(self, x: Tensor, what: str = "x", *, context: Tensor | None = None) -> None:
        """Reject data whose trailing shape is not ``event_shape``, and misfit ``context``."""
        shape = self.info.event_shape
        if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise DataError(
                f"{self.family}: {what} has shape {tuple(x.shape)}, expected (batch, "
                f"{', '.join(map(str, shape))})"
            )
        self.check_context(context, len(x))

    def check_context(self, context: Tensor | None, batch: int) -> None:
        """Refuse ``context`` a family does not model, or one that is not one row per example."""
        if context is None:
            return
        if not self.capabilities.context:
            raise UnsupportedCapability(
                f"the {self.family!r} family models p(x) alone and takes no context= (side "
                "information such as labels); families that do say context in `genlab families`"
            )
        if not isinstance(context, Tensor) or context.dim() < 1 or len(context) != batch:
            shape = tuple(context.shape) if isinstance(context, Tensor) else type(context)
            raise DataError(
                f"{self.family}: context must be a tensor with one row per example ({batch}), "
                f"got {shape}"
            )

    def extra_repr(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self.config).items())
        return f"family={self.family!r}, event_shape={self.info.event_shape}, {fields}"
