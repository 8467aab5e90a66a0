"""The training loop: determinism, atomic checkpoints, divergence, errors (kill -9 and resume:
tests/test_run_safety.py, for every family)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import genlab
from genlab.errors import CheckpointError, ConfigError, StorageError, TrainingDiverged
from genlab.io import read_safetensors
from genlab.runs import read_metrics
from genlab.train.checkpoint import load_model

AE_SMALL = {"latent_dim": 4, "hidden": (32,), "epochs": 20, "checkpoint_every": 25}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


def test_same_seed_same_parameters(tmp_path, digits):
    a = genlab.fit("ae", digits, seed=3, **AE_SMALL)
    b = genlab.fit("ae", digits, seed=3, **AE_SMALL)
    c = genlab.fit("ae", digits, seed=4, **AE_SMALL)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert not torch.equal(
        a.state_dict()["encoder.1.0.weight"], c.state_dict()["encoder.1.0.weight"]
    )


def test_run_directory_contents(tmp_path, digits):
    genlab.fit("ae", digits, out=tmp_path / "run", **AE_SMALL)
    run = tmp_path / "run"
    for name in (
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "checkpoints/last.safetensors",
        "samples.png",
    ):
        assert (run / name).exists(), name
    records = read_metrics(run)
    assert any(r["split"] == "val" for r in records)
    assert all(r["step"] >= 1 for r in records)
    assert not list(run.rglob("*.tmp"))
    reloaded = genlab.load(run)
    assert reloaded.info == digits.info


def test_early_stopping_keeps_the_best_validation_weights(tmp_path, digits):
    genlab.fit(
        "ae", digits, out=tmp_path / "run", latent_dim=4, hidden=(32,), epochs=400, patience=3
    )
    records = read_metrics(tmp_path / "run")
    val = [r for r in records if r["split"] == "val"]
    assert len(val) < 400  # stopped early
    best = min(val, key=lambda r: r["loss"])
    # the three validations after the best one did not improve, and training stopped there
    assert val[-1]["step"] == val[val.index(best) + 3]["step"]
    model = genlab.load(tmp_path / "run")
    from genlab.train.loop import validation_split

    _, val_idx = validation_split(len(digits.x_train), 0.1, 0)
    x_val = digits.x_train[val_idx]
    with torch.no_grad():
        loss = float(model.validation_loss(x_val, torch.Generator()).mean())
    assert loss == pytest.approx(best["loss"], rel=1e-5)


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, digits, monkeypatch):
    run = tmp_path / "run"
    genlab.fit("ae", digits, out=run, **AE_SMALL)
    checkpoint = run / "checkpoints" / "last.safetensors"
    before = checkpoint.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    model = genlab.load(run)
    from genlab.train.checkpoint import save_checkpoint

    with pytest.raises(StorageError, match="simulated"):
        save_checkpoint(checkpoint, model, {}, {"step": 1}, {})
    monkeypatch.undo()
    assert checkpoint.read_bytes() == before
    assert not list(checkpoint.parent.glob("*.tmp"))
    load_model(checkpoint, genlab.load(run))


def test_divergence_stops_with_step_and_quantity(tmp_path, digits):
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+: loss = (nan|inf)"):
        genlab.fit(
            "ae",
            digits,
            out=tmp_path / "run",
            latent_dim=4,
            epochs=50,
            lr=1e12,
            checkpoint_every=1,
        )
    # the last good checkpoint survives and loads
    checkpoint = tmp_path / "run" / "checkpoints" / "last.safetensors"
    tensors, _ = read_safetensors(checkpoint)
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if t.is_floating_point())


# ---------------------------------------------------------------- bad checkpoints


@pytest.fixture
def trained_run(tmp_path, digits):
    run = tmp_path / "run"
    genlab.fit("ae", digits, out=run, **AE_SMALL)
    return run


def test_truncated_checkpoint(trained_run):
    path = trained_run / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        genlab.load(trained_run)


def test_pickle_posing_as_checkpoint_is_not_executed(trained_run, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (trained_run / "model.safetensors").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="never unpickles"):
        genlab.load(trained_run)
    assert not marker.exists()


def test_torch_save_file_is_refused(trained_run):
    torch.save({"a": torch.zeros(2)}, trained_run / "model.safetensors")
    with pytest.raises(CheckpointError, match="never unpickles"):
        genlab.load(trained_run)


def test_foreign_safetensors_file(trained_run):
    save_file({"w": torch.zeros(3)}, trained_run / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a genlab"):
        genlab.load(trained_run)


def test_checkpoint_from_another_family(trained_run, tmp_path, digits):
    genlab.fit("pca", digits, out=tmp_path / "pca")
    (trained_run / "model.safetensors").write_bytes(
        (tmp_path / "pca" / "model.safetensors").read_bytes()
    )
    with pytest.raises(CheckpointError, match="'pca' family cannot be loaded into a 'ae' model"):
        genlab.load(trained_run)


def test_checkpoint_of_another_shape(trained_run, tmp_path, digits):
    genlab.fit("ae", digits, out=tmp_path / "other", latent_dim=5, hidden=(32,), epochs=1)
    (trained_run / "model.safetensors").write_bytes(
        (tmp_path / "other" / "model.safetensors").read_bytes()
    )
    with pytest.raises(CheckpointError, match="has shape"):
        genlab.load(trained_run)


def test_missing_run_and_corrupt_config(tmp_path, trained_run):
    with pytest.raises(CheckpointError, match="no such run directory"):
        genlab.load(tmp_path / "nope")
    (trained_run / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt JSON"):
        genlab.load(trained_run)


def test_existing_run_is_not_overwritten(trained_run, digits):
    before = (trained_run / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a run"):
        genlab.fit("ae", digits, out=trained_run, epochs=1)
    assert (trained_run / "model.safetensors").read_bytes() == before


# ---------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"latent_dimm": 3}, "unknown option 'latent_dimm'"),
        ({"latent_dim": "abc"}, "must be an integer"),
        ({"latent_dim": 0}, "latent_dim must be >= 1"),
        ({"batch_size": -5}, "batch_size must be a positive integer"),
        ({"epochs": 10**9}, "absurd"),
        ({"lr": "fast"}, "must be a number"),
        ({"architecture": "transformer"}, "must be one of mlp, conv, linear"),
        ({"val_fraction": 1.5}, r"val_fraction must be in \[0, 1\)"),
    ],
)
def test_bad_settings(settings, message, digits):
    with pytest.raises(ConfigError, match=message):
        genlab.fit("ae", digits, **settings)


def test_unknown_family_and_budget(digits):
    with pytest.raises(ConfigError, match="unknown model family 'gann'"):
        genlab.fit("gann", digits)
    with pytest.raises(ConfigError, match="unknown budget"):
        genlab.fit("ae", digits, budget="huge")


def test_steps_from_the_user_replace_the_family_default_epochs(digits):
    train = genlab.api.resolve_settings("ae", {"steps": 7}).train
    assert train.steps == 7 and train.epochs is None


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_fused_adam_shortcut_matches_torch_adam_bit_for_bit(weight_decay):
    """genlab.train.optim.FusedAdam calls torch's fused kernel directly: same numbers and state,
    through a state_dict round trip and the fallback for a parameter without a gradient."""
    from genlab.optim import FusedAdam, adam

    def run(cls: type[torch.optim.Adam]) -> tuple[list[torch.Tensor], dict]:
        generator = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(5, 3, generator=generator)) for _ in range(2)]
        optimizer = cls(params, lr=1e-2, weight_decay=weight_decay, fused=True)
        for step in range(6):
            for i, p in enumerate(params):  # step 3: the second parameter has no gradient
                p.grad = None if (step == 3 and i == 1) else torch.randn(5, 3, generator=generator)
            if cls is FusedAdam:  # the direct call, except on state creation and a missing grad
                assert (optimizer._shortcut() is None) == (step in (0, 3))
            if cls is FusedAdam and step % 2:  # the optimizer's step without torch's wrapper
                optimizer.take_step()
            else:
                optimizer.step()
            if step == 2:
                state = optimizer.state_dict()
                optimizer = cls(params, lr=1e-2, weight_decay=weight_decay, fused=True)
                optimizer.load_state_dict(state)
        return params, optimizer.state_dict()

    (ours, our_state), (theirs, their_state) = run(FusedAdam), run(torch.optim.Adam)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    for index in (0, 1):  # the second parameter missed a step: its count is its own
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(our_state["state"][index][key], their_state["state"][index][key])
    assert [float(s["step"]) for s in our_state["state"].values()] == [6.0, 5.0]
    # the counts are views of one tensor, counted up by one operation
    storages = {s["step"].untyped_storage().data_ptr() for s in our_state["state"].values()}
    assert len(storages) == 1
    assert isinstance(adam([torch.nn.Parameter(torch.zeros(2))], lr=1e-3), FusedAdam)


def test_fused_adam_take_step_runs_registered_hooks_and_zero_grad_clears():
    from torch.optim import optimizer as optimizer_module

    from genlab.optim import FusedAdam

    p = torch.nn.Parameter(torch.ones(3))
    optimizer = FusedAdam([p], lr=0.1, fused=True)
    calls = []
    p.grad = torch.ones(3)
    optimizer.take_step()  # no hook: the direct step
    handle = optimizer.register_step_post_hook(lambda *args: calls.append("local"))
    glob = optimizer_module.register_optimizer_step_pre_hook(lambda *args: calls.append("global"))
    try:
        optimizer.take_step()
    finally:
        handle.remove()
        glob.remove()
    assert calls == ["global", "local"]
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.8))  # two steps of lr 0.1
    optimizer.zero_grad()
    assert p.grad is None
