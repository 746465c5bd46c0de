"""A model's depth as the course counts it: weight layers (convolutions and fully connected) on the
longest path from input to output, so VGG-16 is 16, ResNet-50 is 50 and GoogLeNet 22.

One probe forward (a model on the meta device costs nothing) follows every tensor: an op's output is
as deep as its deepest input, and a convolution or linear module adds one. Shortcuts and parallel
branches are shorter paths, so only the main path counts.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cnnexplorer.core.model_handle import eval_mode

_WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                  nn.Linear)


class _Depths(TorchDispatchMode):
    """Per tensor, the weight layers on its longest path from the input."""

    def __init__(self):
        super().__init__()
        self.depth: dict[int, int] = {}
        self.kept: list[torch.Tensor] = []  # keeps ids unique while the probe runs

    def of(self, value) -> int:
        return max((self.depth.get(id(t), 0) for t in tree_leaves(value) if isinstance(t, torch.Tensor)), default=0)

    def set(self, value, depth: int) -> None:
        for t in tree_leaves(value):
            if isinstance(t, torch.Tensor):
                self.kept.append(t)
                self.depth[id(t)] = max(depth, self.depth.get(id(t), 0))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.set(out, self.of((args, kwargs or {})))
        return out


def weight_depth(module: nn.Module, input_size: tuple[int, int, int], device=None) -> int:
    """The number of convolution and linear layers on ``module``'s longest path, for one
    ``input_size`` (C, H, W) input on ``device`` (default: where its weights are)."""
    reference = next(module.parameters(), None)
    if device is None:
        device = reference.device if reference is not None else "cpu"
    probe = _Depths()

    def leave(mod, args, output):
        probe.set(output, probe.of(args) + 1)

    layers = [m for m in module.modules() if isinstance(m, _WEIGHT_LAYERS)]
    handles = [m.register_forward_hook(leave) for m in layers]
    try:
        x = torch.zeros((1, *input_size), dtype=reference.dtype if reference is not None else torch.float32,
                        device=device)
        with torch.no_grad(), eval_mode(module), probe:
            output = module(x)
        return probe.of(output)
    finally:
        for handle in handles:
            handle.remove()
