"""The training loop: a generator yielding per-batch and per-epoch metrics, one code path for GUI and CLI.

``train(...)`` yields ``BatchMetrics`` after every batch, ``EpochMetrics`` after each epoch's
validation and a ``Snapshot`` (filters, probe heatmap) per epoch, then returns a ``TrainResult``.
Each epoch draws its data order, augmentation and dropout from a seed made of (seed, epoch), so
resuming from the checkpoint of epoch k gives the same weights as never stopping (on the CPU).
Every epoch writes a checkpoint in the app's format (atomically) with everything a resume needs:
optimiser and schedule state, the frozen parameters, the curves and the snapshots; the best one
by validation accuracy is kept beside it as ``NAME.best.EXT``. ``RunControl`` pauses, resumes and
stops a run from another thread; a stop ends the run cleanly with the model it has. A step that
makes the loss or any weight non-finite, or an epoch whose validation loss is, stops the run with
the last good weights: nothing non-finite is ever validated as good or written.

Under torchrun (a process group is initialised) the same loop trains a DistributedDataParallel copy:
each rank reads its part of every global batch (``batch_size`` per process × world size), the loss is
scaled so that DDP's averaged gradient is the global batch's mean (exact even for an uneven last
batch), one all-reduce per step sums the image counts, loss sums and correct counts (so the metrics
are the single-process ones) together with a problem flag per rank: a non-finite loss or an
out-of-memory on one rank stops every rank at the same step. Validation is sharded and summed; only
rank 0 takes snapshots, records gradient flow and writes checkpoints, which hold the unwrapped module.
"""

from __future__ import annotations

import copy
import itertools
import math
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnexplorer.core.distributed import World, all_reduce_sum, world
from cnnexplorer.core.errors import UserError, is_out_of_memory
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle, eval_mode
from cnnexplorer.core.training.augment import augment_batch
from cnnexplorer.core.training.aux_outputs import training_loss
from cnnexplorer.core.training.config import TrainConfig, make_optimizer, make_schedule
from cnnexplorer.core.training.curves import History
from cnnexplorer.core.training.data import DataSource, epoch_seed
from cnnexplorer.core.training.gradient_flow import FlowRecorder
from cnnexplorer.core.training.snapshots import Snapshot, take_snapshot
from cnnexplorer.core.training.state import (ResumeState, best_path, check_resumable, plain, restore_run,
                                             resume_state, save_state, snapshot_json)
from cnnexplorer.core.training.transfer import (frozen_norms, frozen_parameters, parameter_groups, restore_frozen,
                                                set_trainable)


@dataclass(frozen=True)
class BatchMetrics:
    step: int  # 1-based, over the whole run
    epoch: float  # fractional epoch (0.5 = half-way through the first)
    loss: float
    acc: float
    lr: float
    images_per_s: float
    elapsed_s: float
    eta_s: float | None
    total_steps: int


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    step: int
    val_loss: float
    val_acc: float
    train_loss: float
    train_acc: float
    lr: float
    elapsed_s: float
    best: bool  # the best validation accuracy so far


@dataclass
class TrainResult:
    handle: ModelHandle  # the trained model (train mode off), class names of the data
    history: History
    snapshots: list[Snapshot]
    epochs_done: int
    best_val_acc: float | None
    best_val_loss: float | None
    final_val_acc: float | None
    final_val_loss: float | None
    stopped: str | None  # why the run ended early (a stop request, a non-finite loss or weight), else None
    checkpoint: Path | None  # written by this run; None if it wrote none
    best_checkpoint: Path | None
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable files the run left out: path → reason


class RunControl:
    """Thread-safe pause/resume/stop requests, checked by the loop between batches."""

    def __init__(self):
        self._running = threading.Event()
        self._running.set()
        self.stop_requested = False

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self.stop_requested = True
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait(self, timeout: float = 0.1) -> bool:
        """Block up to ``timeout`` while paused (paused time counts neither in elapsed time nor ETA);
        True when the run may go on."""
        return self._running.wait(timeout)


def train(handle: ModelHandle, data: DataSource, config: TrainConfig, *, arch: str,
          out: str | Path | None = None, resume: dict | None = None,
          control: RunControl | None = None, gradient_every: int = 0, sync_bn: bool = False) -> Job[TrainResult]:
    """Train a copy of ``handle``'s model on ``data``; the caller's model is left as it was.

    ``arch`` is the architecture spec written into the checkpoints (``builtin:…``/``torchvision:…``);
    ``resume`` is the ``training`` entry ``read_resume`` returned, whose weights ``handle`` holds.
    ``gradient_every`` > 0 yields a ``GradientFlow`` every that many steps; ``sync_bn`` synchronises
    batch-norm statistics across the ranks of a distributed run (CUDA only, as PyTorch's SyncBatchNorm).
    """
    control = control or RunControl()
    state = resume_state(resume) if resume is not None else None
    if state is not None:
        check_resumable(state, config, handle.class_names, data)
    module = copy.deepcopy(handle.module)
    here = world()
    if sync_bn and here.distributed:
        if handle.device.type != "cuda":
            raise UserError("--sync-bn needs CUDA devices (PyTorch's SyncBatchNorm runs on GPUs only); leave it out "
                            "for CPU processes")
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    set_trainable(module, config.freeze_base, config.unfreeze_top, config.unfreeze_from)
    trained_as = str(out) if out else f"{handle.spec} (trained)"
    model = replace(handle, module=module, class_names=list(data.class_names), trained=True, spec=trained_as,
                    weights=trained_as)
    try:
        with torch.random.fork_rng(devices=[handle.device] if handle.device.type == "cuda" else []):
            return (yield from _run(model, data, config, arch, Path(out) if out else None, state, control,
                                    gradient_every, here))
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
    # Out of memory. Raised out here, not in the handler, so that the error does not carry the failed
    # step's frames (its batch and activations) along: they and the trainer's copy are freed now.
    del model, module
    if handle.device.type == "cuda":
        torch.cuda.empty_cache()
    raise UserError(f"the batch of {config.batch_size} images does not fit in {handle.device}'s memory; "
                    f"try --batch-size {max(1, config.batch_size // 2)}")


def _run(model: ModelHandle, data: DataSource, config: TrainConfig, arch: str, out: Path | None,
         resume: ResumeState | None, control: RunControl, gradient_every: int, here: World) -> Job[TrainResult]:
    """Epoch after epoch until the last one, a stop request or a non-finite step or validation loss."""
    run = _Run(model, data, config, arch, out, resume, control, here)
    if gradient_every and here.main:
        run.flow = FlowRecorder(run.module, gradient_every)
    for epoch in range(run.epochs_done, config.epochs):
        tally = yield from run.train_epoch(epoch)
        if run.stopped:
            break
        yield from run.end_epoch(epoch, tally)
        if run.stopped:
            break
    return run.finish()


@dataclass
class _EpochTally:
    """An epoch's running sums (for its train loss and accuracy) and its smoothed throughput."""

    loss: float = 0.0
    correct: float = 0.0
    seen: float = 0.0
    rate: float | None = None  # images per second
    last: float = field(default_factory=time.monotonic)  # when the last batch ended

    def add(self, count: int, loss: float, correct: float) -> None:
        self.loss += loss * count
        self.correct += correct
        self.seen += count
        now = time.monotonic()
        batch_rate = count / max(now - self.last, 1e-9)
        self.rate = batch_rate if self.rate is None else 0.9 * self.rate + 0.1 * batch_rate
        self.last = now


@dataclass(frozen=True)
class _Totals:
    """A step's figures over the global batch (this process's batch when it runs alone)."""

    count: int
    loss: float  # the mean loss; nan when a rank's loss was not finite
    correct: float
    scale: float = 1.0  # this rank's loss × scale, averaged by DDP over the ranks, is the global batch's mean
    bad_rank: int | None = None  # the first rank whose loss was not finite


class _Run:
    """One run's model, optimiser, schedule and progress (a resumed run's progress goes on from its checkpoint).

    ``stopped`` says why the run ended early; the last good weights (those of the last finished epoch) are
    kept to fall back on, and ``saved``/``best_saved`` are the checkpoints this run wrote.
    """

    def __init__(self, model: ModelHandle, data: DataSource, config: TrainConfig, arch: str, out: Path | None,
                 resume: ResumeState | None, control: RunControl, here: World = World()):
        self.model, self.data, self.config, self.arch, self.out, self.control = model, data, config, arch, out, control
        self.device, self.module, self.world = model.device, model.module, here
        self.global_batch = config.batch_size * here.size
        self.flow: FlowRecorder | None = None
        self.amp = config.autocast_dtype(self.device)
        self.channels_last = config.uses_channels_last(self.device)
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)
        self.pixels = model.pixel_model()
        self.net = self.pixels if not here.distributed else torch.nn.parallel.DistributedDataParallel(
            self.pixels, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.steps_per_epoch = data.steps_per_epoch(config.batch_size, here.size)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.optimizer, self.schedule, self.scaler = self._optimisation(resume)
        self.resumed = resume is not None
        self.history, self.snapshots, self.epochs_done, self.step, elapsed = (
            (resume.history, resume.snapshots, resume.epochs_done, resume.step, resume.elapsed) if resume
            else (History(), [], 0, 0, 0.0))
        self.best_acc, self.best_loss = (resume.best_val_acc, resume.best_val_loss) if resume else (None, None)
        self.final_acc = self.final_loss = None
        self.stopped: str | None = None
        self.saved = self.best_saved = None
        self.good_state = self._weights()
        self.probe, self.probe_label = next(iter(data.val_batches(1)))
        self.started = time.monotonic() - elapsed

    def _optimisation(self, resume: ResumeState | None):
        """The optimiser, schedule and loss scaler of the trainable parameters, as a resumed run left them."""
        if resume is not None and resume.frozen is not None:
            restore_frozen(self.module, resume.frozen)  # the model was reloaded with every parameter trainable
        groups = parameter_groups(self.module, self.config.lr, self.config.base_lr)
        if not groups:
            raise UserError("every layer of the model is frozen, so there is nothing to train; unfreeze some layers")
        optimizer = make_optimizer(self.config, groups)
        schedule = make_schedule(self.config, optimizer, self.steps_per_epoch)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)  # bf16 has fp32's range
        if resume is not None:
            restore_run(resume, optimizer, schedule, scaler)
        return optimizer, schedule, scaler

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    @property
    def _plateau(self) -> bool:
        return isinstance(self.schedule, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def train_epoch(self, epoch: int) -> Job[_EpochTally]:
        """One pass over the training data, yielding each batch's metrics; ``stopped`` is set if it ends early.

        The data order, augmentation and dropout are drawn from (seed, epoch), so a resume repeats them.
        """
        seed = epoch_seed(self.config.seed, epoch) + 2 * self.world.rank  # each rank its own dropout and augmentation
        torch.manual_seed(seed)
        augment_gen = torch.Generator().manual_seed(seed + 1)
        self.module.train()
        for norm in frozen_norms(self.module):
            norm.eval()
        tally = _EpochTally()
        for index, (images, labels) in enumerate(self.data.train_batches(self.config.batch_size, self.config.seed,
                                                                          epoch, self.world.rank, self.world.size)):
            yield from self._wait_while_paused(tally)
            if self.control.stop_requested:
                self.stopped = "stopped by request"
                break
            metrics = self._step(augment_batch(images, self.config.augment, augment_gen), labels, epoch, index, tally)
            if metrics is None:
                break
            yield metrics
            if self.flow is not None and self.flow.last is not None and self.flow.last.step == self.step:
                yield self.flow.last
        return tally

    def _wait_while_paused(self, tally: _EpochTally) -> Job[None]:
        """Wait out a pause, which counts neither in the elapsed time nor in the throughput."""
        if not self.control.paused:
            return
        pause_start = time.monotonic()
        while not self.control.wait(0.1):
            yield Progress(self.step, self.total_steps, "paused")  # lets a GUI worker cancel a paused run
        paused = time.monotonic() - pause_start
        self.started += paused
        tally.last += paused

    def _step(self, images: torch.Tensor, labels: torch.Tensor, epoch: int, index: int,
              tally: _EpochTally) -> BatchMetrics | None:
        """One optimisation step on a batch, and its metrics; None when the step made the loss or a weight
        non-finite (the run then stops with the last good weights)."""
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss, logits, failure = self._forward(images, labels)
        if self.world.distributed:  # the ranks agree on the step's figures (and on memory) before any gradient
            totals = self._reduce(len(labels), *_figures(loss, logits, labels), failure, epoch)
            problem = _loss_problem(totals)
            if not problem:
                self._descend(loss, totals.scale)
                problem = self._weights_problem()
        else:  # the step's figures read at once when all of it is queued: each read waits for a GPU to finish
            self._descend(loss, 1.0)
            loss_value, correct, norms_finite = torch.stack([loss.detach().float(), (logits.argmax(1) == labels).sum(),
                                                             finite_norms(self.module)]).tolist()
            totals = _Totals(len(labels), loss_value, correct)
            problem = _loss_problem(totals) or self._weights_problem(bool(norms_finite))  # the loss, if any, is the cause
        if problem:
            self._diverge(f"{problem} at step {self.step + 1} (epoch {epoch + 1})")
            return None
        if not self._plateau:
            self.schedule.step()
        self.step += 1
        tally.add(totals.count, totals.loss, totals.correct)
        metrics = BatchMetrics(self.step, epoch + (index + 1) / self.steps_per_epoch, totals.loss,
                               totals.correct / totals.count,
                               self.optimizer.param_groups[0]["lr"], tally.rate, tally.last - self.started,
                               (self.total_steps - self.step) * self.global_batch / tally.rate, self.total_steps)
        self.history.add_batch(metrics)
        return metrics

    def _forward(self, images: torch.Tensor, labels: torch.Tensor):
        """(loss, main logits, False), or in a distributed run that ran out of memory (None, None, True), so that
        the other ranks can be told before any of them waits for this one's gradients."""
        try:
            with autocast(self.device, self.amp):
                # autocast computes the cross-entropy in fp32
                loss, logits = training_loss(self.net(images), labels, self.config.aux_weight)
            return loss, logits, False
        except Exception as exc:
            if not (self.world.distributed and is_out_of_memory(exc)):
                raise
        return None, None, True  # the failed step's frames (its batch and activations) are freed by now

    def _reduce(self, count: int, loss_value: float, correct: float, failure: bool, epoch: int) -> _Totals:
        """The step's figures over the global batch; in a distributed run one all-reduce also tells every rank
        whether one ran out of memory (``UserError`` on all) or had a non-finite loss."""
        if not self.world.distributed:
            return _Totals(count, loss_value, correct)
        code = 2 if failure else 0 if math.isfinite(loss_value) else 1
        flags = np.zeros(self.world.size)
        flags[self.world.rank] = code
        local = [count, loss_value * count if code == 0 else 0.0, correct]
        total = all_reduce_sum(np.concatenate([local, flags]))
        flags = total[3:]
        if (flags == 2).any():
            rank = int(np.flatnonzero(flags == 2)[0])
            raise UserError(f"rank {rank} ran out of memory at step {self.step + 1} (epoch {epoch + 1}) with "
                            f"{self.config.batch_size} images per process, so every process was stopped; try "
                            f"--batch-size {max(1, self.config.batch_size // 2)}")
        if flags.any():
            return _Totals(int(total[0]), math.nan, float(total[2]), bad_rank=int(np.flatnonzero(flags)[0]))
        return _Totals(int(total[0]), float(total[1] / total[0]), float(total[2]),
                       count * self.world.size / float(total[0]))

    def _descend(self, loss: torch.Tensor, scale: float) -> None:
        """Backpropagate ``loss`` × ``scale`` (this rank's share of the global batch's mean) and step the optimiser."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss if scale == 1.0 else loss * scale).backward()
        if self.flow is not None and self.flow.due(self.step + 1):
            self.scaler.unscale_(self.optimizer)  # the true gradients; the scaler's step then does not unscale again
            self.flow.before_step()
            self.scaler.step(self.optimizer)
            self.flow.after_step(self.step + 1)
        else:
            self.scaler.step(self.optimizer)
        self.scaler.update()

    def _weights_problem(self, norms_finite: bool | None = None) -> str | None:
        """What went wrong when the weights are not finite (``finite_weights``)."""
        return None if finite_weights(self.module, norms_finite) else "the weights became non-finite"

    def _diverge(self, problem: str) -> None:
        """Stop with the last good weights, saying where they are (never in a file this run did not write)."""
        if self.saved:
            kept = f"the last good weights, of epoch {self.epochs_done}, are kept in {self.saved}"
        elif self.out:
            kept = f"no epoch of this run ended with good weights, so nothing was written to {self.out}"
        elif self.epochs_done:
            kept = f"the model keeps the weights of epoch {self.epochs_done}"
        else:
            kept = "the model keeps the weights it started with"
        self.stopped = f"{problem}; the run was stopped and {kept}; try a lower learning rate"
        self.module.load_state_dict(self.good_state)

    def end_epoch(self, epoch: int, tally: _EpochTally) -> Job[None]:
        """Validate, yield the epoch's metrics and snapshot, and write its checkpoints; a non-finite validation
        loss stops the run with the last good weights instead, so it is never validated as good or written."""
        val_loss, val_acc = evaluate(self.pixels, self.data, self.config.batch_size, self.device, self.amp, self.world)
        if not math.isfinite(val_loss):
            self._diverge(f"the validation loss became {val_loss} after epoch {epoch + 1}")
            return
        if self._plateau:
            self.schedule.step(val_loss)
        self.epochs_done = epoch + 1
        self.final_acc, self.final_loss = val_acc, val_loss
        is_best = self.best_acc is None or val_acc > self.best_acc
        if is_best:
            self.best_acc, self.best_loss = val_acc, val_loss
        metrics = EpochMetrics(self.epochs_done, self.step, val_loss, val_acc, tally.loss / max(tally.seen, 1),
                               tally.correct / max(tally.seen, 1), self.optimizer.param_groups[0]["lr"],
                               time.monotonic() - self.started, is_best)
        self.history.add_epoch(metrics)
        yield metrics
        if self.config.snapshots and self.world.main:
            snapshot = take_snapshot(self.model, self.epochs_done, self.probe[0], int(self.probe_label[0]))
            self.snapshots.append(snapshot)
            yield snapshot
        self.good_state = self._weights()
        if self.out is not None and self.world.main:
            self._save(metrics)

    def _save(self, metrics: EpochMetrics) -> None:
        """The epoch's checkpoint, holding everything a resume needs; the best epoch's is also kept beside it."""
        training = {
            "config": self.config.to_json(), "epochs_done": self.epochs_done, "step": self.step,
            "elapsed": metrics.elapsed_s, "optimizer": plain(self.optimizer.state_dict()),
            "schedule": plain(self.schedule.state_dict()),
            "scaler": plain(self.scaler.state_dict()) if self.scaler.is_enabled() else {},
            "history": self.history.to_tensors(), "snapshots": [snapshot_json(s) for s in self.snapshots],
            "best": {"val_acc": self.best_acc, "val_loss": self.best_loss}, "data": self.data.spec,
            "frozen": frozen_parameters(self.module), "val_acc": metrics.val_acc, "val_loss": metrics.val_loss,
        }
        self.saved = save_state(self.out, self.module, self.arch, self.model, training)
        if metrics.best:
            self.best_saved = save_state(best_path(self.out), self.module, self.arch, self.model, training)

    def finish(self) -> TrainResult:
        """The run's result, its model in eval mode and the usual memory layout (the views expect it)."""
        if self.control.stop_requested and self.stopped is None:
            self.stopped = "stopped by request"
        self.module.eval()
        if self.channels_last:
            self.module.to(memory_format=torch.contiguous_format)
        if self.best_saved is None and self.resumed and self.out is not None and best_path(self.out).exists():
            self.best_saved = best_path(self.out)  # the best epoch was one before the resume
        return TrainResult(self.model, self.history, self.snapshots, self.epochs_done, self.best_acc, self.best_loss,
                           self.final_acc, self.final_loss, self.stopped, self.saved, self.best_saved,
                           dict(self.data.skipped))


def _figures(loss: torch.Tensor | None, logits: torch.Tensor | None, labels: torch.Tensor) -> tuple[float, float]:
    """The step's loss and number of right answers (NaN and 0 when the forward pass failed)."""
    loss_value = math.nan if loss is None else float(loss.detach())
    return loss_value, 0.0 if logits is None else float((logits.argmax(1) == labels).sum())


def _loss_problem(totals: _Totals) -> str | None:
    """What went wrong when the loss of any rank is not finite."""
    if totals.bad_rank is not None:
        return f"the loss became non-finite on rank {totals.bad_rank}"
    if not math.isfinite(totals.loss):
        return f"the loss became {totals.loss}"
    return None


def _float_tensors(module: nn.Module) -> list[torch.Tensor]:
    return [t.detach() for t in itertools.chain(module.parameters(), module.buffers()) if t.is_floating_point()]


def finite_norms(module: nn.Module) -> torch.Tensor:
    """Whether the norm of every floating-point parameter and buffer of ``module`` is finite (a NaN or an
    infinity makes it not), as a flag where they are: one fused norm over them all, not read here."""
    return torch.stack(torch._foreach_norm(_float_tensors(module))).float().isfinite().all()


def finite_weights(module: nn.Module, norms_finite: bool | None = None) -> bool:
    """Whether every floating-point parameter and buffer of ``module`` is finite, given ``finite_norms``'s
    answer when it was read already; only when a norm is not finite (huge finite values can overflow it) are
    the elements checked."""
    if norms_finite is None:
        norms_finite = bool(finite_norms(module))
    if norms_finite:
        return True
    return all(bool(torch.isfinite(t).all()) for t in _float_tensors(module))


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision in ``dtype`` on ``device``; full fp32 when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def evaluate(pixels: nn.Module, data: DataSource, batch_size: int, device: torch.device,
             amp: torch.dtype | None = None, here: World | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on the validation part, in eval mode; in a distributed run each rank
    evaluates its share and the sums are reduced, so every rank gets the whole part's figures.

    Batches are the training batch size: a larger one could run out of memory where training
    fits, and the out-of-memory hint (a smaller training batch) would then not help.
    """
    here = here or world()
    total_loss = correct = seen = 0.0
    with torch.no_grad(), eval_mode(pixels), autocast(device, amp):
        for images, labels in data.val_batches(batch_size, here.rank, here.size):
            images, labels = images.to(device), labels.to(device)
            logits = pixels(images)
            total_loss += float(nn.functional.cross_entropy(logits.float(), labels, reduction="sum"))
            correct += float((logits.argmax(1) == labels).sum())
            seen += len(labels)
    if here.distributed:
        total_loss, correct, seen = map(float, all_reduce_sum([total_loss, correct, seen]))
    return total_loss / max(seen, 1), correct / max(seen, 1)
