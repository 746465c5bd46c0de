"""What a batch-norm layer learned: per channel γ, β, the running mean and variance, and the
scale and shift they make at inference, y = γ·(x − mean)/√(var + ε) + β = scale·x + shift."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from cnnexplorer.core.errors import UserError


@dataclass(frozen=True)
class BatchNormStats:
    """One BatchNorm layer's per-channel figures (float64 arrays of ``channels`` values).

    ``gamma``/``beta`` are 1/0 where the layer has no affine parameters; ``running_mean``/
    ``running_var`` are None where it tracks no running statistics (then batch statistics are
    used at inference too and ``scale``/``shift`` are None)."""

    layer: str
    channels: int
    eps: float
    gamma: np.ndarray
    beta: np.ndarray
    running_mean: np.ndarray | None
    running_var: np.ndarray | None
    scale: np.ndarray | None
    shift: np.ndarray | None

    def to_json(self) -> dict:
        as_list = lambda a: None if a is None else a.tolist()  # noqa: E731
        return {"layer": self.layer, "channels": self.channels, "eps": self.eps, "gamma": as_list(self.gamma),
                "beta": as_list(self.beta), "running_mean": as_list(self.running_mean),
                "running_var": as_list(self.running_var), "scale": as_list(self.scale), "shift": as_list(self.shift)}


def batchnorm_stats(module: nn.Module, layer: str = "") -> BatchNormStats:
    """The figures of a BatchNorm1d/2d/3d ``module`` (``layer`` its name, for messages)."""
    if not isinstance(module, nn.modules.batchnorm._BatchNorm):
        raise UserError(f"{layer or 'this layer'} is a {type(module).__name__}, not a batch-norm layer; "
                        "pick a BatchNorm layer in the tree")
    read = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
    n = module.num_features
    gamma = read(module.weight) if module.weight is not None else np.ones(n)
    beta = read(module.bias) if module.bias is not None else np.zeros(n)
    mean = read(module.running_mean) if module.running_mean is not None else None
    var = read(module.running_var) if module.running_var is not None else None
    scale = shift = None
    if mean is not None and var is not None:
        scale = gamma / np.sqrt(var + module.eps)
        shift = beta - scale * mean
    return BatchNormStats(layer, n, float(module.eps), gamma, beta, mean, var, scale, shift)


def batchnorm_layers(module: nn.Module) -> list[str]:
    """The dotted names of every batch-norm layer of ``module``, in order."""
    return [name for name, m in module.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
