"""``genlab score`` with the full card: 10,000 28x28 samples against 10,000 real images.

Issue 22's target: scoring 10,000 28x28 samples against 10,000 real images with the full card
(every metric of ``genlab evaluate --metrics all``) in under 2 minutes on the 2-core CPU, with
peak memory under 2 GiB. genlab downloads no data, so the 28x28 images are a stand-in built
from scikit-learn's digits: each 8x8 digit is enlarged to 24x24 (bicubic), placed at a random
offset in a 28x28 frame, given Gaussian noise (std 8) and stored as 8-bit, with its label.
The dataset has 10,000 training and 10,000 test images; the "samples" are 10,000 more drawn
the same way with another seed (a model that matches the data, so no metric is degenerate).

Each run is ``genlab score SAMPLES.npy --data DATA.npz`` in a fresh process (with the
suite's thread count: one under ``make bench``) that reports its wall and CPU time, its peak
resident set (``ru_maxrss``) and the seconds of each stage of the card (the stages
``genlab -v score`` logs): ``cold`` trains and caches the domain network first (an empty
cache), ``warm`` finds it cached, as every later score against the same data does. On a busy
machine the CPU seconds are the steadier measure. ``--quick`` uses 2,000 images per set.

Run: ``python -m benchmarks --only score``.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from benchmarks.report import ratio
from genlab.data.digits import read_digits

NAME = "score"
TITLE = "genlab score, full card: N 28x28 samples against N real test images"
LIMIT_SECONDS = 120.0
LIMIT_BYTES = 2 * 2**30


def digits_28(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` stand-in 28x28 uint8 digit images ``(n, 28, 28)`` and their labels."""
    images, labels = read_digits()
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(images), (n,), generator=g)
    x = torch.from_numpy(images).float()[pick] * (255 / 16)  # (n, 1, 8, 8)
    x = F.interpolate(x, size=(24, 24), mode="bicubic", align_corners=False)
    offsets = torch.randint(0, 5, (n, 2), generator=g)
    frame = torch.zeros(n, 1, 28, 28)
    for dy in range(5):
        for dx in range(5):
            rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero()[:, 0]
            frame[rows, :, dy : dy + 24, dx : dx + 24] = x[rows]
    frame += 8 * torch.randn(frame.shape, generator=g)
    out = frame.clamp(0, 255).round().to(torch.uint8)[:, 0].numpy()
    return out, labels[pick.numpy()]


def write_inputs(folder: Path, n: int) -> tuple[Path, Path]:
    x_train, y_train = digits_28(n, seed=1)
    x_test, y_test = digits_28(n, seed=2)
    samples, _ = digits_28(n, seed=3)
    data = folder / "digits28.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    np.save(folder / "samples.npy", samples)
    return folder / "samples.npy", data


class StageLog(logging.Handler):
    """Collects the ``(stage, wall, CPU)`` seconds that the card logs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.stages: list[tuple[str, float, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("score stage"):
            self.stages.append(record.args)  # type: ignore[arg-type]


def measure(samples: str, data: str, cache: str) -> dict[str, Any]:
    """Run ``genlab score`` in this process; its time, peak memory, stages and the card."""
    import contextlib
    import io

    from genlab.cli import main

    log = StageLog()
    logger = logging.getLogger("genlab.metrics.sample_quality")
    logger.addHandler(log)
    logger.setLevel(logging.INFO)
    out = io.StringIO()
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(out):
        code = main(["score", samples, "--data", data, "--cache", cache, "--json"])
    if code != 0:
        raise RuntimeError(f"genlab score exited with {code}")
    card = json.loads(out.getvalue().strip().splitlines()[-1])["samples"][samples]
    return {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "stages": log.stages,
        "card": card,
    }


def measure_in_subprocess(samples: Path, data: Path, cache: Path) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter (a clean ``ru_maxrss``)."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_score", str(samples), str(data), str(cache)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"genlab score failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict[str, Any]:
    n = 2_000 if quick else 10_000
    rows, stage_notes = [], []
    with tempfile.TemporaryDirectory() as folder:
        samples, data = write_inputs(Path(folder), n)
        cache = Path(folder) / "cache"
        for state in ("cold", "warm"):
            row = measure_in_subprocess(samples, data, cache)
            card = row.pop("card")
            stages = ", ".join(f"{name} {w:.0f}/{c:.0f}" for name, w, c in row.pop("stages"))
            stage_notes.append(f"{state}, wall/CPU seconds by stage: {stages}")
            row.update(
                run=state,
                n=n,
                peak_mib=row["peak_bytes"] / 2**20,
                fid=card["fid"],
                precision=card["precision"],
                cas_real=card["cas_real"],
                fresh_disc=card["fresh_disc_accuracy"],
                metrics=sum(1 for v in card.values() if isinstance(v, float)),
            )
            rows.append(row)
    cold = rows[0]
    return {
        "n": n,
        "threads": torch.get_num_threads(),
        "columns": [
            ["run", "run"],
            ["n", "samples = real"],
            ["seconds", "wall s"],
            ["cpu_seconds", "CPU s"],
            ["peak_mib", "peak MiB"],
            ["metrics", "numbers"],
            ["fid", "domain FID"],
            ["precision", "precision"],
            ["cas_real", "domain net acc."],
            ["fresh_disc", "fresh disc. acc."],
        ],
        "rows": rows,
        "notes": [
            f"{n:,} stand-in 28x28 digits per set (train, test and samples); every metric of "
            "the card; cold = the domain network trained and cached first, warm = cached; "
            "limits 120 s and 2 GiB",
            *stage_notes,
        ],
        "ratios": [
            ratio(
                "score: cold full card wall seconds / 120 s",
                cold["seconds"] / LIMIT_SECONDS,
                1.0,
                at_most=True,
            ),
            ratio(
                "score: cold full card CPU seconds / 120 s",
                cold["cpu_seconds"] / LIMIT_SECONDS,
                1.0,
                at_most=True,
            ),
            ratio(
                "score: peak memory / 2 GiB",
                max(r["peak_bytes"] for r in rows) / LIMIT_BYTES,
                1.0,
                at_most=True,
            ),
        ],
    }


if __name__ == "__main__":
    print(json.dumps(measure(*sys.argv[1:4]), default=float))
