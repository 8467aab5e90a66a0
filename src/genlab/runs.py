"""Run directories: everything one training run leaves on disk, and the one process writing it.

::

    RUN/
      config.json          "format": "genlab-run"; family, model and train settings, data spec,
                           fingerprint and info, seed, versions
      .lock                the writer's lock (an advisory flock, released when its process ends)
      metrics.jsonl        one JSON object per logged step / validation
      checkpoints/last.safetensors   the latest resumable state (atomic writes)
      model.safetensors    the final (best-on-validation) weights, what genlab.load reads
      summary.json         how training ended: steps, best step, seconds, early stop
      samples.png          a grid (images) or scatter (2-D data) of samples, when it can sample
      curves.png           the training curves: every quantity in metrics.jsonl against the step

Rules that keep a run directory consistent:

- **One writer.** ``train``, ``resume`` and ``compare`` hold an exclusive ``flock`` on
  ``RUN/.lock`` for as long as they write; a second writer is refused with the process that
  holds it. The kernel drops the lock when the process dies, so a killed run leaves no stale
  lock. Readers never lock; they read files that are replaced atomically.
- **Only runs.** A run is created where nothing is, in an empty folder, or (with
  ``overwrite``) over a genlab run, recognised by the ``format`` marker in its ``config.json``;
  any other folder is refused untouched.
- **Complete means** ``model.safetensors`` and ``summary.json`` exist; anything less is
  finished by ``genlab resume RUN`` (from the checkpoint, or from the start when there is none).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from genlab.errors import CheckpointError, ConfigError, RunLocked, StorageError
from genlab.io import (
    atomic_write_bytes,
    make_folder,
    open_regular,
    read_regular,
    storage_error,
    write_json,
)
from genlab.version import __version__ as genlab_version

logger = logging.getLogger(__name__)

RUN_FORMAT = "genlab-run"
CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoints/last.safetensors"
SAMPLES_FILE = "samples.png"
SUMMARY_FILE = "summary.json"
CURVES_FILE = "curves.png"
# The files a run writes: what --overwrite removes (anything else in the folder stays).
RUN_FILES = (METRICS_FILE, CHECKPOINT_FILE, MODEL_FILE, SUMMARY_FILE, SAMPLES_FILE, CURVES_FILE)
MAX_JSON_BYTES = 64 * 2**20  # a config or summary is kilobytes; anything this big is not one
MAX_SEED = 2**32 - 1
# How long a writer retries a lock that a reader may hold for an instant.
LOCK_RETRIES, LOCK_RETRY_SECONDS = 5, 0.05


def versions() -> dict[str, str]:
    """The versions of genlab, torch, numpy and Python, as a run records them."""
    import numpy
    import torch

    return {
        "genlab": genlab_version,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` if it is an integer in [0, 2**32 - 1], else a :class:`ConfigError`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    return seed


@dataclass(frozen=True)
class RunConfig:
    """What ``config.json`` holds; enough to rebuild the model and find its data.

    ``data`` is ``{"spec", "seed", "info", "fingerprint"}``: the dataset's name or absolute
    path, its split seed, its :class:`~genlab.data.DataInfo` as JSON, and the fingerprint of
    its tensors (:meth:`genlab.data.Dataset.fingerprint`); after a resume on changed data,
    ``"changes"`` lists each change. ``threads`` is ``{"count", "source", "step_flops"}``:
    the CPU threads training used and why (:mod:`genlab.train.threads`); ``None`` in runs of
    older genlab versions. ``decided``: what the model settings left to the data became
    (:attr:`~genlab.models.base.GenerativeModel.decisions`, e.g. a flow's ``levels``);
    ``None`` in runs of older genlab versions.
    """

    family: str
    model: dict[str, Any]
    train: dict[str, Any]
    data: dict[str, Any]
    seed: int
    versions: dict[str, str] = field(default_factory=dict)
    threads: dict[str, Any] | None = None
    decided: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """What ``config.json`` holds, the ``format`` marker first."""
        return {
            "format": RUN_FORMAT,
            "family": self.family,
            "model": self.model,
            "train": self.train,
            "data": self.data,
            "seed": self.seed,
            "versions": self.versions,
            "threads": self.threads,
            "decided": self.decided,
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> RunConfig:
        """Check every key and type of a ``config.json``; the error names the file and field."""

        def fail(problem: str) -> CheckpointError:
            return CheckpointError(f"{source}: {problem}")

        if not isinstance(data, dict):
            raise fail(f"not a genlab run configuration (a JSON {type(data).__name__})")
        if data.get("format") != RUN_FORMAT:
            raise fail(
                f'no "format": "{RUN_FORMAT}" marker: not a genlab run, or one written by an '
                "older genlab (train it again)"
            )
        _check_keys(data, {"format", "family", "model", "train", "data", "seed", "versions"},
                    fail, "", optional={"threads", "decided"})  # fmt: skip
        for key, kind in (("family", str), ("model", dict), ("train", dict), ("data", dict)):
            _check_type(data[key], kind, key, fail)
        run_data = data["data"]
        _check_keys(run_data, {"spec", "seed", "info", "fingerprint"}, fail, "data.",
                    optional={"changes"})  # fmt: skip
        for key, kind in (("spec", str), ("info", dict), ("fingerprint", str)):
            _check_type(run_data[key], kind, f"data.{key}", fail)
        for key, value in (("seed", data["seed"]), ("data.seed", run_data["seed"])):
            try:
                check_seed(value, key)
            except ConfigError as exc:
                raise fail(str(exc)) from None
        if not isinstance(run_data.get("changes", []), list):
            raise fail("field 'data.changes' must be a list")
        if not isinstance(data["versions"], dict):
            raise fail("field 'versions' must be an object")
        threads = data.get("threads")
        if threads is not None and not (
            isinstance(threads, dict)
            and isinstance(threads.get("count"), int)
            and not isinstance(threads["count"], bool)
            and threads["count"] >= 1
        ):
            raise fail("field 'threads' must be null or an object with a positive 'count'")
        if not isinstance(data.get("decided", {}), dict | None):
            raise fail("field 'decided' must be null or an object")
        return cls(
            family=data["family"],
            model=data["model"],
            train=data["train"],
            data=run_data,
            seed=data["seed"],
            versions=data["versions"],
            threads=threads,
            decided=data.get("decided"),
        )


Fail = Callable[[str], CheckpointError]


def _check_keys(
    data: dict[str, Any],
    required: set[str],
    fail: Fail,
    prefix: str,
    optional: frozenset[str] | set[str] = frozenset(),
) -> None:
    missing = sorted(required - set(data))
    unknown = sorted(set(data) - required - set(optional))
    if missing:
        raise fail(f"missing field {', '.join(repr(prefix + k) for k in missing)}")
    if unknown:
        raise fail(f"unknown field {', '.join(repr(prefix + k) for k in unknown)}")


def _check_type(value: Any, kind: type, name: str, fail: Fail) -> None:
    if not isinstance(value, kind):
        expected = {str: "a string", dict: "an object"}[kind]
        raise fail(f"field {name!r} must be {expected}, got {json.dumps(value)[:40]}")


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines after the checkpoint's step are dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def truncate_after(self, step: int) -> None:
        """Keep the readable records of steps up to ``step`` (atomically); drop the rest.

        A line cut by a crash (or otherwise unreadable) is dropped on its own: the valid lines
        after it stay.
        """
        if not self.path.exists():
            return
        records, dropped = _parse_metrics(self.path)
        kept = [json.dumps(r) + "\n" for r in records if r["step"] <= step]
        if dropped:
            logger.warning("%s: dropped %d unreadable line(s)", self.path, dropped)
        atomic_write_bytes(self.path, "".join(kept).encode())

    def clear(self) -> None:
        """Remove every record (a run that starts again from step 0)."""
        self.close()
        self.path.unlink(missing_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if self._handle is None:
            try:
                self._handle = open(self.path, "a")  # noqa: SIM115 - kept open across steps
            except OSError as exc:
                raise storage_error(exc, "write", self.path) from None
        self._handle.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _parse_metrics(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(records with an integer step, number of unreadable lines) of a ``metrics.jsonl``."""
    records, dropped = [], 0
    for line in read_regular(path).decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        step = record.get("step") if isinstance(record, dict) else None
        if isinstance(step, int) and not isinstance(step, bool):
            records.append(record)
        else:
            dropped += 1
    return records, dropped


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All readable records of a run's ``metrics.jsonl`` (a line cut by a crash is skipped)."""
    file = Path(path) / METRICS_FILE if Path(path).is_dir() else Path(path)
    if not file.exists():
        return []
    return _parse_metrics(file)[0]


class RunLock:
    """The exclusive advisory lock (``flock``) of the one process writing a folder.

    The lock file holds the holder's process id and command line, so that a refused writer can
    say who holds it. The kernel releases the lock when the process ends, however it ends.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunLocked` naming the process that holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise storage_error(exc, "lock", self.folder) from None
        for attempt in range(LOCK_RETRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == LOCK_RETRIES - 1:  # a reader holds it for an instant, not this long
                    holder = _describe_holder(fd)
                    os.close(fd)
                    raise RunLocked(
                        f"{self.folder}: is being written by {holder}; one process writes a run "
                        "directory at a time: wait for it to finish, or stop it (a killed run "
                        f"continues with `genlab resume {self.folder}`)"
                    ) from None
                time.sleep(LOCK_RETRY_SECONDS)
        os.ftruncate(fd, 0)
        holder = {"pid": os.getpid(), "command": " ".join(sys.argv), "since": time.time()}
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up (also done by the kernel when the process ends)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0))
        return f"process {int(holder['pid'])} ({holder['command'][:120]})"
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"


def writer_of(folder: str | Path) -> str | None:
    """The process writing ``folder`` (``"process 123 (genlab train ...)"``), or None.

    Reads only: never creates the lock file, so it works on a read-only medium.
    """
    try:
        handle = open_regular(Path(folder) / LOCK_FILE)
    except (FileNotFoundError, StorageError):
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe_holder(handle.fileno())
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def read_json(path: Path) -> Any:
    """A small JSON file of a run, with one clear error when it is not one."""
    try:
        text = read_regular(path, limit=MAX_JSON_BYTES)
    except StorageError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt JSON ({exc})") from None


class RunDirectory:
    """Paths and files of one run, and the lock of the process writing it."""

    def __init__(self, path: str | Path) -> None:
        if str(path).strip() == "":
            raise ConfigError("the run directory is an empty path; give a folder name (--out)")
        self.path = Path(path)
        self.metrics = MetricsLog(self.path / METRICS_FILE)
        self.lock = RunLock(self.path)

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

    @property
    def complete(self) -> bool:
        """Whether training finished and wrote its final files (weights and summary)."""
        return self.model_path.exists() and self.summary_path.exists()

    def writer(self) -> str | None:
        """The process writing this run now (see :func:`writer_of`), or None."""
        return writer_of(self.path)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary)

    def read_summary(self) -> dict[str, Any]:
        """What :meth:`write_summary` wrote at the end of training (empty if unfinished)."""
        if not self.summary_path.exists():
            return {}
        summary = read_json(self.summary_path)
        if not isinstance(summary, dict):
            raise CheckpointError(f"{self.summary_path}: not a run summary")
        return summary

    def write_config(self, config: RunConfig) -> None:
        """Write ``config.json`` (atomically), with the run-format marker."""
        write_json(self.config_path, config.to_json())

    @classmethod
    def create(
        cls, path: str | Path, config: RunConfig, *, overwrite: bool = False
    ) -> RunDirectory:
        """Make a new run directory and hold its lock (release it with ``run.lock.release()``).

        Creates the run where nothing is or in an empty folder; with ``overwrite``, also over a
        genlab run (only its own files are removed). Anything else is refused before a file
        is touched.

        Raises:
            RunLocked: another process is writing the folder.
            CheckpointError: the folder holds a run (without ``overwrite``) or files that are
                not a run.
        """
        run = cls(path)
        run.check_free(overwrite)
        make_folder(run.path)
        run.lock.acquire()
        try:
            run.check_free(overwrite)  # again, holding the lock: no one can come in between
            if overwrite:
                for name in (CONFIG_FILE, *RUN_FILES):
                    (run.path / name).unlink(missing_ok=True)
            run.write_config(config)
        except BaseException:
            run.lock.release()
            raise
        return run

    def check_free(self, overwrite: bool = False) -> None:
        """Refuse (see :meth:`create`) unless a run may be created at this path; reads only."""
        path = self.path
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise CheckpointError(
                f"{path}: {'it' if blocker == path else blocker} is a file, not a folder; "
                "choose another --out"
            )
        if not path.exists():
            return
        holder = None if self.lock.held else self.writer()
        if holder is not None:
            raise RunLocked(
                f"{path}: is being written by {holder}; one process writes a run directory at "
                "a time: wait for it to finish, or stop it"
            )
        entries = sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE)
        if not entries:
            return
        try:
            self.read_config()
        except CheckpointError as exc:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise CheckpointError(
                f"{path}: holds files that are not a genlab run ({shown}); genlab creates a run "
                f"only in a new or empty folder: choose another --out ({exc})"
            ) from None
        if not overwrite:
            raise CheckpointError(
                f"{path}: already holds a run; use `genlab resume {path}` to continue it, "
                "--overwrite to replace it, or choose another --out"
            )

    def read_config(self) -> RunConfig:
        if not self.path.is_dir():
            raise CheckpointError(f"{self.path}: no such run directory")
        if not self.config_path.exists():
            raise CheckpointError(f"{self.path}: not a genlab run (no {CONFIG_FILE})")
        return RunConfig.from_json(read_json(self.config_path), str(self.config_path))
