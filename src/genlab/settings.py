"""Where every setting of a run comes from: named layers, resolved in order in one function.

A run's settings are two frozen dataclasses, the family's model config (``GANConfig``...) and
:class:`~genlab.train.TrainConfig`. Their values come from six layers, bottom to top; a later
layer overrides an earlier one key by key:

1. ``defaults``: the dataclasses' own field defaults, plus ``epochs=1`` (``TrainConfig`` needs
   exactly one of ``epochs`` and ``steps``, and sets neither by default);
2. ``family``: the family's defaults, ``default_train`` on its class (``steps=20000, lr=2e-3``
   for the GAN...);
3. ``recipe``: the settings an option brings with it, ``recipes[value]`` on the class for the
   value that the other layers give its ``recipe_option`` (the GAN's ``loss=wasserstein`` brings
   the WGAN paper's RMSProp at lr 5e-5, weight clipping and 5 critic steps);
4. ``budget``: ``budgets[budget]`` on the class, when a budget (``smoke``, ``fast``, ``full``)
   is named;
5. ``images``: for images of side at least :data:`~genlab.data.dataset.LARGE_IMAGE_SIDE` (28x28 MNIST, not the 8x8
   digits), ``large_image_budgets[budget]`` on the class (key ``None`` when no budget is
   named): architectures and lengths that suit the resolution, replacing the ones tuned on
   8x8 digits; empty when no data is given;
6. ``user``: the caller's settings (``--set key=value``, ``--epochs``/``--steps``, keyword
   arguments of :func:`genlab.fit`).

A key goes to the model config if it names one of its fields, else to ``TrainConfig``; any
other key is an error listing both. The run's length is one of ``epochs`` and ``steps``: a
layer that sets one clears the other (``--set steps=500`` on a family whose default is
``epochs=300`` trains 500 steps).

Example:
    >>> resolved = resolve_settings("gan", {"loss": "wasserstein"}, budget="fast")
    >>> resolved.train.lr, resolved.train_sources["lr"].label
    (5e-05, 'recipe (loss=wasserstein)')
    >>> resolved.train.steps, resolved.train_sources["steps"].label
    (2000, 'budget (fast)')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from genlab.config import build, field_names
from genlab.data.dataset import DataInfo, is_large_image
from genlab.errors import ConfigError
from genlab.models import GenerativeModel, family_class
from genlab.train.config import TrainConfig

__all__ = [
    "BUDGETS",
    "LAYERS",
    "ResolvedSettings",
    "SettingsLayer",
    "resolve_settings",
    "settings_layers",
]

BUDGETS = ("smoke", "fast", "full")
LayerName = Literal["defaults", "family", "recipe", "budget", "images", "user"]
LAYERS: tuple[str, ...] = get_args(LayerName)
# A layer that sets one of these clears the other (TrainConfig takes exactly one).
RUN_LENGTH = {"steps": "epochs", "epochs": "steps"}


@dataclass(frozen=True)
class SettingsLayer:
    """One layer of settings.

    Attributes:
        name: which layer (one of :data:`LAYERS`).
        label: the name with what picked it, as ``--dry-run`` shows it: ``"family (gan)"``,
            ``"recipe (loss=wasserstein)"``, ``"budget (fast)"``.
        values: option name -> value, as ``--set`` gives them (strings are coerced later).
    """

    name: LayerName
    label: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class ResolvedSettings:
    """The two configs of a run and, for each of their fields, the layer its value came from.

    Attributes:
        family: the family name.
        model: the family's config dataclass.
        train: the training config.
        layers: the layers in the order they were applied (see the module docstring).
        model_sources: every field of ``model`` -> the layer that set its value.
        train_sources: every field of ``train`` -> the layer that set its value.
    """

    family: str
    model: Any
    train: TrainConfig
    layers: tuple[SettingsLayer, ...]
    model_sources: Mapping[str, SettingsLayer]
    train_sources: Mapping[str, SettingsLayer]

    def rows(self) -> list[tuple[str, str, Any, str]]:
        """``(config class, field, value, source)`` for every field, model config first.

        The source is the layer's label; an ``epochs`` or ``steps`` that a layer cleared by
        setting the other says so (``"family (gan), which sets steps"``).
        """
        return [
            (type(config).__name__, name, getattr(config, name), _source(name, sources[name]))
            for config, sources in (
                (self.model, self.model_sources),
                (self.train, self.train_sources),
            )
            for name in field_names(type(config))
        ]

    def to_text(self) -> str:
        """Every setting, its value and its source, as ``genlab train --dry-run`` prints them."""
        rows = self.rows()
        width = max(len(name) for _, name, _, _ in rows)
        value_width = max(len(str(value)) for _, _, value, _ in rows)
        lines = [
            f"{self.family} settings, from the layers (a later one overrides an earlier one):",
            "  " + " < ".join(layer.label for layer in self.layers),
        ]
        for section in (type(self.model).__name__, type(self.train).__name__):
            lines += ["", section]
            lines += [
                f"  {name:<{width}}  {value!s:<{value_width}}  {source}"
                for config, name, value, source in rows
                if config == section
            ]
        return "\n".join(lines)


def _source(name: str, layer: SettingsLayer) -> str:
    other = RUN_LENGTH.get(name)
    if other is not None and name not in layer.values and layer.values.get(other) is not None:
        return f"{layer.label}, which sets {other}"
    return layer.label


def _dataclass_defaults(cls: type) -> dict[str, Any]:
    defaults = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
    return defaults


def _recipe_layer(cls: type[GenerativeModel], chosen: Mapping[str, Any]) -> SettingsLayer:
    """The recipe of the value ``chosen`` gives ``cls.recipe_option`` (an empty layer if none)."""
    option = cls.recipe_option
    if option is None:
        return SettingsLayer("recipe", "recipe", {})
    value = chosen.get(option)
    recipe = cls.recipes.get(value, {}) if isinstance(value, Hashable) else {}
    return SettingsLayer("recipe", f"recipe ({option}={value})", dict(recipe))


def _images_layer(
    cls: type[GenerativeModel], budget: str | None, info: DataInfo | None
) -> SettingsLayer:
    """``cls.large_image_budgets[budget]`` for large images, else an empty layer."""
    if info is None or not is_large_image(info):
        return SettingsLayer("images", "images", {})
    size = "x".join(str(side) for side in info.event_shape[1:])
    label = f"images ({size}{', ' + budget if budget else ''})"
    return SettingsLayer("images", label, dict(cls.large_image_budgets.get(budget, {})))


def settings_layers(
    family: str,
    settings: Mapping[str, Any],
    budget: str | None = None,
    info: DataInfo | None = None,
) -> list[SettingsLayer]:
    """The six layers of a run's settings, bottom to top (see the module docstring); ``info``
    describes the data (``None``: no ``images`` layer)."""
    cls = family_class(family)
    if budget is not None and budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    defaults = SettingsLayer(
        "defaults",
        "defaults",
        {
            **_dataclass_defaults(cls.config_class),
            **_dataclass_defaults(TrainConfig),
            "epochs": 1,
        },
    )
    family_layer = SettingsLayer("family", f"family ({family})", dict(cls.default_train))
    budget_layer = SettingsLayer(
        "budget",
        f"budget ({budget})" if budget else "budget",
        dict(cls.budgets.get(budget, {})) if budget else {},
    )
    images = _images_layer(cls, budget, info)
    user = SettingsLayer("user", "user", dict(settings))
    chosen = {
        key: value
        for layer in (defaults, family_layer, budget_layer, images, user)
        for key, value in layer.values.items()
    }
    return [defaults, family_layer, _recipe_layer(cls, chosen), budget_layer, images, user]


def resolve_settings(
    family: str,
    settings: Mapping[str, Any],
    budget: str | None = None,
    info: DataInfo | None = None,
) -> ResolvedSettings:
    """The model and train configs of a run, and where each of their values came from.

    Applies :func:`settings_layers` in order: each key goes to the family's config if it has
    that field, else to :class:`TrainConfig`; a layer that sets ``steps`` clears ``epochs`` and
    vice versa.

    Arguments:
        family: a registered family (``genlab.models.FAMILIES``).
        settings: the user's options, values or strings (``{"lr": "1e-4"}``).
        budget: ``"smoke"``, ``"fast"``, ``"full"`` or ``None``.
        info: the data the run trains on; large images (:func:`is_large_image`) get the
            family's ``large_image_budgets`` (``None``: settings for no data in particular).

    Raises:
        ConfigError: an unknown family, budget or option, or a value that does not fit its
            field (the message names the option and what is valid).
    """
    cls = family_class(family)
    model_fields, train_fields = field_names(cls.config_class), field_names(TrainConfig)
    layers = settings_layers(family, settings, budget, info)
    model_values: dict[str, Any] = {}
    train_values: dict[str, Any] = {}
    model_sources: dict[str, SettingsLayer] = {}
    train_sources: dict[str, SettingsLayer] = {}
    for layer in layers:
        for key, other in RUN_LENGTH.items():
            if layer.values.get(key) is not None:
                train_values[other], train_sources[other] = None, layer
        for key, value in layer.values.items():
            if key in model_fields:
                model_values[key], model_sources[key] = value, layer
            elif key in train_fields:
                train_values[key], train_sources[key] = value, layer
            else:
                raise ConfigError(
                    f"unknown option {key!r} for the {family!r} family; model options: "
                    f"{', '.join(model_fields)}; training options: {', '.join(train_fields)}"
                )
    return ResolvedSettings(
        family=family,
        model=build(cls.config_class, model_values, what=f"{family} model config"),
        train=build(TrainConfig, train_values, what="training config"),
        layers=tuple(layers),
        model_sources=model_sources,
        train_sources=train_sources,
    )
