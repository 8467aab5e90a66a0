"""The training loop every family plugs into through the hooks of :class:`GenerativeModel`.

What the loop owns, so that no family repeats it: the validation split (carved from the
training data with the run's seed; the test split is never seen; closed-form fits, which select
nothing, use all the training data), dequantisation of discrete
data for density models, seeded data order, the progress bar, ``metrics.jsonl``, early stopping
and best-weights selection on validation loss, divergence checks, atomic checkpoints (every
``checkpoint_every`` steps and every ``checkpoint_seconds`` of wall-clock time) and resume.

Determinism: the order of epoch ``e`` is ``randperm`` under a generator seeded with
``(seed, e)``; the noise a step draws (dequantisation, reparameterisation...) comes from one
training generator whose state is in every checkpoint; what a family draws from torch's global
generator (dropout) comes from a seed of (seed, rank, step) set for that step alone; validation
noise is re-seeded at every validation. So a run resumed from a checkpoint ends with the same parameters, bit for bit, as
one that never stopped. A checkpoint reads the state and changes nothing, so how often (and
when, on the clock) checkpoints are written never changes the numbers. The last checkpoint
holds the finished state and the final weights: a run killed after it resumes straight into
writing its final files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from genlab.data.dataset import DataInfo, Dataset, dequantize
from genlab.errors import CheckpointError, ConfigError, TrainingDiverged
from genlab.models.base import GenerativeModel
from genlab.runs import RunDirectory
from genlab.train import distributed
from genlab.train.acceleration import autocast, check_compilable, compiling, eager
from genlab.train.checkpoint import load_checkpoint, save_checkpoint, save_model
from genlab.train.config import TrainConfig
from genlab.train.memory import reusing_freed_memory
from genlab.train.optim import Optimizers, lr_factor

logger = logging.getLogger(__name__)

VALIDATION_CHUNK = 1024
Callback = Callable[[int, GenerativeModel], dict[str, float] | None]
RANK_SEED_STRIDE = 104_729


@dataclass
class TrainState:
    """Where training stands; saved as JSON in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_score: float = math.inf
    best_step: int = -1
    evals_since_best: int = 0
    last_val: float | None = None
    elapsed_seconds: float = 0.0
    finished: bool = False
    stopped_early: bool = False

    @classmethod
    def from_checkpoint(
        cls, saved: Any, source: str, *, total_steps: int, batches_per_epoch: int
    ) -> TrainState:
        """The state a checkpoint saved, every field checked against this run's schedule.

        Raises:
            CheckpointError: a missing, unknown, mistyped or out-of-range field (a damaged
                checkpoint, or one of another run).
        """

        def fail(problem: str) -> CheckpointError:
            return CheckpointError(
                f"{source}: trainer state {problem}; the checkpoint is damaged or not this "
                f"run's: delete it and `genlab resume` starts the run again"
            )

        if not isinstance(saved, dict):
            raise fail("is not a JSON object")
        names = {f.name: f for f in fields(cls)}
        for problem, keys in (
            ("missing", names.keys() - saved),
            ("unknown", saved - names.keys()),
        ):
            if keys:
                raise fail(f"field {sorted(keys)[0]!r} is {problem}")
        for name, value in saved.items():
            kind = names[name].type
            ok = {
                "int": isinstance(value, int) and not isinstance(value, bool),
                "bool": isinstance(value, bool),
                "float": _is_real(value),
                "float | None": value is None or _is_real(value),
            }[kind]
            if not ok:
                raise fail(f"field {name!r} must be {kind}, got {json.dumps(value)[:40]}")
        state = cls(**saved)
        limits = (
            ("step", state.step, 0, total_steps),
            ("epoch", state.epoch, 0, state.step),
            ("batch_in_epoch", state.batch_in_epoch, 0, batches_per_epoch),
            ("best_step", state.best_step, -1, state.step),
            ("evals_since_best", state.evals_since_best, 0, state.step),
            ("elapsed_seconds", state.elapsed_seconds, 0, math.inf),
        )
        for name, value, low, high in limits:
            if not low <= value <= high or value == math.inf:
                raise fail(f"field {name!r} = {value} is outside [{low}, {high}]")
        if math.isnan(state.best_score) or (
            state.last_val is not None and math.isnan(state.last_val)
        ):
            raise fail("holds NaN scores")
        return state


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def schedule(n_train: int, config: TrainConfig) -> tuple[int, int]:
    """``(batches per epoch, total steps)`` of a run on ``n_train`` examples."""
    batches_per_epoch = math.ceil(n_train / config.batch_size)
    return batches_per_epoch, config.steps or config.epochs * batches_per_epoch


def validation_split(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded (train, validation) index split of ``range(n)``."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    n_val = int(round(n * fraction))
    if fraction > 0 and (n_val < 1 or n - n_val < 1):
        n_val = 0
    return order[n_val:].sort().values, order[:n_val].sort().values


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The data order of one epoch, a pure function of (seed, epoch)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def dequantizes(model: GenerativeModel, data: Dataset) -> bool:
    """Density models see uniformly dequantised copies of discrete data (see genlab.data.dequantize),
    unless the model reads the levels directly (``model.needs_dequantization`` is False)."""
    return data.info.levels is not None and model.needs_dequantization


def seed_global_generators(seed: int, device: torch.device) -> None:
    """Seed torch's global CPU generator and, on a GPU, that device's: the generators a step's
    dropout draws from. The same numbers as ``torch.manual_seed(seed)`` for this device,
    without its lazy seeding of every other kind of device, which records a Python stack
    trace per call (about 0.3 ms, a few percent of a small model's step on CPU)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.default_generators[index].manual_seed(seed)


def context_rows(labels: Tensor | None, index: Tensor | None = None) -> dict[str, Tensor]:
    """``{"context": labels[index]}`` for a family that takes context (labels given), else ``{}``."""
    if labels is None:
        return {}
    return {"context": labels if index is None else labels.index_select(0, index)}


def fit(
    model: GenerativeModel,
    data: Dataset,
    config: TrainConfig,
    *,
    seed: int = 0,
    run: RunDirectory | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callback | None = None,
) -> TrainState:
    """Train ``model`` on ``data.x_train`` and return the final state.

    A gradient-trained family trains on ``x_train`` minus a validation split
    (``config.val_fraction``), which selects the best weights and stops early; a closed-form
    family (``fit_method = "closed_form"``) selects nothing, so it fits on all of ``x_train``.

    Arguments:
        model: a fresh model (or, with ``resume``, one of the same configuration), on its device.
        data: the dataset; only ``x_train`` is used, and ``y_train`` as every hook's
            ``context=`` for a family that takes context (``model.capabilities.context``).
        config: the training hyper-parameters.
        seed: seeds the validation split, data order and the training generator.
        run: where checkpoints and metrics go; ``None`` trains in memory only.
        resume: continue from ``run``'s last checkpoint.
        progress: show a progress bar on stderr.
        callback: called as ``callback(step, model)`` at every evaluation point (each epoch's
            end, or every ``eval_every`` steps), after validation; a dict it returns is logged.
    """
    device = model.device
    if config.compile:
        check_compilable(device)
    x_all = data.x_train.to(device)
    y_all = None
    if model.capabilities.context:
        if data.y_train is None:
            raise ConfigError(
                f"{model.family} models p(x | y) and takes the labels as context, but "
                f"{data.info.name} has no labels: give labelled data (class folders, an .npz with "
                "y_train) or choose a family that models p(x)"
            )
        y_all = data.y_train.to(device)
    dequantize_batches = dequantizes(model, data)
    ctx = distributed.current()
    # rank 0 draws the same noise as a single process; other ranks get their own streams
    generator = torch.Generator(device=device).manual_seed(seed + RANK_SEED_STRIDE * ctx.rank)
    if model.fit_method == "closed_form":
        return _fit_closed_form(
            model, x_all, y_all, data.info, dequantize_batches, generator, run, resume
        )

    train_idx, val_idx = validation_split(len(x_all), config.val_fraction, seed)
    # index_select copies whole rows (far faster than advanced indexing); no split, no copy
    x_train = x_all.index_select(0, train_idx.to(device)) if len(val_idx) else x_all
    x_val = x_all.index_select(0, val_idx.to(device))
    y_train, y_val = (None, None) if y_all is None else (y_all[train_idx], y_all[val_idx])
    if dequantize_batches and len(x_val):
        x_val = dequantize(x_val, data.info, torch.Generator(device=device).manual_seed(seed + 1))
    if not resume:
        model.prepare(x_train, **context_rows(y_train))
    optimizers = Optimizers(model.configure_optimizers(config), config.grad_clip, ctx.enabled)
    state, best_weights = TrainState(), None
    if resume:
        if run is None:
            raise ValueError("resume needs a run directory")
        saved, best_weights = load_checkpoint(
            run.checkpoint_path, model, optimizers.optimizers, {f"train.{ctx.rank}": generator}
        )
        batches_per_epoch, total_steps = schedule(len(x_train), config)
        state = TrainState.from_checkpoint(
            saved,
            str(run.checkpoint_path),
            total_steps=total_steps,
            batches_per_epoch=batches_per_epoch,
        )
        if ctx.is_main:
            run.metrics.truncate_after(state.step)
        logger.info("resumed %s at step %d", run.path, state.step)

    loop = _Loop(
        model=model,
        config=config,
        optimizers=optimizers,
        generator=generator,
        x_train=x_train,
        x_val=x_val,
        y_train=y_train,
        y_val=y_val,
        info=data.info,
        dequantize_batches=dequantize_batches,
        seed=seed,
        run_dir=run,
        callback=callback,
        state=state,
        best=best_weights,
    )
    return loop.run(progress)


def _fit_closed_form(
    model: GenerativeModel,
    x_train: Tensor,
    y_train: Tensor | None,
    info: DataInfo,
    dequantize_batches: bool,
    generator: torch.Generator,
    run: RunDirectory | None,
    resume: bool,
) -> TrainState:
    """One-shot fit on all of ``x_train`` (no validation split: nothing is selected)."""
    context = context_rows(y_train)
    if not resume:
        model.prepare(x_train, **context)
    x_fit = dequantize(x_train, info, generator) if dequantize_batches else x_train
    started = time.perf_counter()
    model.fit_closed_form(x_fit, generator, **context)
    model.finish_training(x_train, generator, **context)
    state = TrainState(finished=True, elapsed_seconds=time.perf_counter() - started)
    if run is not None and distributed.current().is_main:
        save_model(run.model_path, model)
        run.write_summary(asdict(state))
    return state


@dataclass(kw_only=True)
class _Loop:
    """The body of :func:`fit` for gradient-trained families, one named step per method.

    :meth:`run` goes over epochs (:meth:`run_epoch`); each batch is one :meth:`step`, followed
    by :meth:`after_step`: the divergence check, :meth:`log`, :meth:`show_progress`, and, when
    due, :meth:`evaluate` (validation, early stopping, the callback) and :meth:`checkpoint`.
    :meth:`finish` restores the best weights and checkpoints the finished state;
    :meth:`write_final_files` writes the weights and the summary that complete the run.
    """

    model: GenerativeModel
    config: TrainConfig
    optimizers: Optimizers
    generator: torch.Generator  # the training noise; its state is in every checkpoint
    x_train: Tensor
    x_val: Tensor  # already dequantised
    y_train: Tensor | None  # the labels, for a family that takes them as context
    y_val: Tensor | None
    info: DataInfo
    dequantize_batches: bool
    seed: int
    run_dir: RunDirectory | None
    callback: Callback | None
    state: TrainState
    best: dict[str, Tensor] | None  # the weights of the best validation loss so far

    def __post_init__(self) -> None:
        self.ctx = distributed.current()
        self.device = self.model.device
        self.writer = self.run_dir if self.ctx.is_main else None  # only rank 0 writes files
        _, self.total_steps = schedule(len(self.x_train), self.config)
        self.last_checkpoint_step: int | None = None
        self.last_checkpoint_time = time.monotonic()
        # compile=true: the wall time of every step that compiled, i.e. the first of each batch
        # size (the epoch's shorter last batch makes dynamo compile again)
        self.compile_seconds: float | None = None
        self.compiled_batch_sizes: list[int] = []

    def run(self, progress: bool) -> TrainState:
        """Train until the last step or an early stop, :meth:`finish`, then
        :meth:`write_final_files` (also for a run killed after its final checkpoint)."""
        with reusing_freed_memory():
            if not self.state.finished:
                self.train(progress)
                self.finish()
            self.write_final_files()
        return self.state

    def train(self, progress: bool) -> None:
        """The epochs, from where the state stands to the last step or an early stop."""
        self.bar = tqdm(
            total=self.total_steps,
            initial=self.state.step,
            disable=not progress or not self.ctx.is_main,
            unit="step",
            desc=f"{self.model.family}",
            dynamic_ncols=True,
            mininterval=0.5,
            leave=True,
        )
        self.started = time.perf_counter() - self.state.elapsed_seconds
        self.window_start, self.window_steps = time.perf_counter(), 0
        self.model.train()
        networks = compiling(self.model) if self.config.compile else contextlib.nullcontext()
        try:
            with networks:
                while self.state.step < self.total_steps and not self.state.stopped_early:
                    self.run_epoch()
        except BaseException:
            if self.writer is not None:
                self.writer.metrics.close()  # keep what was logged up to the failure
            raise
        finally:
            self.bar.close()

    def run_epoch(self) -> None:
        """The rest of the current epoch, in its seeded order (from mid-epoch after a resume)."""
        state = self.state
        batches = epoch_order(len(self.x_train), self.seed, state.epoch).split(
            self.config.batch_size
        )
        while state.batch_in_epoch < len(batches) and state.step < self.total_steps:
            batch = batches[state.batch_in_epoch]
            if len(batch) < self.ctx.world_size:  # too small to shard: skipped by all
                state.batch_in_epoch += 1
                continue
            metrics = self.step(batch)
            state.step += 1
            state.batch_in_epoch += 1
            self.after_step(metrics, epoch_done=state.batch_in_epoch == len(batches))
            if state.stopped_early:
                break
        if state.batch_in_epoch == len(batches):
            state.epoch += 1
            state.batch_in_epoch = 0

    def step(self, index: Tensor) -> dict[str, Tensor]:
        """One update on the training examples ``index`` (this rank's shard of them)."""
        if self.config.lr_schedule != "constant":
            self.optimizers.set_lr_factor(
                lr_factor(self.config.lr_schedule, self.state.step / self.total_steps)
            )
        if self.ctx.enabled:
            local = index.tensor_split(self.ctx.world_size)[self.ctx.rank]
            self.optimizers.batch_weight = len(local) / len(index)
            index = local
        index = index.to(self.x_train.device)
        x = self.x_train.index_select(0, index)
        if self.dequantize_batches:
            x = dequantize(x, self.info, self.generator)
        context = context_rows(self.y_train, index)
        # torch's global generator (dropout draws from it) is seeded from (seed, rank, step)
        # for this step alone, so a resumed run draws the same masks; the caller's global
        # state is restored after
        devices = [self.device] if self.device.type == "cuda" else []
        compiles = self.config.compile and len(x) not in self.compiled_batch_sizes
        if compiles:
            self.bar.set_description(f"{self.model.family} (compiling)")
            started = time.perf_counter()
        with torch.random.fork_rng(devices=devices), autocast(self.device, self.config.precision):
            seed_global_generators(
                (self.seed * 1_000_003 + self.state.step) * RANK_SEED_STRIDE + self.ctx.rank,
                self.device,
            )
            metrics = self.model.training_step(x, self.optimizers, self.generator, **context)
        if compiles:
            seconds = time.perf_counter() - started
            self.compile_seconds = (self.compile_seconds or 0.0) + seconds
            self.compiled_batch_sizes.append(len(x))
            self.bar.set_description(self.model.family)
            logger.info("compiled step (batch of %d): %.1f s", len(x), seconds)
        return metrics

    def after_step(self, metrics: dict[str, Tensor], *, epoch_done: bool) -> None:
        """Check, log and show the step; evaluate and checkpoint when due (every
        ``checkpoint_every`` steps, or after ``checkpoint_seconds`` of wall-clock time)."""
        state = self.state
        clock_due = self._check_step(metrics)
        self.log(metrics)
        self.show_progress(metrics)
        if self._evaluation_due(state.step, epoch_done):
            with eager() if self.config.compile else contextlib.nullcontext():
                self.evaluate()
        if self.model.stage_ended():
            self.close_stage()
        state.elapsed_seconds = time.perf_counter() - self.started
        if not state.stopped_early and (
            state.step % self.config.checkpoint_every == 0 or clock_due
        ):
            self.checkpoint()

    def log(self, metrics: dict[str, Tensor]) -> None:
        """A ``metrics.jsonl`` line every ``log_every`` steps."""
        state = self.state
        if state.step % self.config.log_every == 0 and self.writer is not None:
            record = {"step": state.step, "epoch": state.epoch, "split": "train"}
            record.update({k: float(v) for k, v in metrics.items()})
            self.writer.metrics.write(record)

    def show_progress(self, metrics: dict[str, Tensor]) -> None:
        """Advance the bar; every 20 steps show the first metrics, validation and examples/s."""
        self.bar.update(1)
        self.window_steps += 1
        if self.window_steps < 20:
            return
        seconds = time.perf_counter() - self.window_start
        postfix = {k: f"{float(v):.4g}" for k, v in list(metrics.items())[:2]}
        if self.state.last_val is not None:
            postfix["val"] = f"{self.state.last_val:.4g}"
        rate = self.window_steps * self.config.batch_size / seconds
        self.bar.set_postfix(postfix, ex_s=f"{rate:.0f}", refresh=False)
        self.window_start, self.window_steps = time.perf_counter(), 0

    def evaluate(self) -> None:
        """Validate (selection and early stopping) when there is a split, then the callback."""
        if len(self.x_val):
            self._validate()
        self._call_back()

    def close_stage(self) -> None:
        """The model's stage of training has ended (:meth:`GenerativeModel.stage_ended`, or early
        stopping with :meth:`GenerativeModel.has_next_stage`): the next stage starts from the
        ended stage's best validated weights, and selection and early stopping start afresh, so
        the final weights are the next stage's best (a later stage's validation loss need not
        beat an earlier stage's weights: without this the VQ-VAE's autoencoder froze at its
        last step, not its best)."""
        state = self.state
        if self.best is not None and self.config.select_best:
            self.model.load_state_dict(self.best)
            logger.info(
                "stage ended at step %d: best weights of step %d", state.step, state.best_step
            )
        self.model.start_next_stage_()
        self.best = None
        state.best_score, state.best_step, state.evals_since_best = math.inf, -1, 0

    def _check_step(self, metrics: dict[str, Tensor]) -> bool:
        """Raise :class:`TrainingDiverged` if a metric is not finite (on any rank); return
        whether the wall clock calls for a checkpoint (on any rank's clock)."""
        seconds = self.config.checkpoint_seconds
        clock_due = seconds is not None and time.monotonic() - self.last_checkpoint_time >= seconds
        if not metrics and not self.ctx.enabled:
            return clock_due
        if self.device.type == "cpu" and not self.ctx.enabled:
            # reading each value costs a microsecond; the stacked test below costs 0.3 ms
            values = [float(v) for v in metrics.values()]
            finite = all(math.isfinite(v) for v in values)
        else:  # one stacked test on the metrics' device: a single host sync per step
            stacked = torch.stack(
                [
                    torch.as_tensor(v, device=self.device).detach().reshape(()).float()
                    for v in metrics.values()
                ]
                or [torch.zeros((), device=self.device)]
            )
            flag = torch.isfinite(stacked).all().to(torch.int32)
            if self.ctx.enabled:  # every rank stops and checkpoints together, or the others wait
                not_due = torch.tensor(int(not clock_due), dtype=torch.int32, device=flag.device)
                flags = torch.stack([flag, not_due]).to(self.device)
                torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)
                flag, clock_due = flags[0], not bool(flags[1])
            finite = bool(flag)
            if not finite:
                values = stacked.cpu().tolist()
        if finite:
            return clock_due
        name, value = next(
            ((k, v) for k, v in zip(metrics, values, strict=False) if not math.isfinite(v)),
            ("loss", math.nan),  # another rank's value diverged
        )
        kept = (
            f"the last good checkpoint (step {self.last_checkpoint_step}) is kept at "
            f"{self.writer.checkpoint_path}"
            if self.writer is not None and self.last_checkpoint_step is not None
            else "no checkpoint was written yet"
        )
        raise TrainingDiverged(
            f"training of {self.model.family} diverged at step {self.state.step}: "
            f"{name} = {value}; {kept}. Try a lower learning rate (--set lr=...)."
        )

    def checkpoint(self) -> None:
        """Write the checkpoint (model, optimizers, generators, trainer state, best weights)."""
        if self.run_dir is None:
            return
        for name, tensor in self.model.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise TrainingDiverged(
                    f"training of {self.model.family} diverged by step {self.state.step}: "
                    f"parameter {name!r} holds NaN/inf; the checkpoint of step "
                    f"{self.last_checkpoint_step} is kept"
                )
        generator_states = distributed.gather_generator_states(self.generator)  # collective
        if self.writer is not None:
            self.writer.metrics.flush()
            save_checkpoint(
                self.writer.checkpoint_path,
                self.model,
                self.optimizers.optimizers,
                asdict(self.state),
                generator_states,
                self.best,
            )
        self.last_checkpoint_step = self.state.step
        self.last_checkpoint_time = time.monotonic()

    def finish(self) -> None:
        """Restore the best weights, run the family's last fit, and checkpoint the finished
        state (whose weights are the final ones)."""
        model, state = self.model, self.state
        if self.best is not None and self.config.select_best:
            model.load_state_dict(self.best)
        model.eval()
        model.finish_training(self.x_train, self.generator, **context_rows(self.y_train))
        if self.ctx.enabled:  # e.g. a prior fitted after training: every rank keeps rank 0's
            distributed.broadcast_state(model)
        state.finished = True
        state.elapsed_seconds = time.perf_counter() - self.started
        self.checkpoint()

    def write_final_files(self) -> None:
        """``model.safetensors``, then ``summary.json``: what makes a run complete."""
        if self.writer is not None:
            save_model(self.writer.model_path, self.model)
            summary = asdict(self.state)
            if self.compile_seconds is not None:
                summary["compile_seconds"] = self.compile_seconds
                summary["compiled_batch_sizes"] = self.compiled_batch_sizes
            self.writer.write_summary(summary)
            self.writer.metrics.close()
        distributed.barrier()

    def _call_back(self) -> None:
        if self.callback is None:
            return
        self.model.eval()
        with torch.no_grad():
            logged = self.callback(self.state.step, self.model)
        self.model.train()
        if logged and self.writer is not None:
            self.writer.metrics.write({"step": self.state.step, "split": "callback", **logged})

    def _evaluation_due(self, step: int, epoch_done: bool) -> bool:
        if self.config.eval_every is None:
            return epoch_done or step == self.total_steps
        return step % self.config.eval_every == 0 or step == self.total_steps

    def _validation_generator(self) -> torch.Generator:
        return torch.Generator(device=self.x_val.device).manual_seed(self.seed + 2)

    @torch.no_grad()
    def _validation_loss(self) -> float | None:
        """Mean of the family's per-example validation loss, or None if it has none."""
        model = self.model
        model.eval()
        generator = self._validation_generator()
        total = 0.0
        for start in range(0, len(self.x_val), VALIDATION_CHUNK):
            chunk = self.x_val[start : start + VALIDATION_CHUNK]
            context = context_rows(
                None if self.y_val is None else self.y_val[start : start + VALIDATION_CHUNK]
            )
            loss = model.validation_loss(chunk, generator, **context)
            if loss is None:
                model.train()
                return None
            total += float(loss.sum())
        model.train()
        return total / len(self.x_val)

    @torch.no_grad()
    def _validation_metrics(self) -> dict[str, float]:
        self.model.eval()
        metrics = self.model.validation_metrics(
            self.x_val, self._validation_generator(), **context_rows(self.y_val)
        )
        self.model.train()
        return metrics

    def _validate(self) -> None:
        """Log the validation loss and metrics; keep the best weights; stop early if due."""
        state = self.state
        score = self._validation_loss()
        record: dict[str, Any] = {"step": state.step, "epoch": state.epoch, "split": "val"}
        record.update(self._validation_metrics())
        if score is None:  # no selection criterion: keep training, keep the last weights
            if self.writer is not None and len(record) > 3:
                self.writer.metrics.write(record)
            return
        state.last_val = score
        if not math.isfinite(score):
            raise TrainingDiverged(
                f"training of {self.model.family} diverged at step {state.step}: "
                f"validation loss = {score}"
            )
        if score < state.best_score:
            state.best_score, state.best_step, state.evals_since_best = score, state.step, 0
            self.best = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            state.evals_since_best += 1
        if self.writer is not None:
            self.writer.metrics.write({**record, "loss": score})
        if self.config.patience is None or state.evals_since_best < self.config.patience:
            return
        if self.model.has_next_stage():  # the stage stops early, the training goes on
            logger.info("the stage stops early at step %d", state.step)
            self.close_stage()
        else:
            state.stopped_early = True
            logger.info(
                "early stop at step %d (best %.4g at step %d)",
                state.step,
                state.best_score,
                state.best_step,
            )
