"""The thread count of a run: the rule, its FLOP count, the precedence of the sources, the record."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import torch

import genlab
from genlab.api import build_model
from genlab.errors import ConfigError
from genlab.models import FAMILIES
from genlab.settings import resolve_settings
from genlab.train import threads as threads_module
from genlab.train.threads import (
    FLOPS_PER_THREAD,
    choose_threads,
    step_flops,
    threads_for_flops,
)


@pytest.fixture(scope="module")
def digits():
    return genlab.data.load("digits")


def _autoencoder(digits, batch_size: int = 64):
    resolved = resolve_settings("ae", {"batch_size": batch_size}, None)
    return build_model("ae", resolved.model, digits.info, 0), resolved.train


@pytest.mark.parametrize(
    ("flops", "available", "expected"),
    [
        (0.0, 4, 1),
        (FLOPS_PER_THREAD * 0.99, 4, 1),
        (FLOPS_PER_THREAD * 2, 4, 2),
        (FLOPS_PER_THREAD * 3.5, 4, 3),
        (FLOPS_PER_THREAD * 100, 4, 4),
        (FLOPS_PER_THREAD * 100, 1, 1),
    ],
)
def test_rule_gives_one_thread_per_step_size_up_to_the_cores(flops, available, expected):
    assert threads_for_flops(flops, available) == expected


@pytest.mark.parametrize("batch_size", [32, 64])
def test_step_flops_are_those_of_the_matrix_products_of_one_step(digits, batch_size):
    """An MLP autoencoder's step: each linear layer costs 2 B n_in n_out in the forward pass,
    as much for its weight gradient, and as much for its input gradient, except the first
    layer, whose input (the data) needs none."""
    model, train = _autoencoder(digits, batch_size)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    products = sum(m.in_features * m.out_features for m in linears)
    first = linears[0].in_features * linears[0].out_features
    expected = 2 * batch_size * (3 * products - first)
    assert step_flops(model, digits, train) == expected


def test_flops_of_a_step_that_differentiates_in_its_input_are_counted(tmp_path, monkeypatch):
    """WGAN-GP's penalty differentiates the critic at interpolated points (leaves requiring
    gradients): torch's per-module flop tracking failed on it, so a user's plain
    ``genlab train gan --set loss=wasserstein-gp`` crashed before training. The penalty's
    double backward costs more than the plain critic's step."""
    ring = genlab.data.load("ring")
    flops = {}
    for loss in ("wasserstein", "wasserstein-gp"):
        resolved = resolve_settings("gan", {"loss": loss, "batch_size": 64}, None)
        model = build_model("gan", resolved.model, ring.info, 0)
        flops[loss] = step_flops(model, ring, resolved.train)
    assert flops["wasserstein-gp"] > flops["wasserstein"] > 0
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    genlab.fit("gan", ring, out=tmp_path / "run", loss="wasserstein-gp", steps=2, batch_size=64)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["threads"]
    assert recorded["source"] == "rule" and recorded["step_flops"] == flops["wasserstein-gp"]


KINDS = {"image": "digits", "vector": "ring", "text": "first-names"}


@pytest.mark.parametrize(
    ("family", "dataset"),
    [
        (family, KINDS[kind])
        for family, cls in sorted(FAMILIES.items())
        for kind in cls.data_kinds
        if kind in KINDS
    ],
)
def test_one_step_of_every_family_can_be_counted(family, dataset):
    """The suite runs with ``OMP_NUM_THREADS`` set, so no fit in it reaches the rule: a
    user's plain command does, and counts one step of each family (closed forms excepted)."""
    data = genlab.data.load(dataset)
    resolved = resolve_settings(family, {}, "smoke", data.info)
    model = build_model(family, resolved.model, data.info, 0)
    if model.fit_method != "closed_form":
        assert step_flops(model, data, resolved.train) > 0


def test_counting_the_flops_changes_neither_the_model_nor_the_random_streams(digits):
    model, train = _autoencoder(digits)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    step_flops(model, digits, train)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_sources_in_order_argument_environment_recorded_rule(digits, monkeypatch):
    model, train = _autoencoder(digits)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    given = choose_threads(model, digits, train, 3, recorded=2)
    assert (given.count, given.source) == (3, "argument")
    assert choose_threads(model, digits, train).source == "OMP_NUM_THREADS"
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert choose_threads(model, digits, train, recorded=2).to_json() == {
        "count": 2,
        "source": "run",
        "step_flops": None,
    }
    monkeypatch.setattr(threads_module, "spare_cores", lambda: 8)
    choice = choose_threads(model, digits, train)
    assert choice.source == "rule"
    assert choice.count == threads_for_flops(step_flops(model, digits, train), 8)
    assert "GFLOP" in choice.reason and "at most the 8 spare cores" in choice.reason


def test_torchrun_workers_of_one_machine_share_its_spare_cores(digits, monkeypatch):
    model, train = _autoencoder(digits)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module, "spare_cores", lambda: 8)
    monkeypatch.setattr(threads_module, "threads_for_flops", lambda flops, available: available)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    choice = choose_threads(model, digits, train)
    assert choice.count == 4 and "at most the 4 spare cores" in choice.reason
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert choose_threads(model, digits, train).count == 1
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert choose_threads(model, digits, train).count == 8


@pytest.fixture
def four_cores(monkeypatch):
    """4 cores and no busy-core measurement kept from an earlier call."""
    monkeypatch.setattr(threads_module, "cores", lambda: 4)
    monkeypatch.setattr(threads_module, "_busy_measured", None)


@pytest.mark.parametrize(("busy", "expected"), [(0.0, 4), (0.4, 4), (1.6, 2), (3.0, 1), (9.5, 1)])
def test_spare_cores_leave_out_the_busy_ones(busy, expected, four_cores, monkeypatch):
    monkeypatch.setattr(threads_module, "busy_cores", lambda: busy)
    assert threads_module.spare_cores() == expected


def test_without_proc_stat_the_load_average_counts_the_busy_cores(four_cores, monkeypatch):
    monkeypatch.setattr(threads_module, "busy_cores", lambda: None)
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (1.6, 1.0, 1.0))
    assert threads_module.spare_cores() == 2


def test_busy_cores_are_measured_once_for_a_while(four_cores, monkeypatch):
    calls = []
    monkeypatch.setattr(threads_module, "busy_cores", lambda: calls.append(1) or 1.0)
    assert threads_module.spare_cores() == threads_module.spare_cores() == 3
    assert len(calls) == 1
    measured_at, busy = threads_module._busy_measured
    monkeypatch.setattr(
        threads_module, "_busy_measured", (measured_at - threads_module.BUSY_REUSE_S - 1, busy)
    )
    threads_module.spare_cores()
    assert len(calls) == 2
    threads_module.spare_cores()
    assert len(calls) == 2
    threads_module.forget_busy_cores()  # as a benchmark does before timing a run's choice
    threads_module.spare_cores()
    assert len(calls) == 3


SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass"


def test_another_process_spinning_is_one_busy_core():
    before = threads_module.busy_cores(0.3)
    spinner = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=2)])
    try:
        time.sleep(0.3)  # started
        during = threads_module.busy_cores(0.5)
    finally:
        spinner.wait()
    assert before is not None and during is not None
    assert 0.5 < during - before < 1.5, (before, during)


def test_this_process_own_work_is_not_busy_cores():
    """A thread of this process multiplying matrices (the GIL released) is not other work."""
    stop = threading.Event()

    def multiply():
        a = torch.randn(400, 400)
        while not stop.is_set():
            a @ a

    before = threads_module.busy_cores(0.3)
    worker = threading.Thread(target=multiply)
    with threads_module.using_threads(1):
        worker.start()
        try:
            during = threads_module.busy_cores(0.5)
        finally:
            stop.set()
            worker.join()
    assert abs(during - before) < 0.5, (before, during)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2", True, 10**6])
def test_bad_thread_counts_are_refused_before_training(bad, tmp_path):
    with pytest.raises(ConfigError, match="threads must be an integer"):
        genlab.fit("ae", "digits", out=tmp_path / "run", steps=1, threads=bad)
    assert not (tmp_path / "run").exists()


def test_run_records_the_choice_and_restores_the_thread_count(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module, "spare_cores", lambda: 2)
    before = torch.get_num_threads()
    genlab.fit("ae", "digits", out=tmp_path / "rule", steps=2)
    recorded = json.loads((tmp_path / "rule" / "config.json").read_text())["threads"]
    assert recorded["source"] == "rule" and recorded["step_flops"] > 0
    assert recorded["count"] == threads_for_flops(recorded["step_flops"], 2)
    assert torch.get_num_threads() == before
    genlab.fit("ae", "digits", out=tmp_path / "given", steps=2, threads=2)
    recorded = json.loads((tmp_path / "given" / "config.json").read_text())["threads"]
    assert recorded == {"count": 2, "source": "argument", "step_flops": None}


def test_cli_threads_flag_reaches_the_run(tmp_path, capsys):
    from genlab.cli import main

    run = tmp_path / "run"
    args = ["train", "ae", "--out", str(run), "--steps", "2", "--threads", "1", "--no-progress"]
    assert main(args) == 0
    assert json.loads((run / "config.json").read_text())["threads"]["source"] == "argument"
    with pytest.raises(SystemExit):
        main(["train", "ae", "--out", str(tmp_path / "bad"), "--threads", "0"])
    assert "expected a positive integer" in capsys.readouterr().err
