"""Run directories: everything one training run leaves on disk.

::

    RUN/
      config.json          family, model and train settings, data spec and info, seed, versions
      metrics.jsonl        one JSON object per logged step / validation
      checkpoints/last.safetensors   the latest resumable state (atomic writes)
      model.safetensors    the final (best-on-validation) weights, what genlab.load reads
      samples.png          a grid (images) or scatter (2-D data) of samples, when it can sample
      summary.json         how training ended: steps, best step, seconds, early stop
      curves.png           the training curves: every quantity in metrics.jsonl against the step
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from genlab.errors import CheckpointError
from genlab.io import write_json
from genlab.version import __version__ as genlab_version

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoints/last.safetensors"
SAMPLES_FILE = "samples.png"
SUMMARY_FILE = "summary.json"
CURVES_FILE = "curves.png"


def versions() -> dict[str, str]:
    import numpy
    import torch

    return {
        "genlab": genlab_version,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


@dataclass(frozen=True)
class RunConfig:
    """What ``config.json`` holds; enough to rebuild the model and its data."""

    family: str
    model: dict[str, Any]
    train: dict[str, Any]
    data: dict[str, Any]  # {"spec": ..., "seed": ..., "info": DataInfo.to_json()}
    seed: int
    versions: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "model": self.model,
            "train": self.train,
            "data": self.data,
            "seed": self.seed,
            "versions": self.versions,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> RunConfig:
        try:
            return cls(
                family=data["family"],
                model=data["model"],
                train=data["train"],
                data=data["data"],
                seed=int(data["seed"]),
                versions=data.get("versions", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{source}: not a genlab run configuration (missing {exc})"
            ) from None


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines after the checkpoint's step are dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                break  # a line cut by a crash: it and anything after it go
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a")  # noqa: SIM115 - kept open across steps
        self._handle.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a run's ``metrics.jsonl`` (a partial last line is ignored)."""
    file = Path(path) / METRICS_FILE if Path(path).is_dir() else Path(path)
    records = []
    if file.exists():
        for line in file.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


class RunDirectory:
    """Paths and files of one run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.metrics = MetricsLog(self.path / METRICS_FILE)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def samples_path(self) -> Path:
        return self.path / SAMPLES_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def curves_path(self) -> Path:
        return self.path / CURVES_FILE

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary)

    def read_summary(self) -> dict[str, Any]:
        """What :meth:`write_summary` wrote at the end of training (empty if unfinished)."""
        if not self.summary_path.exists():
            return {}
        try:
            return json.loads(self.summary_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{self.summary_path}: corrupt JSON ({exc})") from None

    @classmethod
    def create(
        cls, path: str | Path, config: RunConfig, *, overwrite: bool = False
    ) -> RunDirectory:
        """Make a new run directory; refuses to reuse one that holds a run unless ``overwrite``."""
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise CheckpointError(f"{run.path}: exists and is not a directory")
        if run.config_path.exists() and not overwrite:
            raise CheckpointError(
                f"{run.path}: already holds a run; use `genlab resume {run.path}` to continue it, "
                "or choose another --out (or pass overwrite)"
            )
        if overwrite:
            stale_files = (
                run.metrics.path,
                run.checkpoint_path,
                run.model_path,
                run.samples_path,
                run.summary_path,
                run.curves_path,
            )
            for stale in stale_files:
                stale.unlink(missing_ok=True)
        run.path.mkdir(parents=True, exist_ok=True)
        write_json(run.config_path, config.to_json())
        return run

    def read_config(self) -> RunConfig:
        if not self.path.is_dir():
            raise CheckpointError(f"{self.path}: no such run directory")
        if not self.config_path.exists():
            raise CheckpointError(f"{self.path}: not a genlab run (no {CONFIG_FILE})")
        try:
            data = json.loads(self.config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{self.config_path}: corrupt JSON ({exc})") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{self.config_path}: not a genlab run configuration")
        return RunConfig.from_json(data, str(self.config_path))
