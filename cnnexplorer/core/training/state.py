"""What a checkpoint carries to resume a run: optimiser and schedule state, frozen parameters, curves, snapshots.

It is stored in the app checkpoint's ``extra["training"]`` as plain values and tensors, so the
file still loads with ``torch.load(weights_only=True)``; optimiser state gets str keys and lists
on the way in and its int keys and tuples back on the way out. A training state with a missing
entry or a value of the wrong kind is refused with one ``UserError`` before the run starts.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import torch
from torch import nn

from cnnexplorer.core.checkpoints import read_model_file, save_checkpoint
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_handle import ModelHandle
from cnnexplorer.core.checks import check_number
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.curves import History
from cnnexplorer.core.training.data import DataSource
from cnnexplorer.core.training.heads import head_record
from cnnexplorer.core.training.snapshots import Snapshot


def best_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.best{path.suffix}")


def plain(value):
    """Optimiser/schedule state with str keys and lists, so a checkpoint loads with weights_only."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _optimizer_state(state: dict) -> dict:
    """Back from ``_plain``: the per-parameter state is keyed by int, betas are a tuple."""
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in state["param_groups"]]
    return {"state": {int(k): v for k, v in state["state"].items()}, "param_groups": groups}


@dataclass
class ResumeState:
    epochs_done: int
    step: int
    elapsed: float
    optimizer: dict
    schedule: dict
    scaler: dict
    history: History
    snapshots: list[Snapshot]
    best_val_acc: float | None
    best_val_loss: float | None
    frozen: list[str] | None  # None: a checkpoint from before frozen parameters were stored


@contextmanager
def intact(where: str = "the checkpoint"):
    """A missing entry or a value of the wrong kind met inside becomes one ``UserError`` about ``where``."""
    try:
        yield
    except (UserError, KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        detail = f"no entry {exc}" if isinstance(exc, KeyError) else (str(exc) or type(exc).__name__).splitlines()[0]
        raise UserError(f"the training state in {where} is damaged ({detail}); resume from another checkpoint, "
                        "or start a new run from its weights with --model") from None


def read_resume(path: str | Path) -> tuple[dict, TrainConfig]:
    """A checkpoint's training state and the settings it was trained with; ``UserError`` if it cannot resume."""
    file = read_model_file(path)
    training = file.extra.get("training") if file.kind == "checkpoint" else None
    if not training:
        raise UserError(f"{path} holds no training state to resume from; pass a checkpoint written by "
                        "cnnexplorer train (or start a new run with --model)")
    with intact(str(path)):
        config = TrainConfig.from_json(training["config"])
    resume_state(training, str(path))
    return training, config


def saved_progress(training: dict) -> tuple[History, list[Snapshot]]:
    """The curves and snapshots a checkpoint's training state holds (to show them, or to resume)."""
    snapshots = [Snapshot(int(s["epoch"]), None if s.get("filters") is None else s["filters"].numpy(),
                          s["heatmap"].numpy(), str(s["method"])) for s in training.get("snapshots", [])]
    return History.from_tensors(training["history"]), snapshots


def resume_state(training: dict, where: str = "the checkpoint") -> ResumeState:
    with intact(where):
        history, snapshots = saved_progress(training)
        for name in ("epochs_done", "step"):
            check_number(name, training[name], 0, whole=True)
        check_number("elapsed", training["elapsed"], 0)
        best = training.get("best") or {}
        for name, high in (("val_acc", 1), ("val_loss", float("inf"))):
            if best.get(name) is not None:
                check_number(f"best {name}", best[name], 0, high)
        frozen = training.get("frozen")
        if frozen is not None and not (isinstance(frozen, list) and all(isinstance(n, str) for n in frozen)):
            raise UserError(f"frozen must list parameter names, not {frozen!r}")
        if not isinstance(training["data"], str):
            raise UserError(f"data must be a data spec, not {training['data']!r}")
        return ResumeState(
            epochs_done=training["epochs_done"], step=training["step"], elapsed=float(training["elapsed"]),
            optimizer=_optimizer_state(training["optimizer"]), schedule=dict(training["schedule"]),
            scaler=dict(training.get("scaler") or {}), history=history, snapshots=snapshots,
            best_val_acc=best.get("val_acc"), best_val_loss=best.get("val_loss"), frozen=frozen,
        )


def check_resumable(state: ResumeState, config: TrainConfig, class_names: list[str], data: DataSource) -> None:
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


def restore_run(state: ResumeState, optimizer: torch.optim.Optimizer, schedule, scaler: torch.amp.GradScaler) -> None:
    """Load a resumed run's optimiser, schedule and loss-scaler states into the fresh ones made for it."""
    fresh = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "scaler": scaler.state_dict() if scaler.is_enabled() and state.scaler else {}}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    with intact():
        if not _fits({"optimizer": state.optimizer, "schedule": state.schedule, "scaler": state.scaler}, fresh):
            raise UserError("the optimiser, schedule or loss-scaler state holds values of the wrong kind")
        if not all(0 <= index < len(params) and _buffers_fit(entry, params[index])
                   for index, entry in state.optimizer["state"].items()):
            raise UserError("the optimiser state does not fit the model's parameters")
    try:
        optimizer.load_state_dict(state.optimizer)
    except ValueError:
        raise UserError("the checkpoint's optimiser state was saved for other trainable layers; resume with "
                        "the layers frozen as they were, or start a new run from it with --model") from None
    with intact():
        schedule.load_state_dict(state.schedule)
        if state.scaler and scaler.is_enabled():
            scaler.load_state_dict(state.scaler)


def _number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _fits(stored, fresh) -> bool:
    """Whether ``stored`` keeps ``fresh``'s form: numbers stay numbers, dicts and lists hold what they held.

    Entries only one side has (another torch version's) and other values (flags, None, text) are not compared.
    """
    if isinstance(fresh, dict):
        return isinstance(stored, dict) and all(_fits(stored[k], v) for k, v in fresh.items() if k in stored)
    if isinstance(fresh, (list, tuple)):
        return isinstance(stored, (list, tuple)) and all(map(_fits, stored, fresh))
    return _number(stored) if _number(fresh) else True


def _buffers_fit(entry, param: torch.Tensor) -> bool:
    """A parameter's optimiser state holds None, scalars or tensors of the parameter's shape."""
    return isinstance(entry, dict) and all(
        value is None or (torch.is_tensor(value) and (value.dim() == 0 or value.shape == param.shape))
        for value in entry.values())


def snapshot_json(s: Snapshot) -> dict:
    return {"epoch": s.epoch, "method": s.method, "heatmap": torch.from_numpy(s.heatmap.copy()),
            "filters": None if s.filters is None else torch.from_numpy(s.filters.copy())}


def save_state(path: Path, module: nn.Module, arch: str, model: ModelHandle, training: dict) -> Path:
    """The checkpoint of ``module``: its training state, and the new head it has (rebuilt when it is reopened)."""
    head = head_record(module)
    extra = {"training": training} if head is None else {"training": training, "head": head}
    return save_checkpoint(path, module, arch, model.class_names, model.preprocessing, extra)
