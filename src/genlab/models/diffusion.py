r"""Diffusion models (DDPM / DDIM) with the full variational bound, in bits/dim like every family.

The forward process adds Gaussian noise in :math:`T` steps (:mod:`genlab.samplers.schedules`:
linear, cosine or log-SNR schedules); a denoiser network learns to undo it, and the reverse
process it defines (:mod:`genlab.samplers.diffusion`) is the model:

.. math::
    p_\theta(x) = \int \mathcal N(x_{T-1}; 0, I) \prod_{t \ge 1} p_\theta(x_{t-1} \mid x_t)\,
    p_\theta(x \mid x_0)\, dx_{0:T-1}.

Data is scaled to the model's units: discrete data (``info.levels`` = :math:`L`) maps its
value range onto :math:`[-1, 1]`, so the levels sit at :math:`y_j = 2j/(L-1) - 1`, and the
decoder :math:`p_\theta(x \mid x_0)` is a Gaussian discretised to those levels with exact normal
CDFs and open edge bins (:class:`~genlab.nn.likelihoods.DiscretizedGaussian`); continuous data
is standardised and the decoder is a Gaussian density (its log-Jacobian included). On discrete
data the network's :math:`\hat x_0` is snapped to the levels (``snap``,
:func:`~genlab.samplers.diffusion.snap_to_levels`: the posterior mean over the levels given
:math:`x_t` and the network's :math:`\hat x_0 \pm \tau`), or, for a few levels, predicted as a
logit per level (``prediction="levels"``): either way, at the steps whose noise is far below
a level's width, :math:`\hat x_0` is the level :math:`x_t` shows and those terms of the bound
all but vanish.

**The four tasks.**

- ``sample``: ancestral sampling (DDPM, :math:`T` network calls), or DDIM with :math:`S` steps
  and any :math:`\eta` (``method="ddim"``).
- ``log_prob``: the variational bound with every one of the :math:`T` terms, the prior term and
  the decoder (``"lower_bound"``, an unbiased estimate of it: one draw of :math:`x_t` per term),
  batched over :math:`t`. For discrete data it is returned as a density on the dequantised
  values, :math:`\log P(x) - D \log\delta` (as the VAE's discrete likelihoods), so
  :mod:`genlab.metrics.likelihood` gives the bits/dim of the discrete bound, with no
  dequantisation gap. :meth:`Diffusion.bound_estimate` (a few random timesteps, unbiased,
  noisier) is the validation loss, labelled as such; the simple loss is never reported as a
  likelihood.
- ``encode`` / ``decode``: deterministic DDIM (:math:`\eta = 0`) inversion of the data to
  :math:`x_{T-1}` and back (``ddim_steps`` steps), so the code has the data's dimension and
  decodes to (nearly) the input; interpolating codes spherically interpolates images.
- ``sample_conditional``: sequential Monte Carlo (``method="smc"``, the default:
  asymptotically exact as the particles grow, ``capabilities.conditional = "smc"``) or
  replacement (``method="replace"``: approximate, biased).
- ``sample_posterior`` (given a measurement :math:`y = f(x) + \sigma\varepsilon` or a class
  under a classifier): twisted SMC (``method="smc"``, the default, ``capabilities.posterior =
  "smc"``) or diffusion posterior sampling (``method="dps"``: approximate).

**Training** (:meth:`Diffusion.training_step`): :math:`t` uniform (``timestep_sampling``:
or importance-sampled for the bound, or ``"log_normal"``, most draws on the middle noise levels
as EDM's), :math:`x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t}\epsilon`, and one of

- ``"simple"``: :math:`\lVert \text{target} - \text{output} \rVert^2` per coordinate (target
  :math:`\epsilon`, :math:`x_0` or :math:`v`: ``prediction``; :math:`\epsilon` for
  ``"levels"``), Ho et al.'s :math:`L_\text{simple}` (:func:`~genlab.objectives.simple_loss`);
  since :math:`\hat v - v = (\hat\epsilon - \epsilon) / \sqrt{\bar\alpha_t}`, the
  :math:`v` loss is the :math:`\epsilon` loss weighted by :math:`1 + 1/\mathrm{SNR}_t`, more
  at the noisy steps where a sample's shape is decided (Salimans & Ho, 2022; the ``images``
  layer's choice, for images of a side of 16 pixels or more);
- ``"vlb"``: the bound's term :math:`T L_t / D`, weighted by :math:`1/(T p_t)` when
  :math:`t \sim p` is not uniform (an unbiased estimate of the bound's average, for
  ``hybrid`` too);
- ``"hybrid"``: :math:`L_\text{simple} + \lambda T L_t / D` with no gradient from the bound
  term to the mean, :math:`\lambda` = ``hybrid_weight`` (Nichol & Dhariwal's
  :math:`L_\text{hybrid}`, which trains the learned variances).

**Autoguidance** (``guide_step``, ``autoguidance``; Karras et al., 2024): at training step
``guide_step`` the averaged network is copied and frozen, a less trained version of the model
:math:`D_\text{weak}` whose errors are the model's own, larger. ``sample`` with weight
:math:`w > 0` runs the reverse process of :math:`\tilde D = (1 + w) D - w D_\text{weak}`
(:func:`~genlab.samplers.diffusion.guide`, in :math:`\epsilon` or :math:`\hat x_0` alike; two
network calls per step): it pushes each step away from what the weaker network would do, which
takes draws off the low-density regions where both err, without labels (a conditional model's
copy is given the same labels and classifier-free guidance). The guided chain has
no normalised density: ``log_prob``, ``encode``/``decode`` and completion use the model
itself, and ``sample(autoguidance=0)`` gives its own draws. A run selected before
``guide_step`` has no copy: it warns, and samples unguided.

**Class-conditional diffusion** (``conditional=true``, classifier-free guidance): one denoiser
learns :math:`\hat\epsilon(x_t, y)` and, with each training label replaced by a null token
:math:`\varnothing` with probability ``label_dropout`` (0.1, Ho & Salimans), the unconditional
:math:`\hat\epsilon(x_t, \varnothing)`; the label's embedding is added to the timestep's
(:class:`~genlab.nn.denoisers.LabelEmbedding`, MLP and U-Net alike). ``sample(n, context=y,
guidance=w)`` runs the reverse process of the guided prediction
:math:`\tilde\epsilon = (1 + w)\hat\epsilon(x_t, y) - w\hat\epsilon(x_t, \varnothing)`
(:func:`~genlab.samplers.diffusion.guide`: taken in :math:`\epsilon`, equivalently in
:math:`\hat x_0`, for every ``prediction``; two network calls per step), :math:`w` =
``guidance`` by default; :math:`w = 0` is the conditional model itself. ``log_prob(x,
context=y)`` is the variational bound of the conditional model :math:`p_\theta(x \mid y)`,
unguided: guidance defines no normalised density, so no likelihood is reported for it.
``encode``, ``decode`` and ``sample_conditional`` given labels use the unguided conditional
model too (so that decoding inverts encoding, and completion targets
:math:`p_\theta(x_u \mid x_o, y)`).

The network's weights are averaged (EMA, :class:`~genlab.nn.averaging.AveragedCopies`) and the
averaged network is the model: sampling, the bound, the codes and completion use it, and so
does validation. Every method that runs the chain takes ``progress=``: a progress bar over the
steps (``None``, the default, shows it on a terminal only).

References:
    Sohl-Dickstein et al., ICML 2015, arXiv:1503.03585; Ho, Jain & Abbeel, NeurIPS 2020,
    arXiv:2006.11239; Nichol & Dhariwal, ICML 2021, arXiv:2102.09672; Song, Meng & Ermon,
    ICLR 2021, arXiv:2010.02502; Kingma et al., NeurIPS 2021, arXiv:2107.00630; Cardoso et
    al., ICLR 2024, arXiv:2308.07983 (see :mod:`genlab.samplers.diffusion`); Ho & Salimans,
    "Classifier-Free Diffusion Guidance", 2021, arXiv:2207.12598; Karras et al., "Guiding a
    Diffusion Model with a Bad Version of Itself", NeurIPS 2024, arXiv:2406.02507.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import torch
from torch import Tensor, nn

from genlab.config import check
from genlab.data.dataset import DataInfo, is_large_image
from genlab.errors import UnsupportedCapability
from genlab.models.autoguidance import Autoguided, check_autoguidance
from genlab.models.base import Capabilities, GenerativeModel
from genlab.nn import AffineNormalizer
from genlab.nn.averaging import AveragedCopies
from genlab.nn.denoisers import MLPDenoiser, UNet
from genlab.nn.likelihoods import MAX_SUMMED_LEVELS
from genlab.objectives import simple_loss
from genlab.samplers import Observation, complete
from genlab.samplers.diffusion import (
    POSTERIOR_METHODS,
    PREDICTIONS,
    VARIANCES,
    Decoder,
    Denoised,
    GaussianDecoder,
    LevelDecoder,
    PosteriorMethod,
    Prediction,
    ReverseProcess,
    VarianceKind,
    ancestral_sample,
    bound_estimate,
    bound_term,
    complete_by_replacement,
    complete_by_smc,
    ddim_invert,
    ddim_sample,
    denoised,
    draw_particle,
    guide,
    observation_likelihood,
    posterior_by_dps,
    posterior_by_smc,
    variational_bound,
)
from genlab.samplers.schedules import (
    BETA_SCHEDULES,
    SPACINGS,
    BetaSchedule,
    ImportanceTimesteps,
    NoiseSchedule,
    Spacing,
    draw_timesteps,
    log_normal_timestep_probabilities,
    log_snr_range,
    make_betas,
)

if TYPE_CHECKING:
    from genlab.train.optim import Optimizers

DiffusionLoss = Literal["simple", "vlb", "hybrid"]
DIFFUSION_LOSSES: tuple[str, ...] = get_args(DiffusionLoss)
TimestepSampling = Literal["uniform", "importance", "log_normal"]
TIMESTEP_SAMPLINGS: tuple[str, ...] = get_args(TimestepSampling)
VECTOR_OCTAVES = 6  # octaves of the MLP input for vector data (``octaves=None``)
DenoiserArchitecture = Literal["auto", "mlp", "unet"]
DENOISER_ARCHITECTURES: tuple[str, ...] = get_args(DenoiserArchitecture)
SampleMethod = Literal["ddpm", "ddim"]
SAMPLE_METHODS: tuple[str, ...] = get_args(SampleMethod)
ConditionalMethod = Literal["smc", "replace"]
CONDITIONAL_METHODS: tuple[str, ...] = get_args(ConditionalMethod)
AUTO_LEVEL_LOGITS = 32  # the most levels for which prediction="auto" predicts level logits
# network outputs one evaluation may hold without gradients (64 MB of float32): a batch of rows
# whose outputs exceed it (every term of the bound, SMC particles, with L logits a coordinate)
# is evaluated in blocks of rows
EVALUATION_OUTPUTS = 2**24
CHAIN_COLUMNS = 10  # states of the denoising chain shown in the report
DDIM_STEP_COUNTS = (5, 10, 20, 50, 100)  # the report's samples against the number of DDIM steps


@dataclass(frozen=True)
class DiffusionConfig:
    """Attributes:
    timesteps: :math:`T`, the steps of the forward process.
    schedule: ``"linear"``, ``"cosine"`` or ``"log_snr"`` (:mod:`genlab.samplers.schedules`).
    log_snr_max, log_snr_min: the end points of the ``log_snr`` schedule; ``None`` sizes them
        to the data (:func:`~genlab.samplers.schedules.log_snr_range`; for continuous data and
        data of more than 256 levels as if it had 256 levels).
    prediction: what the network outputs: ``"epsilon"``, ``"x0"``, ``"v"``, or for discrete
        data ``"levels"``: logits of each coordinate's level, added to the exact likelihood
        of :math:`x_t` (:func:`~genlab.samplers.diffusion.level_posterior_mean`); ``"auto"``:
        ``levels`` for discrete data of up to :data:`AUTO_LEVEL_LOGITS` levels, ``epsilon``
        otherwise (a logit per level makes the network's output layer ``L`` times wider: 257
        outputs a pixel on 8-bit images, where DDPM predicts :math:`\\epsilon`; on images of
        a side of 16 pixels or more the ``images`` layer sets ``v``).
    snap: snap the network's :math:`\\hat x_0` to the data's levels
        (:func:`~genlab.samplers.diffusion.snap_to_levels`; the network outputs a
        :math:`\\log\\tau^2` beside its prediction): ``None`` does for discrete data unless
        ``prediction`` is ``"levels"`` (whose logits already do); ``True`` needs discrete data.
    variance: the reverse steps' variances: ``"fixed_small"`` (:math:`\\tilde\\beta_t`),
        ``"fixed_large"`` (:math:`\\beta_t`) or ``"learned_range"`` (Nichol & Dhariwal).
    loss: ``"simple"``, ``"vlb"`` or ``"hybrid"`` (module docstring); learned variances need
        the bound in the loss (``vlb`` or ``hybrid``).
    hybrid_weight: :math:`\\lambda` of the hybrid loss.
    timestep_sampling: ``"uniform"``; ``"importance"`` (loss-aware, for ``loss="vlb"``); or
        ``"log_normal"``: most draws on the middle noise levels, EDM's training distribution
        with a quarter of uniform draws (:func:`~genlab.samplers.schedules.log_normal_timestep_probabilities`):
        the simple loss trains where samples take their shapes, the bound's term is weighted
        back to the uniform average.
    architecture: ``"mlp"`` (residual MLP on flattened data), ``"unet"`` (images) or
        ``"auto"`` (the MLP: on 8x8 images it is many times faster than the U-Net per step;
        28x28 images get the U-Net on 2x2 patches from the ``images`` settings layer).
    hidden: widths of the MLP's residual blocks.
    octaves: sinusoids of the MLP's input at this many octaves
        (:class:`~genlab.nn.denoisers.FourierFeatures`); ``None``: 6 for vectors (2-D data
        with modes far narrower than their spread), 0 for images.
    channels: channels of the U-Net's first level (doubling at each halving).
    blocks: residual blocks per U-Net level.
    patch: the U-Net's patch side :math:`p`: it works on :math:`p \\times p` patches folded into
        channels (:class:`~genlab.nn.denoisers.UNet`); ``"auto"`` (the ``images`` layer's
        choice): 2 on large images (:func:`~genlab.data.dataset.is_large_image`) of even
        sides (28x28: 4 x 14 x 14 inside), else 1.
    attention: self-attention at the U-Net's lowest resolution.
    embed: width of the timestep embedding.
    dropout: dropout inside the residual blocks.
    ema_decay: decay of the weight average that is the model.
    val_timesteps: timesteps per example of the validation estimate of the bound.
    ddim_steps: DDIM steps of ``encode`` / ``decode`` (and of ``sample(method="ddim")`` by
        default).
    inversion_iterations: fixed-point refinements of each inversion step of ``encode``
        (:func:`~genlab.samplers.diffusion.ddim_invert`; 0 is plain DDIM inversion).
    particles: SMC particles per completion and per posterior draw (``sample_conditional``,
        ``sample_posterior``).
    conditional: model :math:`p(x \\mid y)` with the data's class labels as ``context=``,
        for classifier-free guidance (module docstring).
    label_dropout: the probability that a training label is replaced by the null token.
    guidance: the default guidance weight :math:`w \\ge 0` of ``sample`` given labels.
    guide_step: autoguidance (module docstring): the training step at which the averaged
        network is copied, frozen, as the guiding model (a less trained version of the model);
        ``None``: no copy.
    autoguidance: the default weight :math:`w \\ge 0` of ``sample``'s guidance away from that
        copy (0: the model's own draws); needs ``guide_step``.
    """

    timesteps: int = 1000
    schedule: BetaSchedule = "log_snr"
    log_snr_max: float | None = None
    log_snr_min: float | None = None
    prediction: Prediction | Literal["auto"] = "auto"
    snap: bool | None = None
    variance: VarianceKind = "learned_range"
    loss: DiffusionLoss = "hybrid"
    hybrid_weight: float = 0.001
    timestep_sampling: TimestepSampling = "uniform"
    architecture: DenoiserArchitecture = "auto"
    hidden: tuple[int, ...] = (512, 512, 512)
    octaves: int | None = None
    channels: int = 32
    blocks: int = 1
    patch: int | Literal["auto"] = 1
    attention: bool = False
    embed: int = 128
    dropout: float = 0.1
    ema_decay: float = 0.999
    val_timesteps: int = 32
    ddim_steps: int = 100
    inversion_iterations: int = 2
    particles: int = 16
    conditional: bool = False
    label_dropout: float = 0.1
    guidance: float = 1.0
    guide_step: int | None = None
    autoguidance: float = 0.0

    def __post_init__(self) -> None:
        check(self.timesteps >= 2, f"timesteps must be >= 2, got {self.timesteps}")
        check(self.schedule in BETA_SCHEDULES, f"schedule must be one of {BETA_SCHEDULES}")
        check(
            self.prediction == "auto" or self.prediction in PREDICTIONS,
            f"prediction must be auto or one of {PREDICTIONS}",
        )
        check(self.variance in VARIANCES, f"variance must be one of {VARIANCES}")
        check(self.loss in DIFFUSION_LOSSES, f"loss must be one of {DIFFUSION_LOSSES}")
        check(
            self.timestep_sampling in TIMESTEP_SAMPLINGS,
            f"timestep_sampling must be one of {TIMESTEP_SAMPLINGS}",
        )
        check(
            self.architecture in DENOISER_ARCHITECTURES,
            f"architecture must be one of {DENOISER_ARCHITECTURES}",
        )
        check(
            self.variance != "learned_range" or self.loss != "simple",
            "variance=learned_range is trained by the bound: use loss=hybrid or loss=vlb",
        )
        check(
            self.timestep_sampling != "importance" or self.loss == "vlb",
            "timestep_sampling=importance weighs the bound's terms: it needs loss=vlb",
        )
        check(self.hybrid_weight > 0, f"hybrid_weight must be positive, got {self.hybrid_weight}")
        check(all(h >= 1 for h in self.hidden) and self.hidden, "hidden sizes must be >= 1")
        for name in ("channels", "blocks", "embed", "val_timesteps", "ddim_steps"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1")
        check(
            self.patch == "auto" or (isinstance(self.patch, int) and self.patch >= 1),
            f"patch must be an integer >= 1 or auto, got {self.patch!r}",
        )
        check(self.particles >= 1, "particles must be >= 1")
        check(self.inversion_iterations >= 0, "inversion_iterations must be >= 0")
        check(self.embed % 2 == 0, f"embed must be even, got {self.embed}")
        check(
            self.octaves is None or self.octaves >= 0,
            f"octaves must be >= 0 or None, got {self.octaves}",
        )
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        check(0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}")
        check(self.ddim_steps <= self.timesteps, "ddim_steps must be <= timesteps")
        check(
            0 <= self.label_dropout < 1,
            f"label_dropout must be in [0, 1), got {self.label_dropout}",
        )
        check(self.guidance >= 0, f"guidance must be >= 0, got {self.guidance}")
        check_autoguidance(self.guide_step, self.autoguidance)
        check(
            not self.conditional or self.label_dropout > 0 or self.guidance == 0,
            "guidance > 0 needs the unconditional prediction, trained by label_dropout > 0",
        )


class Diffusion(Autoguided, GenerativeModel):
    """DDPM/DDIM with the full variational bound and all four tasks (see module docstring)."""

    family = "diffusion"
    capabilities = Capabilities(
        sample=True,
        log_prob="lower_bound",
        encode=True,
        decode=True,
        conditional="smc",
        posterior="smc",
        context=True,
    )
    description = "DDPM / DDIM, the full variational bound"
    task_notes = {
        "generation": (
            "ancestral, T steps; or DDIM with S steps; on 28x28 images autoguided by the network "
            "as it was at a quarter of training, `autoguidance=0` for the model's own draws"
        ),
        "density": "every term of the variational bound, discretised decoder",
        "representation": "x_T by deterministic DDIM inversion; `decode` runs DDIM back",
        "conditional": 'twisted SMC with K particles; `method="replace"` is approximate',
        "posterior": 'twisted SMC with K particles; `method="dps"` is approximate',
        "context": "with `conditional=true`: classifier-free guidance, weight `guidance`",
    }
    config_class = DiffusionConfig
    default_train = {"steps": 6_000, "batch_size": 128, "lr": 5e-4, "weight_decay": 1e-4,
                     "lr_schedule": "cosine", "eval_every": 500, "grad_clip": 1.0}  # fmt: skip
    budgets = {
        "smoke": {"steps": 40, "timesteps": 20, "hidden": (32, 32), "embed": 16, "channels": 8,
                  "ddim_steps": 5, "particles": 4, "val_timesteps": 4, "eval_every": 20},
        # the demo: a smaller network, more lr, fewer steps; a shorter process (every sample,
        # completion and term of the bound costs T network calls); cheaper codes and completions
        "fast": {"steps": 1_500, "timesteps": 250, "lr": 1e-3, "weight_decay": 0.0,
                 "hidden": (256, 256, 256), "dropout": 0.0, "eval_every": 250, "ddim_steps": 50,
                 "inversion_iterations": 1, "particles": 4},
        "full": {"steps": 6_000},
    }  # fmt: skip
    # 28x28 digits, seed 0, fast: the U-Net (16 channels, 2x2 patches, 4,000 steps) gave 0.615
    # confident, FID 900 and 3.90 bits/dim where the MLP's 1,500 steps gave 0.53, 4,284, 13.49.
    # smoke keeps the MLP: with the U-Net a smoke compare's diffusion took 39 s instead of 14.
    # Autoguidance by the network at a quarter of training, w = 3 (seeds 0 and 1, fast, 1,000
    # samples): 0.785 and 0.625 confident, FID 539 and 1,000, where the model's own draws gave
    # 0.579 and 0.567, 1,337 and 1,498 (w = 2: 0.734 and 0.609). The U-Net twice as wide (the
    # 32 channels, 2.5 times the training; 16 until 2026-12-05), w = 3, seeds 0, 1, 2:
    # 0.802, 0.802, 0.751 confident (0.785, 0.625, 0.717 at 16), 1.35 bits/dim (1.39).
    # Predicting v instead of epsilon (its loss weighs the noisy steps, where a digit's shape is
    # decided, 1 + 1/SNR times more), 2026-12-05, fast, seeds 0, 1, 2: 0.920, 0.855, 0.837
    # confident (0.802, 0.802, 0.751), FID 675, 556, 757 (413, 637, 686); 1,000 samples each
    # full, seeds 0, 1, 2, 500 samples each (2026-12-06): 0.890, 0.824, 0.882 confident
    # (epsilon, seeds 0 and 1: 0.772, 0.776), FID 618, 598, 655 (437, 290)
    step_settings = ("guide_step",)
    large_image_budgets = {
        budget: {
            "architecture": "unet", "patch": "auto", "channels": 32, "prediction": "v",
            "autoguidance": 3.0, **settings,
        }
        for budget, settings in {
            None: {"guide_step": 1_500},
            "fast": {"steps": 4_000, "guide_step": 1_000},
            "full": {"guide_step": 1_500},
        }.items()
    }  # fmt: skip

    settings_before = {"snap": False}  # runs saved before snapping existed trained without it

    def __init__(self, config: DiffusionConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        classes = self.use_labels(config.conditional)
        self.latent_dim = info.n_features
        summable = info.levels is not None and info.levels <= MAX_SUMMED_LEVELS
        log_snr = None
        if config.schedule == "log_snr":
            high, low = log_snr_range(info.levels if summable else MAX_SUMMED_LEVELS)
            log_snr = (
                high if config.log_snr_max is None else config.log_snr_max,
                low if config.log_snr_min is None else config.log_snr_min,
            )
        self.schedule = NoiseSchedule(
            make_betas(config.schedule, config.timesteps, log_snr=log_snr)
        )
        self.normalizer = AffineNormalizer(info.event_shape, per_feature=info.kind == "vector")
        self.decoder: Decoder = (
            GaussianDecoder() if info.levels is None else LevelDecoder(info.levels)
        )
        self.prediction: Prediction = config.prediction  # type: ignore[assignment]
        if config.prediction == "auto":
            few_levels = info.levels is not None and info.levels <= AUTO_LEVEL_LOGITS
            self.prediction = "levels" if few_levels else "epsilon"
        check(
            self.prediction != "levels" or summable,
            f"diffusion: prediction=levels needs discrete data of at most {MAX_SUMMED_LEVELS} "
            f"levels (one logit per level), got {info.levels or 'continuous data'}; use "
            "prediction=epsilon",
        )
        self.snap = config.snap
        if self.snap is None:
            self.snap = info.levels is not None and self.prediction != "levels"
        check(
            not self.snap or (info.levels is not None and self.prediction != "levels"),
            "diffusion: snap=true needs discrete data and another prediction than levels (got "
            f"{info.levels or 'continuous'} levels, prediction={self.prediction}); use "
            "snap=false",
        )
        # the network's outputs per coordinate: the prediction, log tau^2, the variance
        self.per_prediction = info.levels if self.prediction == "levels" else 1
        self.outputs = self.per_prediction + self.snap + (config.variance == "learned_range")
        architecture = config.architecture
        if architecture == "auto":
            architecture = "mlp"
        check(architecture == "mlp" or info.kind == "image", "diffusion: unet needs image data")
        self.conv = architecture == "unet"
        sides = info.event_shape[1:]
        self.patch = config.patch
        if self.patch == "auto":
            even = all(side % 2 == 0 for side in sides)
            self.patch = 2 if self.conv and is_large_image(info) and even else 1
        check(
            self.patch == 1 or (self.conv and all(side % self.patch == 0 for side in sides)),
            f"diffusion: patch={self.patch} needs architecture=unet and an image side it "
            f"divides (the data's shape is {tuple(info.event_shape)})",
        )
        self.octaves = config.octaves
        if self.octaves is None:
            self.octaves = VECTOR_OCTAVES if info.kind == "vector" else 0
        self.record_decisions(
            prediction=self.prediction, snap=self.snap, architecture=architecture,
            patch=self.patch, octaves=self.octaves,
        )  # fmt: skip
        if log_snr is not None:
            self.record_decisions(log_snr_max=log_snr[0], log_snr_min=log_snr[1])
        if self.conv:
            self.denoiser: nn.Module = UNet(
                info.event_shape, config.timesteps, config.channels, config.blocks,
                self.outputs, config.embed, config.attention, config.dropout, classes,
                self.patch,
            )  # fmt: skip
        else:
            self.denoiser = MLPDenoiser(
                info.n_features, config.timesteps, config.hidden, self.outputs,
                config.embed, dropout=config.dropout, octaves=self.octaves, classes=classes,
            )  # fmt: skip
        self.averaged = AveragedCopies({"denoiser": self.denoiser})
        # autoguidance's guiding model: the averaged network as it was at guide_step
        self.make_guide_copy(self.denoiser)
        self.importance = ImportanceTimesteps(config.timesteps)
        # timestep_sampling="log_normal": the schedule is fixed, so its draw law is too
        self.register_buffer(
            "log_normal_timesteps",
            log_normal_timestep_probabilities(self.schedule.log_snr),
            persistent=False,
        )
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ units and the network

    @torch.no_grad()
    def prepare(self, x_train: Tensor, *, context: Tensor | None = None) -> None:
        if self.info.levels is not None:  # the value range onto [-1, 1]
            low, high = self.info.value_range
            self.normalizer.shift.fill_((low + high) / 2)
            self.normalizer.scale.fill_((high - low) / 2)
        else:
            self.normalizer.fit(x_train)
        self.averaged.reset_({"denoiser": self.denoiser})

    @property
    def needs_dequantization(self) -> bool:
        """False: the discretised decoder reads the levels themselves."""
        return False

    def to_model(self, x: Tensor) -> Tensor:
        """Data units -> model units (discrete data: each value's level, on :math:`[-1, 1]`)."""
        u = self.normalizer(x)
        if isinstance(self.decoder, LevelDecoder):
            return self.decoder.position(self.decoder.level(u))
        return u

    def to_data(self, u: Tensor) -> Tensor:
        """Model units -> data units."""
        return self.normalizer.inverse(u)

    def denoised_by(
        self, net: nn.Module, xt: Tensor, t: Tensor, labels: Tensor | None = None
    ) -> Denoised:
        """What ``net`` says about ``xt`` ``(N, *event_shape)`` at timesteps ``t`` ``(N,)``
        (given ``labels`` ``(N,)``, the null token :math:`C` among them, if conditional).

        The network's outputs per coordinate: the prediction (``L`` logits for ``"levels"``),
        then :math:`\\log\\tau^2` when it snaps, then the variance interpolation when it is
        learned. Without gradients, in blocks of at most :data:`EVALUATION_OUTPUTS` outputs.
        """
        rows = max(1, EVALUATION_OUTPUTS // (self.outputs * self.info.n_features))
        if torch.is_grad_enabled() or len(xt) <= rows:
            return self._denoised_rows(net, xt, t, labels)
        return Denoised.cat(
            [
                self._denoised_rows(
                    net,
                    xt[s : s + rows],
                    t[s : s + rows],
                    None if labels is None else labels[s : s + rows],
                )  # fmt: skip
                for s in range(0, len(xt), rows)
            ]
        )

    def _denoised_rows(
        self, net: nn.Module, xt: Tensor, t: Tensor, labels: Tensor | None
    ) -> Denoised:
        cfg, shape = self.config, self.info.event_shape
        if self.conv:  # (N, outputs * C, H, W) -> (N, outputs, C, H, W)
            out = net(xt, t, labels).unflatten(1, (self.outputs, shape[0]))
        else:
            out = net(xt.flatten(1), t, labels).view(len(xt), self.outputs, *shape)
        learned = cfg.variance == "learned_range"
        mean_out = out[:, : self.per_prediction]
        if self.prediction != "levels":
            mean_out = mean_out[:, 0]
        return denoised(
            self.schedule, xt, t, mean_out, self.prediction, cfg.variance,
            out[:, -1] if learned else None,
            out[:, self.per_prediction] if self.snap else None, self.info.levels,
        )  # fmt: skip

    def denoise_with(
        self, net: nn.Module, labels: Tensor | None = None, guidance: float = 0.0
    ) -> ReverseProcess:
        r"""The reverse process of ``net`` (the training network, or the averaged one).

        Given ``labels`` ``(N,)`` (a conditional model): the process of
        :math:`\hat\epsilon(x_t, y)`, guided with weight ``guidance`` :math:`w`
        (:func:`~genlab.samplers.diffusion.guide`; :math:`w = 0` calls the network once). A
        sampler that stacks :math:`m` copies of the batch (copy-major) gets the labels tiled.
        """
        if labels is None:
            return ReverseProcess(
                self.schedule, lambda xt, t: self.denoised_by(net, xt, t), self.decoder
            )

        def denoise(xt: Tensor, t: Tensor) -> Denoised:
            check(len(xt) % len(labels) == 0, "diffusion: a batch of rows per label is needed")
            rows = labels.repeat(len(xt) // len(labels))  # copy j of example i at j * N + i
            conditional = self.denoised_by(net, xt, t, rows)
            if guidance == 0:
                return conditional
            null = torch.full_like(rows, self.n_classes)
            return guide(conditional, self.denoised_by(net, xt, t, null), guidance)

        return ReverseProcess(self.schedule, denoise, self.decoder)

    def process_given(
        self, context: Tensor | None = None, guidance: float = 0.0
    ) -> ReverseProcess:
        """The model: the reverse process of the averaged network, given the labels ``context``
        ``(N,)`` of a conditional model (which needs them) with guidance weight ``guidance``."""
        return self.denoise_with(self.averaged["denoiser"], self.class_labels(context), guidance)

    @property
    def process(self) -> ReverseProcess:
        """The model of p(x): the reverse process of the averaged network."""
        return self.process_given()

    def _log_jacobian(self) -> float | Tensor:
        """From the model's units to the density in data units (see :meth:`log_prob`)."""
        if self.info.levels is not None:
            return -self.info.n_features * math.log(self.info.level_step)  # type: ignore[arg-type]
        return self.normalizer.log_abs_det_jacobian()

    # ------------------------------------------------------------------ the four tasks

    @torch.no_grad()
    def log_prob(
        self,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        progress: bool | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        r"""``(B,)`` minus the variational bound with all :math:`T` terms: :math:`\le \log p(x)`.

        Discrete data: :math:`\log P(x) - D\log\delta`, a density on the dequantised values
        that is constant on each level's bin (any value in the bin is read as the level), so
        :mod:`genlab.metrics.likelihood` gives the bits/dim of the discrete bound exactly.
        Continuous data: the bound on the standardised values plus the standardisation's
        log-Jacobian. Given labels (a conditional model): the bound on
        :math:`\log p_\theta(x \mid y)` of the unguided model (guidance has no density).

        Arguments:
            x: ``(B, *event_shape)`` data.
            generator: draws each example's own :math:`x_t` for every term. Without one, the
                draws come from a fixed seed and are shared by the batch (common random
                numbers), so each example's value depends on the example alone.
        """
        self.check_input(x, context=context)
        shared = generator is None
        if shared:
            generator = torch.Generator(device=x.device).manual_seed(0)
        bound = variational_bound(
            self.process_given(context), self.to_model(x), generator=generator,
            shared_noise=shared, progress=progress,
        )  # fmt: skip
        return -bound + self._log_jacobian()

    @torch.no_grad()
    def bound_estimate(
        self,
        x: Tensor,
        *,
        count: int | None = None,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        """``(B,)`` an unbiased estimate of minus :meth:`log_prob` (nats, the discrete bound for
        discrete data) from ``count`` stratified timesteps (:func:`~genlab.samplers.diffusion.bound_estimate`)."""
        self.check_input(x, context=context)
        count = count or self.config.val_timesteps
        return bound_estimate(self.process_given(context), self.to_model(x), count, generator)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        method: SampleMethod = "ddpm",
        steps: int | None = None,
        eta: float = 0.0,
        spacing: Spacing = "trailing",
        progress: bool | None = None,
        context: Tensor | None = None,
        guidance: float | None = None,
        autoguidance: float | None = None,
    ) -> Tensor:
        r"""``(n, *event_shape)`` samples in data units.

        ``"ddpm"``: ancestral sampling with all :math:`T` steps, ending with a draw of the
        decoder (for discrete data: levels). ``"ddim"``: ``steps`` (default ``ddim_steps``)
        DDIM steps with ``eta`` (0: deterministic) over ``spacing``
        (:func:`~genlab.samplers.schedules.timesteps`), returning the last prediction of
        :math:`x_0` (continuous values). A conditional model samples given the labels
        ``context`` ``(n,)`` with classifier-free guidance of weight ``guidance`` :math:`w`
        (default: the config's; 0: the conditional model; module docstring). A model with a
        guiding copy (``guide_step``) samples guided away from it with weight ``autoguidance``
        (default: the config's; 0: the model's own draws; module docstring).
        """
        self.check_context(context, n)
        check(method in SAMPLE_METHODS, f"method must be one of {SAMPLE_METHODS}, got {method!r}")
        check(spacing in SPACINGS, f"spacing must be one of {SPACINGS}, got {spacing!r}")
        guidance = self.guidance_weight(guidance)
        process = self.process_given(context, guidance)
        weight = self.autoguidance_weight(autoguidance)
        if weight:
            weak = self.denoise_with(self.guide_copy(), self.class_labels(context), guidance)
            process = self.autoguided(process, weak, weight)
        x = torch.randn(n, *self.info.event_shape, generator=generator, device=self.device)
        if method == "ddim":
            u = ddim_sample(
                process, x, steps or self.config.ddim_steps, spacing=spacing, eta=eta,
                generator=generator, progress=progress,
            )  # fmt: skip
        else:
            u, _ = ancestral_sample(process, x, generator=generator, progress=progress)
        return self.to_data(u).float()

    def autoguided(
        self, process: ReverseProcess, weak: ReverseProcess, weight: float
    ) -> ReverseProcess:
        """``process`` guided away from ``weak`` (the guiding copy's, given the same labels and
        classifier-free guidance) with weight ``weight``
        (:func:`~genlab.samplers.diffusion.guide`; module docstring)."""

        def denoise(xt: Tensor, t: Tensor) -> Denoised:
            return guide(process.denoise(xt, t), weak.denoise(xt, t), weight)

        return ReverseProcess(self.schedule, denoise, self.decoder)

    def finish_training(
        self, x_train: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> None:
        """Say so when the selected weights predate the guiding copy: samples are unguided."""
        self.warn_if_unguided()

    def guidance_weight(self, guidance: float | None) -> float:
        """The guidance weight of a sample: ``guidance``, or the config's; 0 for a model of p(x)
        alone, which refuses one."""
        if not self.n_classes:
            if guidance is not None:
                raise UnsupportedCapability(
                    f"the {self.family!r} model models p(x) alone: guidance= needs "
                    "conditional=true"
                )
            return 0.0
        w = self.config.guidance if guidance is None else guidance
        check(w >= 0, f"guidance must be >= 0, got {w}")
        check(
            w == 0 or self.config.label_dropout > 0,
            "guidance > 0 needs the unconditional prediction, trained by label_dropout > 0",
        )
        return w

    @torch.no_grad()
    def denoising_chain(
        self,
        n: int,
        columns: int = CHAIN_COLUMNS,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        """``(n, columns, *event_shape)`` states :math:`x_t` of ancestral sampling in data units,
        from :math:`t = T - 1` to the sample (the report's strip; guided as :meth:`sample`)."""
        self.check_context(context, n)
        process = self.process_given(context, self.guidance_weight(None))
        x = torch.randn(n, *self.info.event_shape, generator=generator, device=self.device)
        keep = torch.linspace(self.config.timesteps - 1, 0, columns - 1).round().long().tolist()
        u, kept = ancestral_sample(process, x, generator=generator, keep=keep, progress=False)
        states = [kept[t] for t in keep] + [u]
        return self.to_data(torch.stack(states, 1)).float()

    @torch.no_grad()
    def encode(
        self, x: Tensor, *, progress: bool | None = None, context: Tensor | None = None
    ) -> Tensor:
        """``(B, D)`` the code :math:`x_{T-1}` of deterministic DDIM inversion (``ddim_steps``,
        each refined by ``inversion_iterations`` fixed-point steps; given labels, of the
        unguided conditional model)."""
        self.check_input(x, context=context)
        z = ddim_invert(
            self.process_given(context), self.to_model(x), self.config.ddim_steps,
            iterations=self.config.inversion_iterations, progress=progress,
        )  # fmt: skip
        return z.flatten(1)

    @torch.no_grad()
    def decode(
        self, z: Tensor, *, progress: bool | None = None, context: Tensor | None = None
    ) -> Tensor:
        """``(B, *event_shape)`` deterministic DDIM (:math:`\\eta = 0`, ``ddim_steps``) from codes
        (given labels, of the unguided conditional model: it inverts :meth:`encode`)."""
        self.check_context(context, len(z))
        x = z.reshape(len(z), *self.info.event_shape)
        process = self.process_given(context)
        u = ddim_sample(process, x, self.config.ddim_steps, progress=progress)
        return self.to_data(u)

    @torch.no_grad()
    def sample_conditional(
        self,
        x: Tensor,
        mask: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        method: ConditionalMethod = "smc",
        particles: int | None = None,
        progress: bool | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        r"""``(n, batch, *event_shape)`` completions of ``x`` where ``mask`` is False.

        - ``"smc"`` (default; ``capabilities.conditional = "smc"``): a particle filter of
          ``particles`` particles per completion whose target is the model's own conditional
          :math:`p_\theta(x_u \mid x_o)` (:func:`~genlab.samplers.diffusion.complete_by_smc`):
          asymptotically exact as the particles grow, biased by :math:`O(1/K)` for :math:`K`
          particles; costs :math:`K` ancestral samples.
        - ``"replace"``: replacement (RePaint without resampling,
          :func:`~genlab.samplers.diffusion.complete_by_replacement`): **approximate**, biased
          whatever the budget; costs one ancestral sample.

        Discrete data: observed values are read as their levels; completions are levels drawn
        by the decoder. Given labels ``context`` (a conditional model), of
        :math:`p_\\theta(x_u \\mid x_o, y)`, unguided.
        """
        self.check_input(x, context=context)
        check(method in CONDITIONAL_METHODS, f"method must be one of {CONDITIONAL_METHODS}")
        shape = self.info.event_shape
        count = particles or self.config.particles

        def fill(rows: Tensor, observed: Tensor, n: int, context: Tensor | None = None) -> Tensor:
            y = self.to_model(rows.view(-1, *shape)).repeat(n, *(1,) * len(shape))
            labels = None if context is None else context.repeat(n)  # y's rows are copy-major
            pattern = observed.view(shape)
            if method == "smc":  # particle j of row i at i * K + j
                labels = None if labels is None else labels.repeat_interleave(count)
                u = complete_by_smc(
                    self.process_given(labels), y, pattern, particles=count,
                    generator=generator, progress=progress,
                )  # fmt: skip
            else:
                u = complete_by_replacement(
                    self.process_given(labels), y, pattern, generator=generator,
                    progress=progress,
                )  # fmt: skip
            free = (~observed).nonzero().squeeze(1)
            return self.to_data(u).flatten(1)[:, free].view(n, len(rows), len(free))

        return complete(x, mask, n, fill, context=context)

    def sample_posterior(
        self,
        observation: Observation,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
        method: PosteriorMethod = "smc",
        particles: int | None = None,
        step_size: float = 1.0,
        progress: bool | None = None,
    ) -> Tensor:
        r"""``(n, rows, *event_shape)`` draws of :math:`x \sim p_\theta(x \mid o) \propto
        p_\theta(x)\, p(o \mid x)` in data units.

        - ``"smc"`` (default; ``capabilities.posterior = "smc"``): twisted SMC, a filter of
          ``particles`` :math:`K` particles (default: the config's) per draw
          (:func:`~genlab.samplers.diffusion.posterior_by_smc`): asymptotically exact as
          :math:`K` grows, biased by :math:`O(1/K)`; costs :math:`K` ancestral samples with a
          gradient through the network at each step.
        - ``"dps"``: diffusion posterior sampling with step size ``step_size``
          (:func:`~genlab.samplers.diffusion.posterior_by_dps`): **approximate**, biased
          whatever the budget; costs one such sample.

        The observation is scored in data units (the model's units mapped back); its twisting
        functions widen a Gaussian measurement's noise by the variance of :math:`x_0` given
        :math:`x_t` for data of unit variance in the model's units
        (:func:`~genlab.samplers.diffusion.observation_likelihood`). Discrete data: the draws are
        levels of the decoder. Given labels ``context`` ``(rows,)`` (a conditional model), of
        :math:`p_\theta(x \mid y, o)`, unguided.
        """
        self.check_context(context, observation.rows)
        check(
            method in POSTERIOR_METHODS,
            f"method must be one of {POSTERIOR_METHODS}, got {method!r}",
        )
        check(n >= 1, f"n (draws per example) must be >= 1, got {n}")
        count = self.config.particles if particles is None else particles
        check(count >= 1, f"particles must be >= 1, got {count}")
        likelihood = observation_likelihood(
            observation, self.schedule, self.to_data,
            scale=float(self.normalizer.scale.square().mean().sqrt()),
            value_range=self.info.value_range,
        )  # fmt: skip
        rows = torch.arange(observation.rows, device=self.device).repeat(n)  # draw c of row r
        labels = None if context is None else context.repeat(n)  # copy-major, as rows
        shape = self.info.event_shape
        if method == "smc":  # particle j of draw i at i * K + j
            labels = None if labels is None else labels.repeat_interleave(count)
            x = torch.randn(len(rows) * count, *shape, generator=generator, device=self.device)
            drawn, log_w = posterior_by_smc(
                self.process_given(labels), likelihood, rows, x, particles=count,
                generator=generator, progress=progress,
            )  # fmt: skip
            u = draw_particle(drawn, log_w, generator)
        else:
            x = torch.randn(len(rows), *shape, generator=generator, device=self.device)
            u = posterior_by_dps(
                self.process_given(labels), likelihood, rows, x, step_size=step_size,
                generator=generator, progress=progress,
            )  # fmt: skip
        return self.to_data(u).detach().float().view(n, observation.rows, *shape)

    def illustrations(self, generator: torch.Generator) -> list[tuple[str, Tensor, int]]:
        """The denoising chain and samples against the number of DDIM steps (report pictures;
        a conditional model draws classes 0, 1, 2... guided as :meth:`sample`)."""
        context = torch.arange(8, device=self.device) % self.n_classes if self.n_classes else None
        chain = self.denoising_chain(
            4, generator=generator, context=None if context is None else context[:4]
        )
        process = self.process_given(context, self.guidance_weight(None))
        x = torch.randn(8, *self.info.event_shape, generator=generator, device=self.device)
        counts = [s for s in DDIM_STEP_COUNTS if s < self.config.timesteps]
        rows = [self.to_data(ddim_sample(process, x, s, progress=False)) for s in counts]
        rows.append(self.to_data(ddim_sample(process, x, self.config.timesteps, progress=False)))
        steps = ", ".join(map(str, [*counts, self.config.timesteps]))
        return [
            (
                f"the denoising chain: x_t from t = {self.config.timesteps - 1} to the sample",
                chain.flatten(0, 1),
                CHAIN_COLUMNS,
            ),
            (
                f"the same 8 draws of x_T by deterministic DDIM with {steps} steps (one row each)",
                torch.cat(rows).float(),
                len(x),
            ),
        ]

    # ------------------------------------------------------------------ training

    def training_step(
        self,
        x: Tensor,
        optimizers: Optimizers,
        generator: torch.Generator,
        *,
        context: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """One step of the loss (module docstring); a conditional model's labels are each
        replaced by the null token with probability ``label_dropout``."""
        cfg = self.config
        x0 = self.to_model(x)
        n, total = len(x0), cfg.timesteps
        if cfg.timestep_sampling == "importance":
            t, weights = self.importance.draw(n, generator)
        elif cfg.timestep_sampling == "log_normal":
            t, weights = draw_timesteps(self.log_normal_timesteps, n, generator)
        else:
            t = torch.randint(total, (n,), generator=generator, device=x0.device)
            weights = torch.ones(n, device=x0.device)
        weights = weights.to(x0.dtype)  # 1/(T p_t): the bound's term stays unbiased
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        xt = self.schedule.q_sample(x0, t, noise)
        labels = self.class_labels(context)
        if labels is not None:
            labels = self.denoiser.label.drop(labels, cfg.label_dropout, generator)
        process = self.denoise_with(self.denoiser, labels)
        prediction = self.denoised_by(self.denoiser, xt, t, labels)
        target = "epsilon" if self.prediction == "levels" else self.prediction
        alpha_bar = self.schedule.at(self.schedule.alphas_cumprod, t, x0)
        simple = simple_loss(target, prediction.x0, prediction.eps, x0, noise, alpha_bar)
        d = x0[0].numel()
        term = prediction.detach_mean() if cfg.loss == "hybrid" else prediction
        vlb = bound_term(process, x0, xt, t, term) * (total / d)  # T L_t per coordinate
        if cfg.loss == "simple":
            loss = simple.mean()
        elif cfg.loss == "hybrid":
            loss = (simple + cfg.hybrid_weight * weights * vlb).mean()
        else:
            loss = (weights * vlb).mean()
        optimizers.minimize(loss)
        if cfg.timestep_sampling == "importance":
            self.importance.update_(t, vlb.detach() * d / total)
        self.steps += 1
        step = int(self.steps)
        self.averaged.update_({"denoiser": self.denoiser}, step, cfg.ema_decay)
        self.take_guide_copy_(self.averaged["denoiser"], step)
        return {
            "loss": loss.detach(),
            "simple": simple.detach().mean(),
            "vlb_nats_per_dim": vlb.detach().mean(),
        }

    def validation_loss(
        self, x: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> Tensor:
        """``(B,)`` the unbiased estimate of the bound (nats) from ``val_timesteps`` timesteps
        (given labels, of the unguided conditional model)."""
        return self.bound_estimate(x, generator=generator, context=context)
