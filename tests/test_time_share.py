"""A run's steps fitted to a time share (``genlab.train.time_share``) and ``compare
--train-seconds``, which fits every family's run to one."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

import genlab
from genlab.api import build_model
from genlab.cli import main
from genlab.compare import (
    EVALUATION_SIZES,
    FAST_LARGE,
    TRAIN_SECONDS,
    _trained,
    compare,
    share_note,
    share_settings,
    sizes_key,
)  # fmt: skip
from genlab.errors import ConfigError
from genlab.models import FAMILIES
from genlab.runs import RunDirectory
from genlab.settings import resolve_settings
from genlab.train.time_share import fitted_settings, run_steps, step_seconds, steps_within


def vae_and_config(digits, **settings):
    resolved = resolve_settings("vae", settings, "smoke", digits.info)
    return build_model("vae", resolved.model, digits.info, 0), resolved.train


def test_the_steps_are_the_share_over_a_step_and_the_stages_scale_alike(digits):
    """n = min(N, floor(S / t)); warmup_steps scaled by n / N, at least 1; eval_every kept."""
    model, _ = vae_and_config(digits, warmup_steps=100, eval_every=50)
    # validations keep their spacing, so that their time shrinks with the run's
    assert steps_within(2.0, 0.01, model, steps=1_000) == {
        "steps": 200,
        "warmup_steps": 20,
    }
    assert steps_within(2.5, 0.01, model, steps=250) == {}  # it fits: its own steps
    assert steps_within(1.0, 10.0, model, steps=1_000) == {"steps": 1, "warmup_steps": 1}
    plain, _ = vae_and_config(digits)  # no warm-up, validation at epoch ends
    assert steps_within(2.0, 0.01, plain, steps=1_000) == {"steps": 200}


def test_the_run_steps_count_the_epochs_of_the_training_split_left(digits):
    """An epoch is the training split less the validation split, in batches."""
    _, config = vae_and_config(digits, epochs=3, batch_size=100, val_fraction=0.25)
    n_fit = len(digits.x_train) - round(0.25 * len(digits.x_train))
    assert run_steps(digits, config) == 3 * math.ceil(n_fit / 100)


def test_timing_a_step_leaves_the_model_and_the_random_streams_as_they_were(digits):
    model, config = vae_and_config(digits)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    seconds = step_seconds(model, digits, config)
    assert 0 < seconds < 10
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_closed_form_fit_keeps_its_settings(digits):
    resolved = resolve_settings("pca", {}, "smoke", digits.info)
    pca = build_model("pca", resolved.model, digits.info, 0)
    assert fitted_settings(pca, digits, resolved.train, seconds=1e-9) == {}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_step_setting_is_a_count_of_steps_in_the_config(family):
    cls = FAMILIES[family]
    fields = {f.name: f for f in dataclasses.fields(cls.config_class)}
    for name in cls.step_settings:
        assert name in fields and "int" in str(fields[name].type), (family, name)


def test_fast_on_large_images_has_its_own_sizes_and_a_time_share(digits, tiny_28):
    assert sizes_key("fast", tiny_28.info) == FAST_LARGE and TRAIN_SECONDS[FAST_LARGE] == 30.0
    assert sizes_key("fast", digits.info) == "fast" and TRAIN_SECONDS["fast"] is None
    assert sizes_key("smoke", tiny_28.info) == "smoke"  # smoke is small at every size
    smaller = EVALUATION_SIZES[FAST_LARGE]
    assert smaller["n_test"] < EVALUATION_SIZES["fast"]["n_test"]


def test_compare_fits_every_run_to_the_share_and_reuses_it(tmp_path, capsys, digits):
    """``--train-seconds``: each gradient-trained family trains the steps that fit the share
    (fewer than its budget's), the scorecard says so; a second compare with the same share
    reuses the runs although it would time the steps afresh; another share retrains."""
    args = ["compare", "--data", "digits", "--models", "pca,vae", "--budget", "smoke"]
    args += ["--out", str(tmp_path), "--no-progress"]
    assert main([*args, "--train-seconds", "0.01"]) == 0
    capsys.readouterr()
    own_steps = run_steps(digits, resolve_settings("vae", {}, "smoke", digits.info).train)
    run = RunDirectory(tmp_path / "vae")
    steps = run.read_config().train["steps"]
    assert 1 <= steps < own_steps and run.read_summary()["step"] == steps
    card = json.loads((tmp_path / "scorecard.json").read_text())
    assert card["train_seconds"] == 0.01
    assert "fitted to about 0.01 s of training steps" in card["note"]

    model = tmp_path / "vae" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    assert main([*args, "--train-seconds", "0.01"]) == 0
    assert model.stat().st_mtime_ns == stamp  # the same share: reused
    assert main([*args, "--train-seconds", "inf"]) == 0
    capsys.readouterr()
    assert model.stat().st_mtime_ns != stamp  # the budget's own steps: retrained
    assert run.read_summary()["step"] == own_steps
    card = json.loads((tmp_path / "scorecard.json").read_text())
    assert card["train_seconds"] is None and "training steps" not in (card["note"] or "")


def test_a_share_that_is_not_a_positive_number_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="train_seconds must be a positive"):
        compare("digits", ["pca"], out=tmp_path, budget="smoke", train_seconds=0)
    with pytest.raises(ConfigError, match="train_seconds must be a positive"):
        genlab.fit("vae", "digits", budget="smoke", train_seconds=-1.0)


def test_train_fits_one_run_to_the_share_over_the_users_epochs(tmp_path, capsys, digits):
    """``genlab train --train-seconds``: the run's steps fitted to the share replace the user's
    epochs and are recorded in config.json; an infinite share keeps the run's own steps."""
    args = ["train", "vae", "--budget", "smoke", "--epochs", "50", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a"), "--train-seconds", "0.01"]) == 0
    capsys.readouterr()
    own_steps = run_steps(digits, resolve_settings("vae", {"epochs": 50}, "smoke").train)
    run = RunDirectory(tmp_path / "a")
    config = run.read_config().train
    assert config["epochs"] is None and 1 <= config["steps"] < own_steps
    assert run.read_summary()["step"] == config["steps"]
    model, _ = vae_and_config(digits)
    assert steps_within(math.inf, 0.01, model, steps=1_000) == {}


def test_diffusion_fitted_to_a_share_at_fast_on_large_images_takes_16_channels(
    tmp_path, digits, tiny_28
):
    """At ``fast`` on large images a diffusion run fitted to a time share takes its
    :data:`SHARE_SETTINGS` (the U-Net at 16 channels instead of the budget's 32), recorded in
    config.json and stated in the scorecard's note; its budget's own steps, other budgets and
    small images keep the budget's settings."""
    run, _ = _trained(
        "diffusion", tiny_28, tmp_path / "run", "fast", 0, "cpu", False, 1, 0.01, False
    )
    assert RunDirectory(tmp_path / "run").read_config().model["channels"] == 16
    assert resolve_settings("diffusion", {}, "fast", tiny_28.info).model.channels == 32
    assert share_settings("diffusion", "fast", tiny_28.info, None) == {}
    assert share_settings("diffusion", "full", tiny_28.info, 30.0) == {}
    assert share_settings("diffusion", "fast", digits.info, 30.0) == {}
    assert share_settings("vae", "fast", tiny_28.info, 30.0) == {}
    note = share_note(30.0, ["vae", "diffusion"], "fast", tiny_28.info)
    assert note.endswith(
        "diffusion runs with channels=16 instead of its budget's (SHARE_SETTINGS)."
    )
    assert "diffusion runs" not in share_note(30.0, ["vae"], "fast", tiny_28.info)
