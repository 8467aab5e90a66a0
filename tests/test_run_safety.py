"""Run directories that cannot be corrupted (issue 14): one writer per run (two real processes),
a kill at any point of a run's life followed by `genlab resume` ends in a complete, correct run
(for every trainable family), checkpoints on the wall clock, torn metrics lines, the data a run
was trained on, and file-system failures as one clear line."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import genlab
import genlab.train.loop as loop
from genlab.errors import StorageError
from genlab.models import FAMILIES
from genlab.runs import RunLock, read_metrics, writer_of
from tests.hostile import refused, snapshot, succeeds
from tests.processes import checkpoint_step, killed_at, paused_at, stop

# Every gradient-trained family (the families added later are covered when they register).
GRADIENT = [name for name, cls in FAMILIES.items() if cls.fit_method == "gradient"]
STEPS = 12
# Checkpoints at 4, 8, 12; validation (and best-weights selection) at 3, 6, 9, 12.
SMALL = {"budget": "smoke", "steps": STEPS, "checkpoint_every": 4, "eval_every": 3}


def _data_spec(family: str) -> str:
    """The embedded data a family trains on here: digits, or names for the text families."""
    return "digits" if "image" in FAMILIES[family].data_kinds else "first-names"


def _train_args(family: str, run: Path, *extra: str) -> list[str]:
    args = ["train", family, "--data", _data_spec(family), "--out", str(run)]
    args += ["--budget", "smoke"]
    args += ["--steps", str(STEPS), "--set", "checkpoint_every=4", "--set", "eval_every=3"]
    return [*args, "--no-progress", *extra]


def _same_weights(run: Path, model: torch.nn.Module) -> None:
    saved = load_file(run / "model.safetensors")
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    assert saved.keys() == state.keys()
    for key, value in saved.items():
        assert torch.equal(value, state[key]), key


def _logged_steps(run: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run) if r["split"] == "train"]


# ---------------------------------------------------------------- class 4: kill, then resume


@pytest.mark.parametrize("family", GRADIENT)
def test_kill_9_between_checkpoints_then_resume_equals_an_uninterrupted_run(
    family, tmp_path, capsys, request
):
    data = request.getfixturevalue(_data_spec(family).replace("-", "_"))
    run = tmp_path / "run"
    killed_at("step", 10, _train_args(family, run))  # after the checkpoint of step 8
    assert checkpoint_step(run / "checkpoints" / "last.safetensors") == 8
    assert not (run / "model.safetensors").exists()
    succeeds(["resume", str(run), "--no-progress"], capsys)
    _same_weights(run, genlab.fit(family, data, **SMALL))
    assert _logged_steps(run) == list(range(1, STEPS + 1))  # steps 9-10 once, not twice
    assert (run / "summary.json").exists()


@pytest.mark.parametrize("kill_step, checkpoint", [(7, 4), (10, 8)])
def test_a_staged_run_resumes_across_its_stage_end(
    kill_step, checkpoint, tmp_path, capsys, digits
):
    """The VQ-VAE's autoencoder stage ends at step 6 (the best weights restored, selection
    reset): killed before it (resumed from step 4) or after it (from step 8), the resumed run
    ends with the weights of an uninterrupted one."""
    run = tmp_path / "run"
    killed_at("step", kill_step, _train_args("vqvae", run, "--set", "autoencoder_steps=6"))
    assert checkpoint_step(run / "checkpoints" / "last.safetensors") == checkpoint
    succeeds(["resume", str(run), "--no-progress"], capsys)
    _same_weights(run, genlab.fit("vqvae", digits, **SMALL, autoencoder_steps=6))
    assert json.loads((run / "summary.json").read_text())["best_step"] > 6


def test_kill_before_the_first_checkpoint_has_one_way_forward(tmp_path, capsys, digits):
    """`genlab train` again says to resume, and `genlab resume` trains from the start."""
    run = tmp_path / "run"
    killed_at("step", 2, _train_args("ae", run))
    assert not (run / "checkpoints" / "last.safetensors").exists()
    refused(_train_args("ae", run), f"use `genlab resume {run}`", capsys, tmp_path)
    succeeds(["resume", str(run), "--no-progress"], capsys)
    _same_weights(run, genlab.fit("ae", digits, **SMALL))
    assert _logged_steps(run) == list(range(1, STEPS + 1))


def test_kill_between_the_last_checkpoint_and_the_final_weights(tmp_path, capsys, digits):
    run = tmp_path / "run"
    killed_at("final", "-", _train_args("vae", run))
    assert json.loads(load_file_header(run)["trainer"])["finished"]
    assert not (run / "model.safetensors").exists()
    out, _ = succeeds(["resume", str(run), "--no-progress"], capsys)
    assert "finished" in out
    _same_weights(run, genlab.fit("vae", digits, **SMALL))
    assert json.loads((run / "summary.json").read_text())["finished"]


def test_kill_while_drawing_the_pictures(tmp_path, capsys):
    run = tmp_path / "run"
    killed_at("pictures", "-", _train_args("ae", run))
    weights = load_file(run / "model.safetensors")
    assert not (run / "samples.png").exists()
    succeeds(["resume", str(run), "--no-progress"], capsys)
    assert (run / "samples.png").exists() and (run / "curves.png").exists()
    after = load_file(run / "model.safetensors")
    assert all(torch.equal(after[key], value) for key, value in weights.items())


def test_kill_during_compare_then_the_same_command_completes_it(tmp_path, capsys, digits):
    out = tmp_path / "cmp"
    args = ["compare", "--data", "digits", "--models", "pca,ae", "--budget", "smoke"]
    args += ["--out", str(out), "--no-progress", "--json"]
    killed_at("family", "ae", args)
    assert (out / "pca" / "summary.json").exists() and not (out / "scorecard.json").exists()
    pca_stamp = (out / "pca" / "model.safetensors").stat().st_mtime_ns
    stdout, _ = succeeds(args, capsys)
    scores = json.loads(stdout.strip().splitlines()[-1])["families"]
    assert list(scores) == ["pca", "ae"] and scores["ae"]["fid"] is not None
    assert (out / "pca" / "model.safetensors").stat().st_mtime_ns == pca_stamp  # reused
    _same_weights(out / "ae", genlab.fit("ae", digits, budget="smoke"))


def load_file_header(run: Path) -> dict[str, str]:
    return genlab.io.read_safetensors(run / "checkpoints" / "last.safetensors")[1]


# ---------------------------------------------------------------- class 1: one writer


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """An `ae` training process paused after step 8 (its checkpoint written), holding the lock."""
    run = tmp_path_factory.mktemp("busy") / "run"
    process = paused_at(8, _train_args("ae", run))
    yield process, run
    stop(process)


@pytest.mark.parametrize(
    "command",
    [
        ["train", "ae", "--data", "digits", "--out", "RUN"],
        ["train", "ae", "--data", "digits", "--out", "RUN", "--overwrite"],
        ["resume", "RUN"],
    ],
    ids=["train", "train-overwrite", "resume"],
)
def test_a_second_writer_is_refused_naming_the_process(training, command, capsys):
    process, run = training
    config = (run / "config.json").read_bytes()
    args = [str(run) if c == "RUN" else c for c in command]
    refused(args, f"is being written by process {process.pid}", capsys, run.parent)
    assert (run / "config.json").read_bytes() == config


def test_a_second_writer_in_another_process_is_refused_too(training):
    process, run = training
    result = subprocess.run(
        [sys.executable, "-m", "genlab", "train", "pca", "--out", str(run)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"is being written by process {process.pid}" in result.stderr


def test_readers_read_the_last_checkpoint_of_a_run_in_progress(training, capsys, caplog, tmp_path):
    process, run = training
    with caplog.at_level("WARNING"):
        succeeds(["evaluate", str(run)], capsys)
    assert f"is being trained by process {process.pid}" in caplog.text
    succeeds(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.npy")], capsys)
    assert np.load(tmp_path / "s.npy").shape == (4, 1, 8, 8)


def test_a_killed_writer_leaves_no_stale_lock(tmp_path, capsys):
    run = tmp_path / "run"
    process = paused_at(5, _train_args("ae", run))
    assert writer_of(run).startswith(f"process {process.pid} (")  # type: ignore[union-attr]
    stop(process)
    assert writer_of(run) is None
    with RunLock(run):  # the kernel released it
        pass
    succeeds(["resume", str(run), "--no-progress"], capsys)


def test_two_compares_into_one_folder(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--data", "ring", "--models", "ae", "--budget", "smoke", "--out", str(out)]
    process = paused_at(1, [*args, "--no-progress"])
    try:
        refused([*args, "--no-progress"], f"is being written by process {process.pid}", capsys,
                tmp_path)  # fmt: skip
    finally:
        stop(process)


# ---------------------------------------------------------------- checkpoints on the clock


def test_checkpoints_follow_the_wall_clock_and_never_change_the_numbers(
    tmp_path, monkeypatch, digits
):
    """With every step a minute long (a fake clock), every step checkpoints although
    checkpoint_every is 1000; the weights are those of a run that checkpointed once."""
    plain = genlab.fit("ae", digits, steps=6, checkpoint_every=1000, checkpoint_seconds=None)
    now = [0.0]

    def clock() -> float:
        now[0] += 61.0
        return now[0]

    written = []
    save = loop.save_checkpoint
    monkeypatch.setattr(loop.time, "monotonic", clock)
    monkeypatch.setattr(
        loop, "save_checkpoint", lambda *a, **k: (written.append(a[3]["step"]), save(*a, **k))
    )
    timed = genlab.fit("ae", digits, out=tmp_path / "run", steps=6, checkpoint_every=1000)
    assert written == [1, 2, 3, 4, 5, 6, 6]  # each step, then the finished state
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["checkpoint_seconds"] == 60.0
    for key, value in plain.state_dict().items():
        assert torch.equal(value, timed.state_dict()[key]), key


# ---------------------------------------------------------------- torn and corrupt metrics


def test_a_corrupt_metrics_line_drops_only_itself_on_resume(tmp_path, capsys, digits):
    run = tmp_path / "run"

    def stop_at_nine(step: int, model: torch.nn.Module) -> None:
        if step == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        genlab.fit("ae", digits, out=run, callback=stop_at_nine, **SMALL)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[1] = lines[1][:17] + "\x00garbage"  # step 2's line, torn
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 9, "spl')  # torn last
    succeeds(["resume", str(run), "--no-progress"], capsys)
    assert _logged_steps(run) == [1, *range(3, STEPS + 1)]  # 3-8 kept, 9-12 trained again
    _same_weights(run, genlab.fit("ae", digits, **SMALL))


# ---------------------------------------------------------------- class 3: the run's data


def _trained_on_file(tmp_path: Path, capsys) -> Path:
    np.save(tmp_path / "d.npy", np.random.default_rng(0).normal(size=(60, 4)))
    succeeds(["train", "ae", "--data", str(tmp_path / "d.npy"), "--out", str(tmp_path / "run"),
              "--steps", "8", "--set", "checkpoint_every=4", "--no-progress"], capsys)  # fmt: skip
    return tmp_path / "run"


def test_resume_on_changed_data_goes_on_only_when_asked_and_records_it(tmp_path, capsys):
    run = _trained_on_file(tmp_path, capsys)
    before = json.loads((run / "config.json").read_text())["data"]["fingerprint"]
    np.save(tmp_path / "d.npy", np.random.default_rng(1).normal(size=(60, 4)))
    refused(["resume", str(run)], "--allow-data-change", capsys, tmp_path)
    succeeds(["resume", str(run), "--allow-data-change", "--no-progress"], capsys)
    data = json.loads((run / "config.json").read_text())["data"]
    assert data["changes"][0]["from"] == before != data["fingerprint"] == data["changes"][0]["to"]


def test_compare_never_reuses_a_run_trained_on_other_data(tmp_path, capsys):
    data = tmp_path / "d.npy"
    np.save(data, np.random.default_rng(0).normal(size=(200, 3)))
    args = ["compare", "--data", str(data), "--models", "pca", "--out", str(tmp_path / "c")]
    args += ["--json", "--no-progress"]
    first = json.loads(succeeds(args, capsys)[0].strip().splitlines()[-1])
    np.save(data, 100 * np.random.default_rng(0).normal(size=(200, 3)))
    second = json.loads(succeeds(args, capsys)[0].strip().splitlines()[-1])
    fresh = genlab.evaluate(genlab.fit("pca", str(data)), genlab.data.load(str(data)))
    assert second["families"]["pca"]["nll_nats"] == pytest.approx(fresh["nll_nats"])
    assert first["families"]["pca"]["nll_nats"] != pytest.approx(fresh["nll_nats"])


# ---------------------------------------------------------------- class 2: --overwrite


def test_overwrite_replaces_a_run_and_keeps_the_users_own_files(tmp_path, capsys):
    run = tmp_path / "run"
    succeeds(["train", "pca", "--out", str(run)], capsys)
    (run / "notes.txt").write_text("mine")
    old = (run / "model.safetensors").read_bytes()
    succeeds(["train", "pca", "--out", str(run), "--overwrite", "--set", "latent_dim=4"], capsys)
    assert (run / "notes.txt").read_text() == "mine"
    assert (run / "model.safetensors").read_bytes() != old


# ---------------------------------------------------------------- class 7: the file system


def _fail_writes_under(monkeypatch, folder: Path, code: int, after: int = 0) -> None:
    """Creating files under ``folder`` fails with ``code`` from the ``after + 1``-th on (the
    lock file is the first, each atomic write's temporary file one more); so does creating a
    folder there from then on."""
    created = [0]
    open_, mkdir = os.open, os.mkdir

    def failing_open(path, flags, *args, **kwargs):
        creates = flags & os.O_CREAT or flags & os.O_TMPFILE == os.O_TMPFILE
        if creates and Path(path).is_relative_to(folder):
            created[0] += 1
            if created[0] > after:
                raise OSError(code, os.strerror(code), str(path))
        return open_(path, flags, *args, **kwargs)

    def failing_mkdir(path, *args, **kwargs):
        if Path(path).is_relative_to(folder) and created[0] >= after and not Path(path).exists():
            raise OSError(code, os.strerror(code), str(path))
        return mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", failing_open)
    monkeypatch.setattr(os, "mkdir", failing_mkdir)


def test_disk_full_mid_training_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, capsys, digits
):
    run = tmp_path / "run"
    _fail_writes_under(monkeypatch, run, errno.ENOSPC, after=3)  # lock, config, checkpoint 4
    line = refused(_train_args("ae", run), "no space left on the device", capsys, tmp_path / "x")
    assert "checkpoints/last.safetensors" in line
    monkeypatch.undo()
    assert checkpoint_step(run / "checkpoints" / "last.safetensors") == 4
    assert not list(run.rglob("*.tmp"))
    succeeds(["resume", str(run), "--no-progress"], capsys)  # space freed: the way forward
    _same_weights(run, genlab.fit("ae", digits, **SMALL))


def test_a_read_only_run_is_evaluated_and_sampled_without_writing(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    succeeds(["train", "pca", "--out", str(run)], capsys)
    before = snapshot(run)
    _fail_writes_under(monkeypatch, run, errno.EROFS)
    succeeds(["evaluate", str(run)], capsys)
    _, err = succeeds(["evaluate", str(run), "--metrics", "birthday"], capsys)
    assert "is not writable" in err
    succeeds(["sample", str(run), "-n", "3", "--out", str(tmp_path / "s.npy")], capsys)
    refused(["resume", str(run)], "read-only file system", capsys, run)
    assert snapshot(run) == before
    with pytest.raises(StorageError, match="read-only file system"):
        genlab.fit("pca", "digits", out=run / "inner")
