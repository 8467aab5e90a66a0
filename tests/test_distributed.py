"""Data-parallel training with torchrun: 2 processes on CPU (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genlab
from tests.distributed_worker import FAMILY_CASES, SETTINGS
from tests.processes import checkpoint_step, kill_after_step

WORKER = Path(__file__).with_name("distributed_worker.py")


def torchrun(*args: str, nproc: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", *args,
    ]  # fmt: skip


def failure(result: subprocess.CompletedProcess, run: Path | None = None) -> str:
    """What a failed torchrun said: the start and the end of its stderr (a worker's own last
    words come before the launcher's traceback), and how far ``run``'s checkpoint got."""
    stderr = result.stderr
    text = stderr if len(stderr) <= 6000 else f"{stderr[:3000]}\n[...]\n{stderr[-3000:]}"
    if run is not None:
        step = checkpoint_step(run / "checkpoints" / "last.safetensors")
        text += f"\nlast checkpoint: step {step}; weights written: {(run / 'model.safetensors').exists()}"
    return text


def test_two_processes_match_each_other_and_a_single_process(tmp_path, digits):
    result = subprocess.run(torchrun(str(WORKER), str(tmp_path)), capture_output=True, text=True)
    assert result.returncode == 0, failure(result)
    rank0 = load_file(tmp_path / "rank0.safetensors")
    rank1 = load_file(tmp_path / "rank1.safetensors")
    single = genlab.fit("ae", digits, device="cpu", **SETTINGS).state_dict()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks disagree on {key}"
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-4, atol=1e-5)
    # rank 0 alone wrote the run directory, once
    records = genlab.runs.read_metrics(tmp_path / "run")
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == SETTINGS["steps"]


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory):
    """Every case of FAMILY_CASES trained by one 2-process torchrun (one start-up for all)."""
    out = tmp_path_factory.mktemp("families")
    result = subprocess.run(
        torchrun(str(WORKER), str(out), *FAMILY_CASES), capture_output=True, text=True
    )
    assert result.returncode == 0, failure(result)
    return out


@pytest.mark.parametrize("case", list(FAMILY_CASES))
def test_every_family_keeps_the_ranks_in_sync(family_runs, case):
    """Two models and optimizers (GAN, BiGAN), lazy R1, EMA, clipping, spectral norm: the ranks'
    parameters and buffers stay bit-identical, and rank 0 alone writes the run directory."""
    out = family_runs / case
    rank0 = load_file(out / "rank0.safetensors")
    rank1 = load_file(out / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"{case}: ranks disagree on {key}"
    saved = genlab.load(out / "run").state_dict()
    for key in rank0:
        assert torch.equal(saved[key], rank0[key]), key
    steps = [r["step"] for r in genlab.runs.read_metrics(out / "run") if r["split"] == "train"]
    assert steps == list(range(1, FAMILY_CASES[case][1]["steps"] + 1))  # each step logged once
    assert sorted(p.name for p in out.iterdir()) == [
        "rank0.safetensors",
        "rank1.safetensors",
        "run",
    ]


def _train(run: Path) -> list[str]:
    return torchrun(
        "-m", "genlab", "train", "ae", "--data", "digits", "--out", str(run), "--steps", "300",
        "--device", "cpu", "--no-progress", "--set", "latent_dim=4", "--set", "hidden=32",
        "--set", "batch_size=64", "--set", "checkpoint_every=25",
    )  # fmt: skip


def test_killed_distributed_run_resumes_to_the_same_parameters(tmp_path):
    reference = tmp_path / "reference"
    result = subprocess.run(_train(reference), capture_output=True, text=True)
    assert result.returncode == 0, failure(result, reference)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _train(killed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    kill_after_step(process, killed / "checkpoints" / "last.safetensors", 100, group=True)
    assert not (killed / "model.safetensors").exists(), "the run finished before it was killed"

    resumed = subprocess.run(
        torchrun("-m", "genlab", "resume", str(killed), "--device", "cpu", "--no-progress"),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, failure(resumed, killed)
    ours = load_file(killed / "model.safetensors")
    theirs = load_file(reference / "model.safetensors")
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def test_a_torchrun_worker_leaves_with_its_code_and_all_of_its_output():
    """Under torchrun (WORLD_SIZE > 1) the command ends by os._exit after flushing: the same
    output (to pipes, where it is block-buffered) and the same exit codes as a plain process."""
    worker = {**os.environ, "WORLD_SIZE": "2"}
    for args, code in ((["families"], 0), (["train", "nosuch", "--data", "digits"], 2)):
        command = [sys.executable, "-m", "genlab", *args]
        plain = subprocess.run(command, capture_output=True, text=True)
        ended = subprocess.run(command, capture_output=True, text=True, env=worker)
        assert plain.returncode == ended.returncode == code
        assert (ended.stdout, ended.stderr) == (plain.stdout, plain.stderr)
        assert ended.stdout or ended.stderr
