"""Gradient flow while training: per-layer gradient norms and update/weight ratios, every k steps.

A deep plain net's early layers get vanishing gradients; residual shortcuts keep them flowing. The
loop measures this for free: after backward (and after DDP's all-reduce, so the gradients are the
global batch's) it reads each trainable layer's ``.grad`` norm, and copies the weights before the
optimiser's step to get ‖Δw‖ / ‖w‖ after it (the course's rule of thumb: about 1e-3). No extra
forward or backward pass. A "layer" is a module with parameters of its own (a convolution, a
linear layer, a batch norm), named by its dotted path; its norm is over all its trainable tensors.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnexplorer.core.outputs import atomic_write_bytes


@dataclass(frozen=True)
class GradientFlow:
    """One step's figures, one entry per layer (``layers``' order is the model's)."""

    step: int  # 1-based, as BatchMetrics.step
    layers: tuple[str, ...]
    grad_norms: np.ndarray  # float64 [L]: ‖∇w‖ of each layer's trainable tensors together
    update_ratios: np.ndarray  # float64 [L]: ‖Δw‖ / ‖w‖ of the optimiser's step (nan where ‖w‖ = 0)


def trainable_layers(module: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """Each module with trainable parameters of its own, in model order, with those parameters."""
    layers = []
    for name, child in module.named_modules():
        params = [p for p in child.parameters(recurse=False) if p.requires_grad]
        if params:
            layers.append((name or "(model)", params))
    return layers


def _norms(tensors: list[list[torch.Tensor]]) -> np.ndarray:
    """The 2-norm of each group of tensors, with one device sync for all."""
    flat = [t for group in tensors for t in group]
    if not flat:
        return np.zeros(len(tensors))
    squares = torch.stack([torch.linalg.vector_norm(t.detach().float()) ** 2 for t in flat]).cpu().numpy()
    sizes = np.cumsum([0] + [len(group) for group in tensors])
    return np.sqrt(np.array([squares[a:b].sum() for a, b in zip(sizes[:-1], sizes[1:])], dtype=np.float64))


class FlowRecorder:
    """Measures a module's layers every ``every`` steps: ``before_step`` after backward, ``after_step`` after the
    optimiser; ``last`` is the latest ``GradientFlow``."""

    def __init__(self, module: nn.Module, every: int = 1):
        self.every = max(1, int(every))
        self.layers = trainable_layers(module)
        self.names = tuple(name for name, _ in self.layers)
        self.last: GradientFlow | None = None
        self._grads: np.ndarray | None = None
        self._before: list[list[torch.Tensor]] = []

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def before_step(self) -> None:
        grads = [[p.grad for p in params if p.grad is not None] for _, params in self.layers]
        self._grads = _norms(grads)
        self._before = [[p.detach().clone() for p in params] for _, params in self.layers]

    def after_step(self, step: int) -> GradientFlow:
        deltas = [[p.detach() - old for p, old in zip(params, before)]
                  for (_, params), before in zip(self.layers, self._before)]
        weights = _norms(self._before)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(weights > 0, _norms(deltas) / weights, math.nan)
        self._before = []
        self.last = GradientFlow(step, self.names, self._grads, ratios)
        return self.last


@dataclass
class GradientLog:
    """The ``GradientFlow`` records of a run, for the CSV export (one row per step and layer)."""

    records: list[GradientFlow] = field(default_factory=list)

    def add(self, record: GradientFlow) -> None:
        self.records.append(record)

    def write_csv(self, path: str | Path) -> Path:
        """Columns step, layer, grad_norm, update_ratio; written atomically."""
        buffer = io.StringIO()
        out = csv.writer(buffer, lineterminator="\n")
        out.writerow(["step", "layer", "grad_norm", "update_ratio"])
        for record in self.records:
            for name, grad, ratio in zip(record.layers, record.grad_norms, record.update_ratios):
                out.writerow([record.step, name, f"{grad:.6g}", f"{ratio:.6g}"])
        path = Path(path)
        atomic_write_bytes(path, buffer.getvalue().encode())
        return path
