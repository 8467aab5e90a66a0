"""The settings layers: values, their sources, and the configs they resolve to."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from genlab.config import field_names, to_dict
from genlab.data import DataInfo
from genlab.errors import ConfigError
from genlab.models import FAMILIES, GAN
from genlab.settings import LAYERS, resolve_settings
from genlab.train import TrainConfig

# The resolved configs of FAMILIES x BUDGETS x the settings below, frozen before the layers were
# made explicit (by the old `genlab.api.resolve_settings` of commit fbb9c16); rewrite it only
# when a change of numbers is intended, with `write_table()`.
FROZEN = Path(__file__).parent / "data" / "resolved_settings.json"
BUDGETS = (None, "smoke", "fast", "full")
COMMON = [
    {},
    {"steps": 7},
    {"epochs": 3},
    {"lr": 0.01, "batch_size": 32},
    {"lr": "3e-4", "steps": "50"},  # strings, as --set gives them
    {"latent_dim": 2},
    {"val_fraction": 0.0, "patience": 5},
    {"lr": "-1"},
    {"epochs": 2, "steps": 3},
]
ADVERSARIAL = [
    {"loss": "wasserstein"},
    {"loss": "wasserstein-gp"},
    {"loss": "hinge"},
    {"loss": "minimax", "lr": 1e-4},
    {"loss": "wasserstein", "d_steps": 2, "lr": 1e-3},
    {"loss": "wasserstein-gp", "epochs": 4, "optimizer": "rmsprop"},
    {"loss": "wasserstein", "lr_schedule": "cosine", "clip": 0.05},
    {"loss": "bogus"},
    {"loss": "wasserstein", "optimizer": "sgd"},
]


def _defaults(cls: type) -> dict:
    return json.loads(json.dumps({f.name: f.default for f in dataclasses.fields(cls)}))


def resolved_table() -> dict:
    """Every case's configs as their differences from the dataclass defaults, or its error."""
    classes = [TrainConfig, *(cls.config_class for cls in FAMILIES.values())]
    table = {"defaults": {cls.__name__: _defaults(cls) for cls in classes}, "cases": []}
    for family in FAMILIES:
        for budget in BUDGETS:
            for settings in COMMON + (ADVERSARIAL if family in ("gan", "bigan") else []):
                case = {"family": family, "budget": budget, "settings": settings}
                try:
                    resolved = resolve_settings(family, settings, budget)
                except ConfigError as exc:
                    case["error"] = str(exc)
                else:
                    for key, config in (("model", resolved.model), ("train", resolved.train)):
                        defaults = table["defaults"][type(config).__name__]
                        values = json.loads(json.dumps(to_dict(config)))
                        case[key] = {k: v for k, v in values.items() if v != defaults[k]}
                table["cases"].append(case)
    return table


def write_table() -> None:
    """Rewrite :data:`FROZEN` from the current code (one case per line, for readable diffs)."""
    table = resolved_table()
    cases = ",\n".join(json.dumps(case) for case in table["cases"])
    FROZEN.write_text(
        f'{{"defaults": {json.dumps(table["defaults"])},\n"cases": [\n{cases}\n]}}\n'
    )


def test_resolved_configs_are_the_frozen_ones():
    frozen = json.loads(FROZEN.read_text())
    current = resolved_table()
    assert current["defaults"] == frozen["defaults"]
    assert len(current["cases"]) == len(frozen["cases"])
    for now, before in zip(current["cases"], frozen["cases"], strict=True):
        assert now == before


def test_every_field_has_a_value_and_a_source():
    resolved = resolve_settings("gan", {"loss": "wasserstein"}, "fast")
    assert [layer.name for layer in resolved.layers] == list(LAYERS)
    assert set(resolved.model_sources) == set(field_names(type(resolved.model)))
    assert set(resolved.train_sources) == set(field_names(TrainConfig))
    rows = resolved.rows()
    assert len(rows) == len(resolved.model_sources) + len(resolved.train_sources)
    assert ("TrainConfig", "lr", 5e-5, "recipe (loss=wasserstein)") in rows


def test_wasserstein_recipe_sources():
    resolved = resolve_settings("gan", {"loss": "wasserstein"})
    model, train = resolved.model_sources, resolved.train_sources
    assert (resolved.train.lr, train["lr"].name) == (5e-5, "recipe")
    assert (resolved.model.optimizer, model["optimizer"].name) == ("rmsprop", "recipe")
    assert (resolved.model.clip, model["clip"].label) == (0.01, "recipe (loss=wasserstein)")
    assert (resolved.train.lr_schedule, train["lr_schedule"].name) == ("constant", "recipe")
    assert (resolved.train.steps, train["steps"].label) == (20_000, "family (gan)")
    assert (resolved.train.eval_every, train["eval_every"].name) == (500, "family")
    assert (resolved.model.loss, model["loss"].name) == ("wasserstein", "user")
    assert (resolved.model.ema_decay, model["ema_decay"].name) == (0.999, "defaults")
    assert (resolved.train.val_fraction, train["val_fraction"].name) == (0.1, "defaults")


def test_the_default_loss_has_an_empty_recipe():
    resolved = resolve_settings("gan", {})
    recipe = resolved.layers[LAYERS.index("recipe")]
    assert (recipe.label, dict(recipe.values)) == ("recipe (loss=nonsaturating)", {})
    assert (resolved.train.lr, resolved.train_sources["lr"].name) == (2e-3, "family")
    assert (resolved.model.optimizer, resolved.model_sources["optimizer"].name) == (
        "adam",
        "defaults",
    )


def test_user_overrides_the_recipe():
    resolved = resolve_settings("gan", {"loss": "wasserstein", "lr": "1e-4", "d_steps": 2})
    assert (resolved.train.lr, resolved.train_sources["lr"].name) == (1e-4, "user")
    assert (resolved.model.d_steps, resolved.model_sources["d_steps"].name) == (2, "user")
    assert (resolved.model.optimizer, resolved.model_sources["optimizer"].name) == (
        "rmsprop",
        "recipe",
    )


def test_budget_overrides_the_recipe_and_can_choose_it(monkeypatch):
    budgets = {**GAN.budgets, "fast": {"steps": 2_000, "lr": 1e-4, "loss": "wasserstein-gp"}}
    monkeypatch.setattr(GAN, "budgets", budgets)
    resolved = resolve_settings("gan", {}, "fast")
    # the budget's loss picks the recipe, and the budget's own lr wins over the recipe's
    assert resolved.layers[LAYERS.index("recipe")].label == "recipe (loss=wasserstein-gp)"
    assert (resolved.model.gp_weight, resolved.model_sources["gp_weight"].name) == (
        10.0,
        "recipe",
    )
    assert (resolved.train.lr, resolved.train_sources["lr"].label) == (1e-4, "budget (fast)")
    assert (resolved.train.steps, resolved.train_sources["steps"].label) == (
        2_000,
        "budget (fast)",
    )
    # the user's settings win over both
    resolved = resolve_settings("gan", {"loss": "wasserstein", "lr": 3e-5}, "fast")
    assert resolved.model.optimizer == "rmsprop"  # the user's loss picks the recipe
    assert (resolved.train.lr, resolved.train_sources["lr"].name) == (3e-5, "user")


def test_budget_over_family_defaults():
    resolved = resolve_settings("vae", {}, "fast")
    assert (resolved.train.epochs, resolved.train_sources["epochs"].label) == (
        300,
        "budget (fast)",
    )
    assert (resolved.train.patience, resolved.train_sources["patience"].name) == (30, "budget")
    assert (resolved.train.lr, resolved.train_sources["lr"].label) == (1e-3, "family (vae)")


def test_a_layer_setting_steps_clears_epochs_and_vice_versa():
    resolved = resolve_settings("vae", {"steps": 50}, "fast")  # family and budget set epochs
    assert (resolved.train.steps, resolved.train.epochs) == (50, None)
    assert resolved.train_sources["epochs"].name == "user"
    assert ("TrainConfig", "epochs", None, "user, which sets steps") in resolved.rows()
    resolved = resolve_settings("gan", {"epochs": 2})  # the family sets steps
    assert (resolved.train.epochs, resolved.train.steps) == (2, None)
    assert resolved.train_sources["steps"].name == "user"
    # a family that sets neither (PCA fits in closed form) gets the defaults layer's one epoch
    resolved = resolve_settings("pca", {})
    assert (resolved.train.epochs, resolved.train_sources["epochs"].name) == (1, "defaults")


@pytest.mark.parametrize(
    "family,settings,budget,message",
    [
        ("gan", {"nope": 1}, None, "unknown option 'nope' for the 'gan' family"),
        ("gan", {"loss": "bogus"}, None, "gan model config.loss must be one of"),
        ("vae", {}, "huge", "unknown budget 'huge'"),
        ("vae", {"lr": 0}, None, "lr must be positive"),
        ("gan2", {}, None, "unknown model family 'gan2'"),
    ],
)
def test_bad_settings_are_clear_errors(family, settings, budget, message):
    with pytest.raises(ConfigError, match=message):
        resolve_settings(family, settings, budget)


IMAGES_28 = DataInfo("28x28", (1, 28, 28), "image", levels=256, value_range=(0.0, 255.0))
DIGITS_8 = DataInfo("8x8", (1, 8, 8), "image", levels=17, value_range=(0.0, 16.0))


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("family", FAMILIES)
def test_8x8_images_and_vectors_resolve_as_without_data(family, budget):
    """The frozen table (no data) is what 8x8 digits and vectors get: no images layer."""
    plain = resolve_settings(family, {}, budget)
    for info in (DIGITS_8, DataInfo("2-D", (2,), "vector")):
        sized = resolve_settings(family, {}, budget, info)
        assert (sized.model, sized.train) == (plain.model, plain.train)
        assert dict(sized.layers[LAYERS.index("images")].values) == {}


# a setting the user overrides at 28x28, and a valid value of it (default: the architecture)
USER_OVERRIDES = {"flow": ("conditioner", "mlp"), "autoregressive": ("dilation_cycle", 1)}


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("family", [f for f, cls in FAMILIES.items() if cls.large_image_budgets])
def test_28x28_images_get_the_large_image_budget_over_the_budget(family, budget):
    resolved = resolve_settings(family, {}, budget, IMAGES_28)
    layer = resolved.layers[LAYERS.index("images")]
    expected = FAMILIES[family].large_image_budgets.get(budget, {})
    assert layer.label == "images (28x28" + (f", {budget})" if budget else ")")
    assert dict(layer.values) == expected
    for key, value in expected.items():
        config = resolved.model if key in resolved.model_sources else resolved.train
        sources = resolved.model_sources if config is resolved.model else resolved.train_sources
        assert getattr(config, key) == value and sources[key].name == "images"
    # the user's settings still win
    key, value = USER_OVERRIDES.get(family, ("architecture", "mlp"))
    user = resolve_settings(family, {key: value}, budget, IMAGES_28)
    assert (getattr(user.model, key), user.model_sources[key].name) == (value, "user")


def test_the_vae_at_28x28_is_a_conv_net_trained_few_epochs():
    resolved = resolve_settings("vae", {}, "fast", IMAGES_28)
    assert (resolved.model.architecture, resolved.train.epochs) == ("conv", 25)
    assert resolved.train_sources["epochs"].label == "images (28x28, fast)"
    assert resolve_settings("vae", {}, "fast", DIGITS_8).model.architecture == "mlp"
