"""What a checkpoint carries to resume a run: optimiser and schedule state, frozen parameters, curves, snapshots.

It is stored in the app checkpoint's ``extra["training"]`` as plain values and tensors, so the
file still loads with ``torch.load(weights_only=True)``; optimiser state gets str keys and lists
on the way in and its int keys and tuples back on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnexplorer.core.checkpoints import read_model_file, save_checkpoint
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_handle import ModelHandle
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.curves import History
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


def read_resume(path: str | Path) -> tuple[dict, TrainConfig]:
    """A checkpoint's weights and the settings it was trained with; ``UserError`` if it cannot resume."""
    file = read_model_file(path)
    training = file.extra.get("training") if file.kind == "checkpoint" else None
    if not training:
        raise UserError(f"{path} holds no training state to resume from; pass a checkpoint written by "
                        "cnnexplorer train (or start a new run with --model)")
    return training, TrainConfig.from_json(training["config"])


def saved_progress(training: dict) -> tuple[History, list[Snapshot]]:
    """The curves and snapshots a checkpoint's training state holds (to show them, or to resume)."""
    snapshots = [Snapshot(int(s["epoch"]), None if s.get("filters") is None else s["filters"].numpy(),
                          s["heatmap"].numpy(), str(s["method"])) for s in training.get("snapshots", [])]
    return History.from_tensors(training["history"]), snapshots


def resume_state(training: dict) -> ResumeState:
    history, snapshots = saved_progress(training)
    best = training.get("best") or {}
    return ResumeState(
        epochs_done=int(training["epochs_done"]), step=int(training["step"]), elapsed=float(training["elapsed"]),
        optimizer=_optimizer_state(training["optimizer"]), schedule=dict(training["schedule"]),
        scaler=dict(training.get("scaler") or {}), history=history,
        snapshots=snapshots, best_val_acc=best.get("val_acc"), best_val_loss=best.get("val_loss"),
        frozen=training.get("frozen"),
    )


def snapshot_json(s: Snapshot) -> dict:
    return {"epoch": s.epoch, "method": s.method, "heatmap": torch.from_numpy(s.heatmap.copy()),
            "filters": None if s.filters is None else torch.from_numpy(s.filters.copy())}


def save_state(path: Path, module: nn.Module, arch: str, model: ModelHandle, training: dict) -> Path:
    return save_checkpoint(path, module, arch, model.class_names, model.preprocessing, {"training": training})
