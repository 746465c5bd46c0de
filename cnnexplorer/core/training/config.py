"""The settings of a training run, and the optimiser and learning-rate schedule they make."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.training.augment import Augmentation

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine", "plateau")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # auto: fp16 autocast on CUDA, fp32 elsewhere
CHANNELS_LAST = ("auto", "on", "off")  # auto: on for CUDA
_AUTOCAST = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a run. Defaults are the shapes recipe (≥ 95 % in a few minutes on two cores)."""

    epochs: int = 4
    batch_size: int = 64
    lr: float = 4e-3
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 0.05
    schedule: str = "cosine"
    warmup: float = 0.1  # fraction of all steps with a linear warm-up (step and cosine schedules)
    step_epochs: int = 0  # step schedule: divide the rate by 10 every this many epochs (0: a third of the run)
    freeze_base: bool = False
    unfreeze_top: int = 0
    seed: int = 0
    augment: Augmentation = field(default_factory=Augmentation)
    snapshots: bool = True
    precision: str = "auto"
    channels_last: str = "auto"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer '{self.optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule '{self.schedule}'; choose one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision '{self.precision}'; choose one of {', '.join(PRECISIONS)}")
        if self.channels_last not in CHANNELS_LAST:
            raise UserError(f"channels-last must be one of {', '.join(CHANNELS_LAST)}, not '{self.channels_last}'")
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError("epochs and batch size must be at least 1")
        if not self.lr > 0:
            raise UserError(f"the learning rate must be positive, not {self.lr}")

    def autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        """The mixed-precision type on ``device``, or None for full fp32."""
        auto = "fp16" if device.type == "cuda" else "fp32"
        return _AUTOCAST[auto if self.precision == "auto" else self.precision]

    def uses_channels_last(self, device: torch.device) -> bool:
        return device.type == "cuda" if self.channels_last == "auto" else self.channels_last == "on"

    def to_json(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["augment"] = self.augment.to_json()
        return values

    @classmethod
    def from_json(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        values["augment"] = Augmentation(**values.get("augment", {}))
        return cls(**values)


def make_optimizer(config: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return kind(params, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """Step and cosine schedules are per batch (with warm-up); plateau is stepped with the validation loss."""
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=1)
    total = config.epochs * steps_per_epoch
    warm = max(1, round(config.warmup * total)) if config.schedule != "none" else 1
    every = config.step_epochs or max(1, config.epochs // 3)

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warm)
        if config.schedule == "cosine":
            return ramp * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        if config.schedule == "step":
            return ramp * 0.1 ** (step // (every * steps_per_epoch))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
