"""Relevance rules for the sums and gates a model computes in its ``forward`` code, not in modules.

zennit gives rules to modules only; a residual ``out + x`` written in ``forward`` would pass
relevance back as a plain gradient (both branches get all of it: the sum's relevance doubles).
zennit's torchvision ResNet canonizer rewrites those blocks to use a ``Sum`` module; here, for
every model (ResNet, the built-ins, MobileNet, EfficientNet, timm's nets), a torch function mode
applies the same rule to the call itself, on the current thread, for the block only: the sum's
relevance is shared in proportion to each term (zennit's ``Norm`` rule on its ``Sum``). A spatial
average in ``forward`` code (MobileNetV2's ``F.adaptive_avg_pool2d``, ShuffleNet's ``x.mean([2, 3])``)
gets the rule an average-pooling module gets (``Norm``: relevance in proportion to each value, not
spread evenly as its gradient would). A product of a map with a broadcast gate
(squeeze-and-excitation: ``scale * x``) passes all relevance to the map, the gate treated as a
constant weight (Arras et al. 2017's "signal-take-all"); a product of two full maps has no rule,
and the model is refused.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from cnnexplorer.core.attribution.lrp_engine import signed_stabilise
from cnnexplorer.core.errors import UserError

_ADD = {torch.add, Tensor.add, Tensor.__add__, Tensor.__radd__}
_ADD_IN_PLACE = {Tensor.add_, Tensor.__iadd__}
_MUL = {torch.mul, Tensor.mul, Tensor.__mul__, Tensor.__rmul__}
_MUL_IN_PLACE = {Tensor.mul_, Tensor.__imul__}
_POOL = {F.adaptive_avg_pool2d, torch.mean, Tensor.mean}
_WATCHED = frozenset(_ADD | _ADD_IN_PLACE | _MUL | _MUL_IN_PLACE | _POOL)
_STABILISER = 1e-6
"""zennit's default stabiliser, the one its ``Norm`` rule uses on a ``Sum`` or a pooling module."""


class SumRule(Function):
    """``a + b``; relevance ``R`` goes back as ``a·R/(a+b)`` and ``b·R/(a+b)`` (stabilised as zennit does)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a + b

    @staticmethod
    def backward(ctx, relevance):
        a, b = ctx.saved_tensors
        share = relevance / signed_stabilise(a + b, _STABILISER)
        return _unbroadcast(a * share, a), _unbroadcast(b * share, b)


class GateRule(Function):
    """``x * gate``; all relevance goes to ``x``, zero to the gate (zero, not None: zennit's rules in
    the gate branch divide what arrives)."""

    @staticmethod
    def forward(ctx, x, gate):
        ctx.gate = (gate.shape, gate.dtype, gate.device)
        return x * gate

    @staticmethod
    def backward(ctx, relevance):
        shape, dtype, device = ctx.gate
        return relevance, torch.zeros(shape, dtype=dtype, device=device)


class PoolRule(Function):
    """A spatial average ``pool(x)``; relevance ``R`` goes back as ``x ⊙ ∂pool/∂x ᵀ(R / pool(x))`` (stabilised
    as zennit does), the ``Norm`` rule zennit gives an average-pooling module."""

    @staticmethod
    def forward(ctx, x, pool):
        ctx.pool = pool
        ctx.save_for_backward(x)
        return pool(x)

    @staticmethod
    def backward(ctx, relevance):
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            live = x.detach().requires_grad_(True)
            pooled = ctx.pool(live)
            (slope,) = torch.autograd.grad(pooled, live, relevance / signed_stabilise(pooled.detach(), _STABILISER))
        return x * slope, None


def _spatial_average(func, args, kwargs) -> bool:
    """Whether the call averages a computed 4-d map over its two spatial axes (or pools it adaptively)."""
    if not args or not _computed(args[0]) or args[0].ndim != 4:
        return False
    if func is F.adaptive_avg_pool2d:
        return True
    dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    return sorted(d % 4 for d in dims) == [2, 3]


def _unbroadcast(values: Tensor, like: Tensor) -> Tensor:
    while values.ndim > like.ndim:
        values = values.sum(0)
    dims = tuple(i for i, size in enumerate(like.shape) if size == 1 and values.shape[i] != 1)
    return values.sum(dims, keepdim=True) if dims else values


def _computed(value) -> bool:
    return isinstance(value, Tensor) and value.grad_fn is not None and value.ndim > 1


class mixing_rules(TorchFunctionMode):  # noqa: N801 - used like a function: ``with mixing_rules():``
    """Within the block, sums, gated products and spatial averages of computed tensors on this thread get LRP rules."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _WATCHED:  # first: this runs for every torch call of the forward pass
            return func(*args, **kwargs)
        if func in _POOL:
            if not _spatial_average(func, args, kwargs):
                return func(*args, **kwargs)
            return PoolRule.apply(args[0], lambda x: func(x, *args[1:], **kwargs))
        if len(args) < 2 or not (_computed(args[0]) and _computed(args[1])) or kwargs.get("alpha", 1) != 1:
            return func(*args, **kwargs)
        a, b = args[0], args[1]
        if func in _ADD or func in _ADD_IN_PLACE:
            out = SumRule.apply(a.clone() if func in _ADD_IN_PLACE else a, b)
        else:
            out = self._gated(a, b)
        return a.copy_(out) if func in _ADD_IN_PLACE or func in _MUL_IN_PLACE else out

    @staticmethod
    def _gated(a: Tensor, b: Tensor) -> Tensor:
        if a.shape == b.shape:
            raise UserError("LRP cannot explain this model: its forward pass multiplies two layer outputs of the same "
                            "shape (attention or a gated unit), which has no relevance rule; use another heatmap "
                            "method such as gradcam")
        x, gate = (a, b) if a.numel() >= b.numel() else (b, a)
        return GateRule.apply(x, gate)
