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
"""

from __future__ import annotations

import copy
import itertools
import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from cnnexplorer.core.errors import UserError, is_out_of_memory
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle, eval_mode
from cnnexplorer.core.training.augment import augment_batch
from cnnexplorer.core.training.config import TrainConfig, make_optimizer, make_schedule
from cnnexplorer.core.training.curves import History
from cnnexplorer.core.training.data import DataSource, epoch_seed
from cnnexplorer.core.training.snapshots import Snapshot, take_snapshot
from cnnexplorer.core.training.state import (ResumeState, best_path, plain, restore_run, resume_state, save_state,
                                             snapshot_json)
from cnnexplorer.core.training.transfer import frozen_norms, frozen_parameters, restore_frozen, set_trainable


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
          control: RunControl | None = None) -> Job[TrainResult]:
    """Train a copy of ``handle``'s model on ``data``; the caller's model is left as it was.

    ``arch`` is the architecture spec written into the checkpoints (``builtin:…``/``torchvision:…``);
    ``resume`` is the ``training`` entry ``read_resume`` returned, whose weights ``handle`` holds.
    """
    control = control or RunControl()
    state = resume_state(resume) if resume is not None else None
    if state is not None:
        _check_resumable(state, config, handle.class_names, data)
    module = copy.deepcopy(handle.module)
    set_trainable(module, config.freeze_base, config.unfreeze_top)
    trained_as = str(out) if out else f"{handle.spec} (trained)"
    model = replace(handle, module=module, class_names=list(data.class_names), trained=True, spec=trained_as,
                    weights=trained_as)
    try:
        with torch.random.fork_rng(devices=[handle.device] if handle.device.type == "cuda" else []):
            return (yield from _run(model, data, config, arch, Path(out) if out else None, state, control))
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
         resume: ResumeState | None, control: RunControl) -> Job[TrainResult]:
    device, module = model.device, model.module
    amp = config.autocast_dtype(device)
    channels_last = config.uses_channels_last(device)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    pixels = model.pixel_model()
    if resume is not None and resume.frozen is not None:
        restore_frozen(module, resume.frozen)  # the model was reloaded with every parameter trainable
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise UserError("every layer of the model is frozen, so there is nothing to train; unfreeze some layers")
    optimizer = make_optimizer(config, params)
    steps_per_epoch = data.steps_per_epoch(config.batch_size)
    schedule = make_schedule(config, optimizer, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)  # bf16 has fp32's range
    history, snapshots = History(), []
    start_epoch, step, elapsed = 0, 0, 0.0
    best_acc = best_loss = None
    if resume is not None:
        restore_run(resume, optimizer, schedule, scaler)
        history, snapshots = resume.history, resume.snapshots
        start_epoch, step, elapsed = resume.epochs_done, resume.step, resume.elapsed
        best_acc, best_loss = resume.best_val_acc, resume.best_val_loss
    good_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    probe, probe_label = next(iter(data.val_batches(1)))
    total_steps = config.epochs * steps_per_epoch
    final_acc = final_loss = None
    stopped, saved, best_saved = None, None, None
    epochs_done = start_epoch
    started = time.monotonic() - elapsed
    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(epoch_seed(config.seed, epoch))
        augment_gen = torch.Generator().manual_seed(epoch_seed(config.seed, epoch) + 1)
        module.train()
        for norm in frozen_norms(module):
            norm.eval()
        epoch_loss = epoch_correct = epoch_seen = 0.0
        rate, last = None, time.monotonic()
        for index, (images, labels) in enumerate(data.train_batches(config.batch_size, config.seed, epoch)):
            if control.paused:
                pause_start = time.monotonic()
                while not control.wait(0.1):
                    yield Progress(step, total_steps, "paused")  # lets a GUI worker cancel a paused run
                started += time.monotonic() - pause_start
                last += time.monotonic() - pause_start
            if control.stop_requested:
                stopped = "stopped by request"
                break
            images = augment_batch(images, config.augment, augment_gen).to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                logits = pixels(images)
                loss = nn.functional.cross_entropy(logits, labels)  # autocast computes it in fp32
            loss_value = float(loss.detach())
            problem = None if math.isfinite(loss_value) else f"the loss became {loss_value}"
            if problem is None:
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if not finite_weights(module):
                    problem = "the weights became non-finite"
            if problem:
                stopped = _diverged(f"{problem} at step {step + 1} (epoch {epoch + 1})", out, saved, epochs_done)
                module.load_state_dict(good_state)
                break
            if not isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
                schedule.step()
            step += 1
            count = len(labels)
            correct = float((logits.argmax(1) == labels).sum())
            epoch_loss += loss_value * count
            epoch_correct += correct
            epoch_seen += count
            now = time.monotonic()
            batch_rate = count / max(now - last, 1e-9)
            rate = batch_rate if rate is None else 0.9 * rate + 0.1 * batch_rate
            last = now
            lr = optimizer.param_groups[0]["lr"]
            metrics = BatchMetrics(step, epoch + (index + 1) / steps_per_epoch, loss_value, correct / count, lr,
                                   rate, now - started, (total_steps - step) * config.batch_size / rate, total_steps)
            history.add_batch(metrics)
            yield metrics
        if stopped:
            break
        val_loss, val_acc = evaluate(pixels, data, config.batch_size, device, amp)
        if not math.isfinite(val_loss):
            stopped = _diverged(f"the validation loss became {val_loss} after epoch {epoch + 1}", out, saved,
                                epochs_done)
            module.load_state_dict(good_state)
            break
        if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
            schedule.step(val_loss)
        epochs_done = epoch + 1
        final_acc, final_loss = val_acc, val_loss
        is_best = best_acc is None or val_acc > best_acc
        if is_best:
            best_acc, best_loss = val_acc, val_loss
        now = time.monotonic() - started
        epoch_metrics = EpochMetrics(epochs_done, step, val_loss, val_acc, epoch_loss / max(epoch_seen, 1),
                                     epoch_correct / max(epoch_seen, 1), optimizer.param_groups[0]["lr"], now, is_best)
        history.add_epoch(epoch_metrics)
        yield epoch_metrics
        if config.snapshots:
            snapshot = take_snapshot(model, epochs_done, probe[0], int(probe_label[0]))
            snapshots.append(snapshot)
            yield snapshot
        good_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if out is not None:
            training = {
                "config": config.to_json(), "epochs_done": epochs_done, "step": step, "elapsed": now,
                "optimizer": plain(optimizer.state_dict()), "schedule": plain(schedule.state_dict()),
                "scaler": plain(scaler.state_dict()) if scaler.is_enabled() else {}, "history": history.to_tensors(),
                "snapshots": [snapshot_json(s) for s in snapshots],
                "best": {"val_acc": best_acc, "val_loss": best_loss}, "data": data.spec,
                "frozen": frozen_parameters(module),
                "val_acc": val_acc, "val_loss": val_loss,
            }
            saved = save_state(out, module, arch, model, training)
            if is_best:
                best_saved = save_state(best_path(out), module, arch, model, training)
    if control.stop_requested and stopped is None:
        stopped = "stopped by request"
    module.eval()
    if channels_last:
        module.to(memory_format=torch.contiguous_format)  # the views expect the usual layout
    if best_saved is None and resume is not None and out is not None and best_path(out).exists():
        best_saved = best_path(out)  # the best epoch was one before the resume
    return TrainResult(model, history, snapshots, epochs_done, best_acc, best_loss, final_acc, final_loss,
                       stopped, saved, best_saved)


def _check_resumable(state: ResumeState, config: TrainConfig, class_names: list[str], data: DataSource) -> None:
    """Refuse a resume that has nothing to do, or whose model's classes are not the data's."""
    if state.epochs_done >= config.epochs:
        raise UserError(f"the checkpoint's run already has {state.epochs_done} epochs and {config.epochs} were asked "
                        f"for, so there is nothing to train; ask for more (--epochs {state.epochs_done + 1} or more) "
                        "to continue it")
    if list(class_names) != list(data.class_names):
        raise UserError(f"{data.spec} has {_classes(data.class_names)} but the checkpoint was trained on "
                        f"{_classes(class_names)}; resume on the data it was trained on, or start a new run from "
                        f"it with --model CKPT --data {data.spec}")


def _classes(names: list[str]) -> str:
    shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
    return f"{len(names)} classes ({shown})"


def finite_weights(module: nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of ``module`` is finite.

    One sum per tensor, which a NaN or an infinity makes non-finite, and one device sync for them all;
    only when a sum is not finite (huge finite values can overflow it) are the elements checked.
    """
    tensors = [t.detach() for t in itertools.chain(module.parameters(), module.buffers()) if t.is_floating_point()]
    if bool(torch.stack([t.sum().float() for t in tensors]).isfinite().all()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _diverged(problem: str, out: Path | None, saved: Path | None, epochs_done: int) -> str:
    """Why a diverging run stopped and where its last good weights are (never in a file it did not write)."""
    if saved:
        kept = f"the last good weights, of epoch {epochs_done}, are kept in {saved}"
    elif out:
        kept = f"no epoch of this run ended with good weights, so nothing was written to {out}"
    elif epochs_done:
        kept = f"the model keeps the weights of epoch {epochs_done}"
    else:
        kept = "the model keeps the weights it started with"
    return f"{problem}; the run was stopped and {kept}; try a lower learning rate"


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision in ``dtype`` on ``device``; full fp32 when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def evaluate(pixels: nn.Module, data: DataSource, batch_size: int, device: torch.device,
             amp: torch.dtype | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on the validation part, in eval mode.

    Batches are the training batch size: a larger one could run out of memory where training
    fits, and the out-of-memory hint (a smaller training batch) would then not help.
    """
    total_loss = correct = seen = 0.0
    with torch.no_grad(), eval_mode(pixels), autocast(device, amp):
        for images, labels in data.val_batches(batch_size):
            images, labels = images.to(device), labels.to(device)
            logits = pixels(images)
            total_loss += float(nn.functional.cross_entropy(logits.float(), labels, reduction="sum"))
            correct += float((logits.argmax(1) == labels).sum())
            seen += len(labels)
    return total_loss / max(seen, 1), correct / max(seen, 1)
