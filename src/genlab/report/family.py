"""The pictures of one trained model for the report: samples, reconstructions, interpolations,
completions, and for 2-D data the samples over the data and the learned density."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from genlab.data.dataset import Dataset
from genlab.data.text import decode_tokens
from genlab.errors import ConfigError
from genlab.explore import completion_grid, interpolate, nearest_neighbours
from genlab.metrics.conditioning import class_route, measured, sample_classes
from genlab.metrics.domain import DomainClassifier
from genlab.models.base import FAMILY_MCMC, TASKS, GenerativeModel, MCMCSizes
from genlab.report.figures import figure_png, new_figure
from genlab.report.html import Picture
from genlab.report.images import image_grid_png
from genlab.samplers import Downsample, gaussian_measurement, top_half_mask

N_SAMPLES = 64
N_NEIGHBOURS, NEIGHBOUR_COLUMNS = 16, 8  # samples shown beside their nearest training images
N_RECONSTRUCTIONS = 16
RECONSTRUCTION_COLUMNS = 8
N_PATHS, PATH_STEPS = 4, 8
N_COMPLETED, N_COMPLETIONS = 6, 5
N_PER_CLASS = 8  # samples per class in the class grid
N_MEASURED, N_DRAWS = 6, 5  # super-resolution examples and posterior draws each
GRID_POINTS = 300
N_TEXT_SAMPLES, TEXT_PREFIX = 24, 2
Pixels = Literal["mean", "sample"]
PIXELS: tuple[str, ...] = get_args(Pixels)


def picture_samples(
    model: GenerativeModel,
    n: int,
    pixels: Pixels = "mean",
    *,
    generator: torch.Generator | None = None,
    context: Tensor | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[Tensor, str]:
    r"""``n`` images to show of what ``model`` generates, and a caption saying what they are.

    For families whose samples add independent per-pixel noise to a decoder mean
    (:attr:`~genlab.models.GenerativeModel.pixel_noise`: VAE, PPCA), ``pixels="mean"`` shows
    the means :math:`\mathbb E[x \mid z]`, :math:`z \sim \mathcal N(0, I)` (what the model
    means; the noise would only speckle them) and ``"sample"`` the draws
    :math:`x \sim p(x \mid z)`. Other families' samples have no such noise: they are shown as
    they are, whatever ``pixels``, and the caption says how they were drawn when that is not
    from the model's own distribution (:attr:`~genlab.models.GenerativeModel.sample_note`:
    diffusion's autoguidance), or which sampler ``options`` (keyword options of ``sample``,
    :meth:`~genlab.models.GenerativeModel.sampler_options`) drew them. Vector data always gets
    samples (a scatter compares them with the data).
    """
    if pixels not in PIXELS:
        raise ConfigError(f"pixels must be one of {PIXELS}, got {pixels!r}")
    extra = {} if context is None else {"context": context}
    options = model.sampler_options(options or {})  # checked and typed as sample declares them
    if not (model.pixel_noise and model.info.kind == "image"):
        if options:
            note = "sampler: " + ", ".join(f"{key}={value}" for key, value in options.items())
        else:
            note = model.sample_note
        caption = "samples" if note is None else f"samples ({note})"
        return model.sample(n, generator=generator, **extra, **options), caption
    if pixels == "mean":
        means = model.sample_means(n, generator=generator, **extra)
        return means, "decoder means E[x | z], z ~ N(0, I) (pixels=sample shows draws)"
    draws = model.sample(n, generator=generator, **extra)
    return draws, "samples x ~ p(x | z), each pixel drawn independently given z"


def neighbour_strip(samples: Tensor, data: Dataset) -> Picture:
    """The first :data:`N_NEIGHBOURS` ``samples``, each row followed by the row of their nearest
    training images (Euclidean distance in data units): memorised samples show as copies."""
    shown = samples[:N_NEIGHBOURS].cpu()
    columns = min(NEIGHBOUR_COLUMNS, len(shown))
    shown = shown[: len(shown) - len(shown) % columns]  # whole rows only
    _, index = nearest_neighbours(shown.flatten(1), data.x_train.flatten(1))
    nearest = data.x_train[index[:, 0]]
    return Picture(
        f"the first {len(shown)} pictures above, each row followed by their nearest training "
        "images (Euclidean distance in pixels): copies mean memorisation",
        image_grid_png(_paired_rows(shown, nearest, columns), data.info, n_columns=columns),
    )


def _paired_rows(originals: Tensor, partners: Tensor, width: int) -> Tensor:
    """Rows of ``width`` originals, each followed by the row of their partners."""
    rows = zip(originals.split(width), partners.split(width), strict=True)
    return torch.cat([torch.cat(pair) for pair in rows])


def conditioning_pictures(
    model: GenerativeModel,
    data: Dataset,
    seed: int,
    classifier: DomainClassifier | None,
    mcmc: MCMCSizes = FAMILY_MCMC,
    per_class: int = N_PER_CLASS,
    drawn: Mapping[str, Any] | None = None,
) -> list[Picture]:
    """Ten rows of classes (``per_class`` samples each), and super-resolution posteriors beside
    the truth and bicubic (``mcmc``: the sizes of the samplers that are MCMC). ``drawn``: the
    draws a scorecard scored (``"class samples"``, ``"posterior"``: see
    :func:`~genlab.metrics.conditioning.class_scores` and
    :func:`~genlab.metrics.conditioning.measurement_scores`), shown instead of new ones."""
    info, pictures, drawn = data.info, [], drawn or {}
    generator = torch.Generator(device=model.device).manual_seed(seed)
    route = class_route(model, classifier)
    if route is not None and info.n_classes:
        scored = drawn.get("class samples")
        if scored is not None:  # the first per_class of each class's samples
            per_class = min(per_class, len(scored) // info.n_classes)
            samples = scored.unflatten(0, (info.n_classes, -1))[:, :per_class].flatten(0, 1)
        else:
            classes = torch.arange(info.n_classes).repeat_interleave(per_class)
            samples = sample_classes(
                model, classes, classifier=classifier, generator=generator, mcmc=mcmc
            )
        how = "given the label" if route == "context" else "guided by the domain classifier"
        pictures.append(
            Picture(
                f"one row per class, {how}",
                image_grid_png(samples.detach().cpu(), info, n_columns=per_class),
            )
        )
    if model.capabilities.supports("posterior") and len(info.event_shape) == 3:
        operator = Downsample(info.event_shape, 2)
        if "posterior" in drawn:
            truth, y, draws = drawn["posterior"]
            truth, y, draws = truth[:N_MEASURED], y[:N_MEASURED], draws[:N_DRAWS, :N_MEASURED]
        else:
            low, high = info.value_range
            truth, y = measured(data, operator, 0.05 * (high - low), N_MEASURED, seed)
            observation = gaussian_measurement(operator, y, 0.05 * (high - low))
            options = model.mcmc_options("posterior", mcmc)
            draws = model.sample_posterior(observation, N_DRAWS, generator=generator, **options)
            draws = draws.detach().cpu()
        rows = [truth, operator.upsample(y).view_as(truth), *draws, draws.mean(0)]
        grid = torch.stack(rows, 1).flatten(0, 1)  # one row per example
        pictures.append(
            Picture(
                "super-resolution: the truth, bicubic upsampling of its noisy 2x downsampled "
                f"copy, {len(draws)} posterior draws and their mean",
                image_grid_png(grid, info, n_columns=len(rows)),
            )
        )
    return pictures


@torch.no_grad()
def image_pictures(
    model: GenerativeModel,
    data: Dataset,
    seed: int,
    pixels: Pixels = "mean",
    mcmc: MCMCSizes = FAMILY_MCMC,
) -> list[Picture]:
    """Samples (as :func:`picture_samples` shows them) beside their nearest training images,
    reconstructions, interpolations and completions, as the model's capabilities allow
    (``mcmc``: the sizes of an MCMC completion sampler)."""
    caps, info = model.capabilities, data.info
    generator = torch.Generator(device=model.device).manual_seed(seed)
    x = data.x_test
    pictures = []
    if caps.sample:
        samples, caption = picture_samples(model, N_SAMPLES, pixels, generator=generator)
        pictures.append(Picture(caption, image_grid_png(samples.cpu(), info)))
        pictures.append(neighbour_strip(samples, data))
    if caps.encode and caps.decode:
        originals = x[:N_RECONSTRUCTIONS]
        recon = model.reconstruct(originals.to(model.device)).cpu()
        paired = _paired_rows(originals, recon, RECONSTRUCTION_COLUMNS)
        grid = image_grid_png(paired, info, n_columns=RECONSTRUCTION_COLUMNS)
        pictures.append(Picture("test images, each row followed by its reconstructions", grid))
    if caps.decode:
        paths = []
        for i in range(N_PATHS):
            if caps.encode:  # between the codes of two test examples
                path = interpolate(model, x[2 * i], x[2 * i + 1], PATH_STEPS, "spherical")
            else:  # between two draws of the N(0, I) latent prior
                z = torch.randn(2, model.latent_dim, generator=generator, device=model.device)
                path = interpolate(model, z[0], z[1], PATH_STEPS, "spherical", codes=True)
            paths.append(path.cpu())
        caption = "spherical interpolation between " + (
            "the codes of two test images" if caps.encode else "two latent draws"
        )
        pictures.append(
            Picture(caption, image_grid_png(torch.cat(paths), info, n_columns=PATH_STEPS))
        )
    for caption, images, columns in model.illustrations(generator):
        pictures.append(Picture(caption, image_grid_png(images.cpu(), info, n_columns=columns)))
    if caps.supports("conditional"):
        mask = top_half_mask(info.event_shape)
        grid = completion_grid(
            model, x[:N_COMPLETED], mask, N_COMPLETIONS, generator=generator,
            **model.mcmc_options("conditional", mcmc),
        )  # fmt: skip
        pictures.append(
            Picture(
                "observed top half, 5 completions of the bottom half, the original",
                image_grid_png(grid.cpu(), info, n_columns=N_COMPLETIONS + 2),
            )
        )
    return pictures


@torch.no_grad()
def plane_pictures(model: GenerativeModel, data: Dataset, seed: int) -> list[Picture]:
    """2-D data: samples over the test data, and the learned density on a grid."""
    caps = model.capabilities
    generator = torch.Generator(device=model.device).manual_seed(seed)
    reference = data.x_test.cpu().numpy()
    low = (reference.min(0) - 0.5).tolist()
    high = (reference.max(0) + 0.5).tolist()
    pictures = []
    if caps.sample:
        samples = model.sample(2000, generator=generator).cpu().numpy()
        fig, ax = new_figure(1, width=4.4, height=4.2)
        ax.scatter(reference[:, 0], reference[:, 1], s=2, c="#bbbbbb", linewidths=0, label="data")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, c="#1f6fb4", linewidths=0, label="samples")
        ax.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]), aspect="equal", title="samples")
        ax.legend(fontsize=7, markerscale=4, loc="upper right")
        pictures.append(
            Picture("2,000 samples (blue) over the test data (grey)", figure_png(fig), wide=True)
        )
    if caps.log_prob != "none":
        xs = torch.linspace(low[0], high[0], GRID_POINTS)
        ys = torch.linspace(low[1], high[1], GRID_POINTS)
        grid = torch.cartesian_prod(xs, ys)
        log_p = torch.cat([model.log_prob(c.to(model.device)).cpu() for c in grid.split(4096)])
        density = log_p.exp().view(GRID_POINTS, GRID_POINTS).T.numpy()
        fig, ax = new_figure(1, width=4.4, height=4.2)
        ax.imshow(
            density, origin="lower", cmap="magma", aspect="equal",
            extent=(low[0], high[0], low[1], high[1]),
        )  # fmt: skip
        ax.set_title(f"learned density ({caps.log_prob.replace('_', ' ')})")
        pictures.append(
            Picture("the model's density exp(log p) on a grid", figure_png(fig), wide=True)
        )
    return pictures


def family_pictures(
    model: GenerativeModel,
    data: Dataset,
    seed: int,
    classifier: DomainClassifier | None = None,
    pixels: Pixels = "mean",
    mcmc: MCMCSizes = FAMILY_MCMC,
    per_class: int = N_PER_CLASS,
    drawn: Mapping[str, Any] | None = None,
) -> list[Picture]:
    """Every picture that fits the model's capabilities and the data's kind (with the domain
    ``classifier`` of labelled images, ``per_class`` samples of each class a family draws;
    ``pixels``: see :func:`picture_samples`; ``mcmc``: the sizes of the samplers a picture
    needs that are MCMC; ``drawn``: draws already scored, see :func:`conditioning_pictures`)."""
    if data.info.kind == "image":
        return image_pictures(model, data, seed, pixels, mcmc) + conditioning_pictures(
            model, data, seed, classifier, mcmc, per_class, drawn
        )
    if data.info.n_features == 2:
        return plane_pictures(model, data, seed)
    return []


@torch.no_grad()
def text_examples(model: GenerativeModel, data: Dataset, seed: int) -> list[tuple[str, str]]:
    """Text: ``(caption, text)`` blocks of samples and of completions of test prefixes."""
    caps, info = model.capabilities, data.info
    generator = torch.Generator(device=model.device).manual_seed(seed)
    units = info.text_units or "lines"
    blocks = []
    if caps.sample:
        samples = model.sample(N_TEXT_SAMPLES, generator=generator).cpu()
        blocks.append(("samples", "\n".join(decode_tokens(samples, info.vocabulary, units))))
    if caps.supports("conditional"):
        x = data.x_test[:N_COMPLETED]
        mask = torch.zeros(x.shape[1:], dtype=torch.bool)
        mask[:TEXT_PREFIX] = True
        out = model.sample_conditional(
            x.to(model.device), mask, N_COMPLETIONS, generator=generator
        )
        prefixes = decode_tokens(x[:, :TEXT_PREFIX], info.vocabulary, units)
        lines = [
            f"{prefix}… → " + ", ".join(decode_tokens(out[:, i].cpu(), info.vocabulary, units))
            for i, prefix in enumerate(prefixes)
        ]
        caption = f"the first {TEXT_PREFIX} characters of test items, {N_COMPLETIONS} completions"
        blocks.append((caption, "\n".join(lines)))
    return blocks


def capability_badges(model: GenerativeModel) -> dict[str, bool]:
    """One badge per task, named with how the family does it (``density (lower bound)``)."""
    caps = model.capabilities
    badges = {}
    for task in TASKS:
        kind = caps.describe(task.name)
        badges[task.title if kind in (None, "yes") else f"{task.title} ({kind})"] = bool(kind)
    return badges
