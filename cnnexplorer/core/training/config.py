"""The settings of a training run, and the optimiser and learning-rate schedule they make."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.training.augment import Augmentation
from cnnexplorer.core.checks import check_choice, check_flag, check_number
from cnnexplorer.core.training.heads import parse_head

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
    unfreeze_from: str = ""  # with freeze_base: train every base layer from this one onward
    base_lr: float | None = None  # the learning rate of the unfrozen base layers (None: lr)
    head: str = ""  # a new classifier head replacing the model's top, e.g. "256,relu,dropout=0.5"
    binary: bool = False  # one sigmoid output for two classes (binary cross-entropy)
    aux_weight: float = 0.3  # the weight of auxiliary classifiers' losses (GoogLeNet, Inception); 0: off
    seed: int = 0
    augment: Augmentation = field(default_factory=Augmentation)
    snapshots: bool = True
    precision: str = "auto"
    channels_last: str = "auto"

    def __post_init__(self):
        for name, value, choices in (("optimizer", self.optimizer, OPTIMIZERS), ("schedule", self.schedule, SCHEDULES),
                                     ("precision", self.precision, PRECISIONS),
                                     ("channels-last", self.channels_last, CHANNELS_LAST)):
            check_choice(name, value, choices)
        for name, value, low in (("epochs", self.epochs, 1), ("batch-size", self.batch_size, 1),
                                 ("step-epochs", self.step_epochs, 0), ("unfreeze-top", self.unfreeze_top, 0)):
            check_number(name, value, low, whole=True)
        check_number("seed", self.seed, 0, 2**63 - 1, whole=True)
        check_number("lr", self.lr, 0, open_low=True)
        check_number("momentum", self.momentum, 0, 1, open_high=True)
        check_number("weight-decay", self.weight_decay, 0)
        check_number("warmup", self.warmup, 0, 1)
        check_number("aux-weight", self.aux_weight, 0, 1)
        check_flag("freeze-base", self.freeze_base)
        check_flag("binary", self.binary)
        check_flag("snapshots", self.snapshots)
        if self.base_lr is not None:
            check_number("base-lr", self.base_lr, 0, open_low=True)
        parse_head(self.head)
        if not isinstance(self.unfreeze_from, str):
            raise UserError(f"unfreeze-from must name a layer, not {self.unfreeze_from!r}")
        if self.unfreeze_from and self.unfreeze_top:
            raise UserError("give unfreeze-top N or unfreeze-from NAME, not both: each says which base layers train")
        if (self.unfreeze_from or self.unfreeze_top) and not self.freeze_base:
            which = "unfreeze-from NAME" if self.unfreeze_from else "unfreeze-top N"
            raise UserError(f"{which} needs freeze-base (without it every layer is trained)")
        if not isinstance(self.augment, Augmentation):
            raise UserError(f"augment must be an Augmentation, not {self.augment!r}")

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
        """The settings ``to_json`` wrote; names this version does not know are left out."""
        values = _known_fields(cls, values)
        values["augment"] = Augmentation(**_known_fields(Augmentation, values.get("augment", {})))
        return cls(**values)


def _known_fields(cls, values: dict) -> dict:
    if not isinstance(values, dict):
        raise UserError(f"the {cls.__name__} settings must be a dict, not {type(values).__name__}")
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def make_optimizer(config: TrainConfig, params: list[nn.Parameter] | list[dict]) -> torch.optim.Optimizer:
    """The optimiser of ``params``: parameters, or groups of them each with its own ``lr``."""
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
