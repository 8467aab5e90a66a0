"""Stop genlab processes at points of a run's life, for the kill -9, lock and resume tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from genlab.io import read_safetensors


def checkpoint_step(path: Path) -> int:
    """The step of the checkpoint at ``path``; -1 while there is none yet."""
    if not path.exists():
        return -1
    return int(json.loads(read_safetensors(path)[1]["trainer"])["step"])


def kill_after_step(
    process: subprocess.Popen, checkpoint: Path, step: int, *, group: bool = False
) -> int:
    """SIGKILL ``process`` (its process group with ``group``) once ``checkpoint`` is at ``step``
    or later; returns the step seen. Fails if the process ends first or 120 s pass.

    Checkpoints are replaced atomically, so polling may skip some of them: the test is "at
    least ``step``", never an exact step.
    """
    deadline = time.time() + 120
    while (seen := checkpoint_step(checkpoint)) < step:
        assert process.poll() is None, f"the run ended (code {process.returncode}) at step {seen}"
        assert time.time() < deadline, f"no checkpoint at step >= {step} within 120 s"
        time.sleep(0.02)
    if group:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.kill()
    process.wait()
    return seen


# A genlab command line that stops itself at a chosen point of a run's life: killed with SIGKILL
# (no clean-up of any kind, as a power cut or the OOM killer would), or paused holding its locks.
#   python -c STOP_AT step N ARGS...     after step N (and its checkpoint, if one was due)
#   python -c STOP_AT final - ARGS...    the finished checkpoint is written, the weights are not
#   python -c STOP_AT pictures - ARGS... the weights and summary are written, the pictures are not
#   python -c STOP_AT family NAME ARGS.. when training of family NAME starts (in compare)
#   python -c STOP_AT pause N ARGS...    sleeps after step N, holding the run's lock
STOP_AT = r"""
import os, signal, sys, time
import genlab.api as api
import genlab.train.loop as loop
from genlab.cli import main

where, value, args = sys.argv[1], sys.argv[2], sys.argv[3:]
def stop():
    if where == "pause":
        print("paused", flush=True)
        time.sleep(600)
    os.kill(os.getpid(), signal.SIGKILL)

if where in ("step", "pause"):
    after_step = loop._Loop.after_step
    def patched(self, metrics, *, epoch_done):
        after_step(self, metrics, epoch_done=epoch_done)
        if self.state.step == int(value):
            stop()
    loop._Loop.after_step = patched
elif where == "final":
    loop.save_model = lambda *a, **k: stop()
elif where == "pictures":
    api._save_pictures = lambda *a, **k: stop()
elif where == "family":
    train_fit = api.train_fit
    def patched_fit(model, *a, **k):
        if model.family == value:
            stop()
        return train_fit(model, *a, **k)
    api.train_fit = patched_fit
sys.exit(main(args))
"""


def killed_at(where: str, value: object, args: list[str]) -> subprocess.CompletedProcess:
    """Run ``genlab ARGS`` in a new process that SIGKILLs itself at ``where`` (see
    :data:`STOP_AT`); asserts that it was killed there."""
    result = subprocess.run(
        [sys.executable, "-c", STOP_AT, where, str(value), *args], capture_output=True, text=True
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    return result


def paused_at(step: int, args: list[str]) -> subprocess.Popen:
    """Start ``genlab ARGS`` in a new process that pauses after ``step``, holding its locks;
    returns once it is paused (the caller kills it)."""
    process = subprocess.Popen(
        [sys.executable, "-c", STOP_AT, "pause", str(step), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()  # type: ignore[union-attr]
    if line.strip() != "paused":
        process.kill()
        raise AssertionError(f"the process did not pause: {process.communicate()[1][-2000:]}")
    return process


def stop(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` and collect it (closing its pipes)."""
    process.kill()
    process.communicate()
