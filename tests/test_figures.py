"""Figures: genlab draws on its own Agg canvases and never touches the user's matplotlib set-up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Imports genlab and every module that draws, draws each kind of figure, and prints the backend
# and pyplot's open figures afterwards.
DRAW_EVERYTHING = """
import sys, tempfile
from pathlib import Path
import matplotlib
if sys.argv[1] == "use":
    matplotlib.use("svg")
import matplotlib.pyplot as plt
import torch
import genlab, genlab.cli, genlab.compare, genlab.experiments
from genlab.data import DataInfo
from genlab.report import curves, family, figures, images, pairs
out = Path(tempfile.mkdtemp())
fig, axes = figures.new_figure(2)
axes[0].plot([0, 1], [1, 0])
assert figures.figure_png(fig).startswith(b"\\x89PNG")
x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
images.save_scatter(x, out / "scatter.png", reference=x)
pairs.save_pairs(x[:5], x[5:10], out / "pairs.png", DataInfo("t", (2,), "vector"))
records = [{"step": s, "split": "train", "loss": 1.0 / s} for s in range(1, 30)]
curves.save_training_curves(records, out / "curves.png", title="t")
assert all((out / name).stat().st_size > 0 for name in ("scatter.png", "pairs.png", "curves.png"))
print(matplotlib.get_backend(), plt.get_fignums())
"""


@pytest.mark.parametrize("how", ["use", "MPLBACKEND"])
def test_genlab_keeps_the_users_matplotlib_backend(how):
    env = {**os.environ, "MPLBACKEND": "svg"} if how == "MPLBACKEND" else os.environ.copy()
    if how == "use":
        env.pop("MPLBACKEND", None)
    result = subprocess.run(
        [sys.executable, "-c", DRAW_EVERYTHING, how], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["svg", "[]"]  # unchanged, and no pyplot figure left open
