"""Guided backpropagation and DeconvNet: backward passes with a modified ReLU rule.

Both change only how gradients go back through ReLUs. Instead of hooking ReLU modules (as
captum does: fine for torchvision ResNet's in-place, reused ``relu`` in captum 0.9, the tests
compare, but blind to ``F.relu``/``torch.relu`` calls in a ``forward``), a torch
function mode swaps every ReLU *call* for an autograd function with the rule, for the block
only and only on the current thread. The model itself is never modified: no flag to restore.
An in-place ReLU stays in place (the rule's output is copied into the tensor).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd import Function
from torch.overrides import TorchFunctionMode


class GuidedReLU(Function):
    """Springenberg et al. 2015: pass back only positive gradients, where the input was positive."""

    @staticmethod
    def forward(ctx, x):
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad.clamp(min=0) * (out > 0)


class DeconvReLU(Function):
    """Zeiler & Fergus 2014: pass back the positive part of the gradient, whatever the input."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


_OUT_OF_PLACE = {F.relu, torch.relu, torch.Tensor.relu}
_IN_PLACE = {F.relu_, torch.relu_, torch.Tensor.relu_}


class relu_rule(TorchFunctionMode):  # noqa: N801 - used like a function: ``with relu_rule(GuidedReLU):``
    """Within the block, every ReLU call on this thread uses ``rule``'s backward pass."""

    def __init__(self, rule: type[Function]):
        super().__init__()
        self.rule = rule

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _OUT_OF_PLACE or func in _IN_PLACE:
            x = args[0]
            inplace = func in _IN_PLACE or kwargs.get("inplace", args[1] if len(args) > 1 else False)
            out = self.rule.apply(x)
            return x.copy_(out) if inplace else out
        return func(*args, **kwargs)
