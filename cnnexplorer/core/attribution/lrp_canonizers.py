"""Batch norms in front of a ReLU (pre-activation blocks: DenseNet's), made fit for LRP.

A batch norm ``y = s·x + t`` (per channel) that feeds a ReLU that feeds a convolution or a linear
layer cannot be merged into the layer before it, as zennit's canonizers merge the others. Through
the ReLU it moves into the layer after it (Motzkus et al. 2022, "Measurably stronger explanation
reliability via model canonization"): ``relu(s·x + t) = |s|·relu(sign(s)·x + t/|s|)``, so that
layer takes the factor ``|s|`` into its input channels' weights (an average pool in between
commutes with it) and the batch norm is left computing ``sign(s)·x + t/|s|``, the ReLU's input
shifted and, where ``s < 0``, mirrored, through which relevance passes as through any merged batch
norm. The model computes what it computed before.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnexplorer.core.errors import UserError


def preactivation_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """``(batch norm, layer after its ReLU)`` names in torchvision's DenseNet (each dense layer's and
    transition's norm and conv, the last norm and the classifier); none in other models."""
    from torchvision.models import DenseNet
    from torchvision.models.densenet import _DenseLayer, _Transition

    if not isinstance(module, DenseNet):
        return []
    pairs = []
    for name, child in module.named_modules():
        if isinstance(child, _DenseLayer):
            pairs.append((f"{name}.norm1", f"{name}.conv1"))
        elif isinstance(child, _Transition):
            pairs.append((f"{name}.norm", f"{name}.conv"))
    return pairs + [("features.norm5", "classifier")]


class PreActivationMerge:
    """zennit's canonizer interface (``apply`` → handles with ``remove``) for ``preactivation_pairs``."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = pairs

    def apply(self, root: nn.Module) -> list["Moved"]:
        lookup = dict(root.named_modules())
        moved = []
        try:
            for norm, layer in self.pairs:
                moved.append(Moved(norm, lookup[norm], lookup[layer]))
        except BaseException:
            for handle in reversed(moved):
                handle.remove()
            raise
        return moved


class Moved:
    """One batch norm's scale moved into the layer after its ReLU, undone by ``remove``."""

    def __init__(self, name: str, batch_norm: nn.Module, layer: nn.Module):
        if getattr(layer, "groups", 1) != 1:
            raise TypeError(f"{name}: a grouped convolution's input channels are not its weight's second axis")
        self.batch_norm, self.layer = batch_norm, layer
        self.kept = ({k: getattr(batch_norm, k).data for k in ("weight", "bias", "running_mean", "running_var")},
                     batch_norm.eps, layer.weight.data)
        with torch.no_grad():
            scale = batch_norm.weight / torch.sqrt(batch_norm.running_var + batch_norm.eps)
            shift = batch_norm.bias - batch_norm.running_mean * scale
            if not scale.all():
                raise UserError(f"LRP cannot explain this model: batch norm {name} scales a channel by zero, so its "
                                "ReLU cannot be rewritten for relevance; use another heatmap method such as gradcam")
            size = scale.abs()
            batch_norm.weight.data = scale.sign()
            batch_norm.bias.data = shift / size
            batch_norm.running_mean.data = torch.zeros_like(scale)
            batch_norm.running_var.data = torch.ones_like(scale)
            batch_norm.eps = 0.0
            layer.weight.data = layer.weight * size.view(1, -1, *([1] * (layer.weight.ndim - 2)))

    def remove(self) -> None:
        params, eps, weight = self.kept
        for key, value in params.items():
            getattr(self.batch_norm, key).data = value
        self.batch_norm.eps = eps
        self.layer.weight.data = weight
