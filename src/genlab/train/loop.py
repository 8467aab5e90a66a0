"""The training loop every family plugs into through the hooks of :class:`GenerativeModel`.

What the loop owns, so that no family repeats it: the validation split (carved from the
training data with the run's seed; the test split is never seen), dequantisation of discrete
data for density models, seeded data order, the progress bar, ``metrics.jsonl``, early stopping
and best-weights selection on validation loss, divergence checks, periodic atomic checkpoints
and resume.

Determinism: the order of epoch ``e`` is ``randperm`` under a generator seeded with
``(seed, e)``; the noise a step draws (dequantisation, reparameterisation...) comes from one
training generator whose state is in every checkpoint; validation noise is re-seeded at every
validation. So a run resumed from a checkpoint ends with the same parameters, bit for bit, as
one that never stopped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from genlab.data.dataset import Dataset, dequantize
from genlab.errors import TrainingDiverged
from genlab.models.base import GenerativeModel
from genlab.runs import RunDirectory
from genlab.train import distributed
from genlab.train.checkpoint import load_checkpoint, save_checkpoint, save_model
from genlab.train.config import TrainConfig
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
    """Train ``model`` on ``data.x_train`` (minus a validation split) and return the final state.

    Arguments:
        model: a fresh model (or, with ``resume``, one of the same configuration), on its device.
        data: the dataset; only ``x_train`` is used.
        config: the training hyper-parameters.
        seed: seeds the validation split, data order and the training generator.
        run: where checkpoints and metrics go; ``None`` trains in memory only.
        resume: continue from ``run``'s last checkpoint.
        progress: show a progress bar on stderr.
        callback: called as ``callback(step, model)`` at every evaluation point (each epoch's
            end, or every ``eval_every`` steps), after validation; a dict it returns is logged.
    """
    device = model.device
    x_all = data.x_train.to(device)
    train_idx, val_idx = validation_split(len(x_all), config.val_fraction, seed)
    # index_select copies whole rows (far faster than advanced indexing); no split, no copy
    x_train = x_all.index_select(0, train_idx.to(device)) if len(val_idx) else x_all
    x_val = x_all.index_select(0, val_idx.to(device))
    dequantize_batches = dequantizes(model, data)
    if dequantize_batches and len(x_val):
        x_val = dequantize(x_val, data.info, torch.Generator(device=device).manual_seed(seed + 1))
    ctx = distributed.current()
    # rank 0 draws the same noise as a single process; other ranks get their own streams
    generator = torch.Generator(device=device).manual_seed(seed + RANK_SEED_STRIDE * ctx.rank)

    if not resume:
        model.prepare(x_train)
    if model.fit_method == "closed_form":
        x_fit = dequantize(x_train, data.info, generator) if dequantize_batches else x_train
        started = time.perf_counter()
        model.fit_closed_form(x_fit, generator)
        model.finish_training(x_train, generator)
        state = TrainState(finished=True, elapsed_seconds=time.perf_counter() - started)
        if run is not None and ctx.is_main:
            save_model(run.model_path, model)
            run.write_summary(asdict(state))
        return state

    optimizers = Optimizers(model.configure_optimizers(config), config.grad_clip, ctx.enabled)
    state, best_weights = TrainState(), None
    if resume:
        if run is None:
            raise ValueError("resume needs a run directory")
        saved, best_weights = load_checkpoint(
            run.checkpoint_path, model, optimizers.optimizers, {f"train.{ctx.rank}": generator}
        )
        state = TrainState(**saved)
        if ctx.is_main:
            run.metrics.truncate_after(state.step)
        logger.info("resumed %s at step %d", run.path, state.step)

    loop = _Loop(
        model, config, optimizers, generator, x_train, x_val, seed, run, data, dequantize_batches
    )
    loop.callback = callback
    return loop.run(state, best_weights, progress)


class _Loop:
    """The body of :func:`fit`, split into small methods."""

    def __init__(
        self,
        model: GenerativeModel,
        config: TrainConfig,
        optimizers: Optimizers,
        generator: torch.Generator,
        x_train: Tensor,
        x_val: Tensor,
        seed: int,
        run: RunDirectory | None,
        data: Dataset,
        dequantize_batches: bool,
    ) -> None:
        self.model, self.config, self.optimizers = model, config, optimizers
        self.generator, self.x_train, self.x_val, self.seed = generator, x_train, x_val, seed
        self.run_dir, self.data, self.dequantize_batches = run, data, dequantize_batches
        self.ctx = distributed.current()
        self.device = model.device
        self.writer = run if self.ctx.is_main else None  # only rank 0 writes files
        self.batches_per_epoch = math.ceil(len(x_train) / config.batch_size)
        self.total_steps = config.steps or config.epochs * self.batches_per_epoch
        self.last_checkpoint_step: int | None = None
        self.callback: Callback | None = None

    def run(self, state: TrainState, best: dict[str, Tensor] | None, progress: bool) -> TrainState:
        model, config = self.model, self.config
        if state.finished:
            return state
        bar = tqdm(
            total=self.total_steps,
            initial=state.step,
            disable=not progress or not self.ctx.is_main,
            unit="step",
            desc=f"{model.family}",
            dynamic_ncols=True,
            mininterval=0.5,
            leave=True,
        )
        started = time.perf_counter() - state.elapsed_seconds
        window_start, window_steps = time.perf_counter(), 0
        model.train()
        try:
            while state.step < self.total_steps and not state.stopped_early:
                order = epoch_order(len(self.x_train), self.seed, state.epoch)
                batches = order.split(config.batch_size)
                while state.batch_in_epoch < len(batches) and state.step < self.total_steps:
                    batch = batches[state.batch_in_epoch]
                    if len(batch) < self.ctx.world_size:  # too small to shard: skipped by all
                        state.batch_in_epoch += 1
                        continue
                    metrics = self._step(batch, state.step)
                    state.step += 1
                    state.batch_in_epoch += 1
                    self._check_finite(metrics, state.step)
                    epoch_done = state.batch_in_epoch == len(batches)
                    if state.step % config.log_every == 0 and self.writer is not None:
                        record = {"step": state.step, "epoch": state.epoch, "split": "train"}
                        record.update({k: float(v) for k, v in metrics.items()})
                        self.writer.metrics.write(record)
                    bar.update(1)
                    window_steps += 1
                    if window_steps >= 20:
                        rate = (
                            window_steps * config.batch_size / (time.perf_counter() - window_start)
                        )
                        postfix = {k: f"{float(v):.4g}" for k, v in list(metrics.items())[:2]}
                        if state.last_val is not None:
                            postfix["val"] = f"{state.last_val:.4g}"
                        bar.set_postfix(postfix, ex_s=f"{rate:.0f}", refresh=False)
                        window_start, window_steps = time.perf_counter(), 0
                    if self._evaluation_due(state.step, epoch_done):
                        if len(self.x_val):
                            best = self._validate(state, best)
                        self._call_back(state)
                    state.elapsed_seconds = time.perf_counter() - started
                    if state.stopped_early:
                        break
                    if state.step % config.checkpoint_every == 0:
                        self._checkpoint(state, best)
                if state.batch_in_epoch == len(batches):
                    state.epoch += 1
                    state.batch_in_epoch = 0
        except BaseException:
            if self.writer is not None:
                self.writer.metrics.close()  # keep what was logged up to the failure
            raise
        finally:
            bar.close()
        if best is not None and config.select_best:
            model.load_state_dict(best)
        model.eval()
        model.finish_training(self.x_train, self.generator)
        if self.ctx.enabled:  # e.g. a prior fitted after training: every rank keeps rank 0's
            distributed.broadcast_state(model)
        state.finished = True
        state.elapsed_seconds = time.perf_counter() - started
        self._checkpoint(state, best)
        if self.writer is not None:
            save_model(self.writer.model_path, model)
            self.writer.write_summary(asdict(state))
            self.writer.metrics.close()
        distributed.barrier()
        return state

    def _step(self, index: Tensor, step: int) -> dict[str, Tensor]:
        if self.config.lr_schedule != "constant":
            self.optimizers.set_lr_factor(
                lr_factor(self.config.lr_schedule, step / self.total_steps)
            )
        if self.ctx.enabled:
            local = index.tensor_split(self.ctx.world_size)[self.ctx.rank]
            self.optimizers.batch_weight = len(local) / len(index)
            index = local
        x = self.x_train.index_select(0, index.to(self.x_train.device))
        if self.dequantize_batches:
            x = dequantize(x, self.data.info, self.generator)
        return self.model.training_step(x, self.optimizers, self.generator)

    def _check_finite(self, metrics: dict[str, Tensor], step: int) -> None:
        if not metrics:
            return
        # one stacked test on the metrics' device: a single host sync per step
        values = torch.stack(
            [
                torch.as_tensor(v, device=self.device).detach().reshape(()).float()
                for v in metrics.values()
            ]
        )
        finite = torch.isfinite(values).all().to(torch.int32)
        if self.ctx.enabled:  # every rank stops together, or the others would wait forever
            finite = finite.to(self.device)
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if bool(finite):
            return
        name, value = next(
            (
                (k, float(v))
                for k, v in zip(metrics, values.cpu(), strict=True)
                if not math.isfinite(v)
            ),
            ("loss", math.nan),  # another rank's value diverged
        )
        kept = (
            f"the last good checkpoint (step {self.last_checkpoint_step}) is kept at "
            f"{self.writer.checkpoint_path}"
            if self.writer is not None and self.last_checkpoint_step is not None
            else "no checkpoint was written yet"
        )
        raise TrainingDiverged(
            f"training of {self.model.family} diverged at step {step}: {name} = {value}; {kept}. "
            "Try a lower learning rate (--set lr=...)."
        )

    def _call_back(self, state: TrainState) -> None:
        if self.callback is None:
            return
        self.model.eval()
        with torch.no_grad():
            logged = self.callback(state.step, self.model)
        self.model.train()
        if logged and self.writer is not None:
            self.writer.metrics.write({"step": state.step, "split": "callback", **logged})

    def _evaluation_due(self, step: int, epoch_done: bool) -> bool:
        if self.config.eval_every is None:
            return epoch_done or step == self.total_steps
        return step % self.config.eval_every == 0 or step == self.total_steps

    def _validation_generator(self) -> torch.Generator:
        return torch.Generator(device=self.x_val.device).manual_seed(self.seed + 2)

    @torch.no_grad()
    def validation_loss(self) -> float | None:
        """Mean of the family's per-example validation loss, or None if it has none."""
        model = self.model
        model.eval()
        generator = self._validation_generator()
        total = 0.0
        for chunk in self.x_val.split(VALIDATION_CHUNK):
            loss = model.validation_loss(chunk, generator)
            if loss is None:
                model.train()
                return None
            total += float(loss.sum())
        model.train()
        return total / len(self.x_val)

    @torch.no_grad()
    def validation_metrics(self) -> dict[str, float]:
        self.model.eval()
        metrics = self.model.validation_metrics(self.x_val, self._validation_generator())
        self.model.train()
        return metrics

    def _validate(
        self, state: TrainState, best: dict[str, Tensor] | None
    ) -> dict[str, Tensor] | None:
        score = self.validation_loss()
        record: dict[str, Any] = {"step": state.step, "epoch": state.epoch, "split": "val"}
        record.update(self.validation_metrics())
        if score is None:  # no selection criterion: keep training, keep the last weights
            if self.writer is not None and len(record) > 3:
                self.writer.metrics.write(record)
            return best
        state.last_val = score
        if not math.isfinite(score):
            raise TrainingDiverged(
                f"training of {self.model.family} diverged at step {state.step}: "
                f"validation loss = {score}"
            )
        if score < state.best_score:
            state.best_score, state.best_step, state.evals_since_best = score, state.step, 0
            best = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            state.evals_since_best += 1
        if self.writer is not None:
            self.writer.metrics.write({**record, "loss": score})
        if self.config.patience is not None and state.evals_since_best >= self.config.patience:
            state.stopped_early = True
            logger.info(
                "early stop at step %d (best %.4g at step %d)",
                state.step,
                state.best_score,
                state.best_step,
            )
        return best

    def _checkpoint(self, state: TrainState, best: dict[str, Tensor] | None) -> None:
        if self.run_dir is None:
            return
        for name, tensor in self.model.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise TrainingDiverged(
                    f"training of {self.model.family} diverged by step {state.step}: parameter "
                    f"{name!r} holds NaN/inf; the checkpoint of step "
                    f"{self.last_checkpoint_step} is kept"
                )
        generator_states = distributed.gather_generator_states(self.generator)  # collective
        if self.writer is not None:
            self.writer.metrics.flush()
            save_checkpoint(
                self.writer.checkpoint_path,
                self.model,
                self.optimizers.optimizers,
                asdict(state),
                generator_states,
                best,
            )
        self.last_checkpoint_step = state.step


def history(records: list[dict[str, Any]], split: str = "train") -> dict[str, list[float]]:
    """Columns of ``metrics.jsonl`` records of one split, e.g. ``history(read_metrics(run))["loss"]``."""
    rows = [r for r in records if r.get("split") == split]
    keys = [k for k in (rows[0] if rows else {}) if k not in ("split",)]
    return {k: [r[k] for r in rows if k in r] for k in keys}
