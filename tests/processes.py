"""Kill a training process once its checkpoint has reached a step (for the kill -9 tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
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
