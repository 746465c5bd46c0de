"""zennit's LRP rules, run at the cost of their arithmetic.

A zennit composite says which rule each layer gets; zennit then runs each layer's ordinary backward
and throws it away, clones every layer input, and evaluates every term of a rule, even a term
whose input is all zeros (the negative inputs of a layer after a ReLU). Here the same rules, read
from the same hook objects (their input, parameter and output modifiers, gradient mapper and
reducer), run as one autograd ``Function`` per layer call, which replaces the layer's backward
instead of adding to it:

- forward: the layer's own forward, without building its graph;
- backward: each rule term's modified forward and its vector-Jacobian product, skipping a term
  whose modified input is all zeros and whose bias is zeroed (its output and its share of the
  relevance are exactly zero), then the rule's reducer.

For z⁺ after a ReLU that is one extra forward and one backward per convolution, which is what the
rule costs; zennit's hooks spend three of each. Every call of a layer keeps its own input, so a
module used twice (torchvision's ResNet calls one ReLU twice per block) gets each call's relevance.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.modules.utils import _pair
from torch.autograd import Function

_LINEAR_MAPS = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.pooling._AvgPoolNd,
                nn.modules.pooling._AdaptiveAvgPoolNd)
"""Layers that map an all-zero input to their bias: a term with a zero input and no bias is zero."""


_KEPT = "_lrp_rule_keeps"
"""Marks a tensor a rule keeps for its backward pass (an in-place layer after it works on a copy)."""


class _RuleCall(Function):
    """One call of a layer with an LRP rule: the layer's output forward, the rule's relevance backward."""

    @staticmethod
    def forward(ctx, x: Tensor, call: "RuledLayer") -> Tensor:
        kept = getattr(x, _KEPT, False) or x.is_leaf  # an in-place layer must not overwrite these: a copy
        output = call.original(x.clone() if kept and call.in_place else x)
        if output is x:  # an in-place layer (a ReLU passing relevance on): its input is now its output
            ctx.mark_dirty(x)
        ctx.call = call
        if call.needs_output:  # detached (its version counter shared): the output itself would hold this node
            ctx.output, ctx.version = output.detach(), output._version
        if call.needs_input:
            ctx.save_for_backward(x)
            setattr(x, _KEPT, True)
        return output

    @staticmethod
    def backward(ctx, relevance: Tensor):
        x = ctx.saved_tensors[0] if ctx.call.needs_input else None
        output = ctx.output if ctx.call.needs_output and ctx.output._version == ctx.version else None  # None: changed
        return ctx.call.relevance(x, output, relevance), None


class RuledLayer:
    """A layer whose calls go through ``_RuleCall`` with ``rule`` (a zennit ``Hook`` from a composite)."""

    def __init__(self, module: nn.Module, rule) -> None:
        from zennit.core import BasicHook
        from zennit.rules import Pass

        if not isinstance(rule, (BasicHook, Pass)):
            raise TypeError(f"no LRP rule engine for {type(rule).__name__}")
        self.module = module
        self.rule = rule
        self.original = module.forward
        self.fast = _fast_rule(module, rule)
        self.needs_input = isinstance(rule, BasicHook)
        self.needs_output = getattr(self.fast, "func", None) is _epsilon
        self.in_place = getattr(module, "inplace", False) is True
        if self.in_place and self.needs_input:
            module.inplace = self.in_place = False  # it would overwrite the input its rule keeps

    def __call__(self, *args, **kwargs) -> Tensor:
        if len(args) != 1 or kwargs or not isinstance(args[0], Tensor):
            raise TypeError(f"an LRP rule needs a layer of one tensor input, not {type(self.module).__name__}")
        return _RuleCall.apply(args[0], self)

    def relevance(self, x: Tensor, output: Tensor | None, relevance: Tensor) -> Tensor:
        """The relevance reaching the layer's input, ``relevance`` having reached its ``output``."""
        from zennit.core import BasicHook

        if not isinstance(self.rule, BasicHook):  # Pass
            return relevance
        if self.fast is not None:
            return self.fast(self.module, x, output, relevance)
        return self._terms(x, relevance)

    def _terms(self, x: Tensor, relevance: Tensor) -> Tensor:
        """Any zennit ``BasicHook``: each term's modified forward and its vector-Jacobian product."""
        from zennit.core import ParamMod

        rule, inputs, outputs, live = self.rule, [], [], []
        terms = zip(rule.input_modifiers, rule.param_modifiers, rule.output_modifiers)
        with torch.enable_grad():
            for index, (in_mod, param_mod, out_mod) in enumerate(terms):
                modified = in_mod(x.detach())
                param_mod = ParamMod.ensure(param_mod)
                if self._vanishes(modified, param_mod):
                    inputs.append(modified)
                    outputs.append(relevance.new_zeros(()))
                    continue
                modified = modified.requires_grad_(True)
                if type(self.module) in _LINEAR:
                    output = _linear(self.module, modified, *_term_parameters(self.module, index, param_mod))
                else:
                    with param_mod(self.module):
                        output = self.original(modified)
                outputs.append(out_mod(output))
                inputs.append(modified)
                live.append(len(outputs) - 1)
            mapped = rule.gradient_mapper(relevance, outputs)
            mapped = [mapped] if isinstance(mapped, Tensor) else mapped  # one-term rules map to one tensor
            wanted = [i for i in live if mapped[i].any()]
            found = torch.autograd.grad([outputs[i] for i in wanted], [inputs[i] for i in wanted],
                                        [mapped[i] for i in wanted]) if wanted else ()
        gradients: list = [0] * len(outputs)  # a term not passed back contributes input × 0
        for i, gradient in zip(wanted, found):
            gradients[i] = gradient
        return rule.reducer([t.detach() for t in inputs], gradients)

    def _vanishes(self, modified: Tensor, param_mod) -> bool:
        """Whether this term's output is exactly zero: a linear map of an all-zero input, no bias."""
        if not isinstance(self.module, _LINEAR_MAPS) or modified.any():
            return False
        bias = getattr(self.module, "bias", None)
        keys = param_mod.param_keys
        return bias is None or ("bias" in (param_mod.zero_params or []) and (keys is None or "bias" in keys))


def _fast_rule(module: nn.Module, rule):
    """The direct form of ``rule`` on ``module`` when there is one (z⁺, ε and flat on a convolution or a
    linear layer, zennit's ``Norm`` on average pooling, each with zennit's plain stabiliser and the
    parameters it zeroes by default), else None."""
    from zennit.rules import Epsilon, Flat, Norm, ZPlus

    forms = {(ZPlus, _LINEAR, None): _z_plus, (Epsilon, _LINEAR, None): _epsilon, (Norm, _POOLS, None): _epsilon,
             (Flat, _LINEAR, ("bias",)): _flat}
    form = next((f for (kind, layers, zeroed), f in forms.items() if type(rule) is kind and type(module) in layers
                 and all(tuple(getattr(mod, "zero_params", None) or ()) == (zeroed or ())
                         for mod in rule.param_modifiers[:1])), None)
    epsilon = None if form is None else _stabiliser_epsilon(rule)
    return None if epsilon is None else functools.partial(form, epsilon=epsilon)


def signed_stabilise(values: Tensor, epsilon: float) -> Tensor:
    """zennit's ``stabilize``: ``values`` moved ε away from zero (zero itself to +ε), in two passes, not five."""
    return torch.where(values >= 0, values + epsilon, values - epsilon)


def _stabiliser_epsilon(rule) -> float | None:
    """The ε of the rule's stabiliser when it is zennit's plain one (add ε with the sign of the value)."""
    from zennit.core import Stabilizer

    for cell in getattr(rule.gradient_mapper, "__closure__", None) or ():
        value = cell.cell_contents
        if isinstance(value, Stabilizer) and not value.clip and not value.norm_scale and isinstance(value.epsilon, float):
            return value.epsilon
    return None


def _linear(module: nn.Module, x: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, bias)
    if isinstance(module, _POOLS):
        return type(module).forward(module, x)
    return module._conv_forward(x, weight, bias)


def _input_gradient(module: nn.Module, x: Tensor, weight: Tensor | None, gradient: Tensor) -> Tensor:
    """The vector-Jacobian product of the layer's linear map (``weight``) with ``gradient``."""
    if isinstance(module, nn.Linear):
        return gradient.matmul(weight)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return torch.ops.aten._adaptive_avg_pool2d_backward(gradient, x)
    if isinstance(module, nn.AvgPool2d):
        return torch.ops.aten.avg_pool2d_backward(gradient, x, _pair(module.kernel_size), _pair(module.stride),
                                                  _pair(module.padding), module.ceil_mode, module.count_include_pad,
                                                  module.divisor_override)
    if module.padding_mode != "zeros":
        with torch.enable_grad():
            live = x.detach().requires_grad_(True)
            return torch.autograd.grad(module._conv_forward(live, weight, None), live, gradient)[0]
    return torch.ops.aten.convolution_backward(
        gradient, x, weight, None, module.stride, module.padding, module.dilation, False,
        [0] * len(module.stride), module.groups, [True, False, False])[0]


def _epsilon(module: nn.Module, x: Tensor, output: Tensor | None, relevance: Tensor, epsilon: float) -> Tensor:
    """ε (and zennit's ``Norm``, ε as a stabiliser on a pooling layer): ``x ⊙ Wᵀ(R / (z ± ε))`` with the
    layer's own output ``z`` (recomputed if it changed in place)."""
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if output is None:
        output = _linear(module, x, weight, bias)
    share = relevance / signed_stabilise(output, epsilon)
    return _input_gradient(module, x, weight, share).mul_(x)


def _z_plus(module: nn.Module, x: Tensor, output: Tensor | None, relevance: Tensor, epsilon: float) -> Tensor:
    """z⁺: ``x⁺ ⊙ W⁺ᵀs + x⁻ ⊙ W⁻ᵀs`` with ``s = R / (W⁺x⁺ + b⁺ + W⁻x⁻ + ε)`` (the denominator is never
    negative, so zennit's signed ε is +ε); the x⁻ terms only when the input has negative values."""
    positive_weight, positive_bias = _positive_parameters(module)
    negative = bool(x.min() < 0)
    x_plus = x.clamp(min=0) if negative else x
    denominator = _linear(module, x_plus, positive_weight, positive_bias)
    if negative:
        negative_weight, x_minus = module.weight.clamp(max=0), x.clamp(max=0)
        denominator += _linear(module, x_minus, negative_weight, None)
    share = torch.div(relevance, denominator.add_(epsilon), out=denominator)
    found = _input_gradient(module, x_plus, positive_weight, share).mul_(x_plus)
    if negative:
        found += _input_gradient(module, x_minus, negative_weight, share).mul_(x_minus)
    return found


def _flat(module: nn.Module, x: Tensor, output: Tensor | None, relevance: Tensor, epsilon: float) -> Tensor:
    """Flat: ``1ᵀ(R / (z₁ + ε))`` where ``z₁`` counts each output's inputs (all-ones weights and input: it
    depends on the input's shape alone, so it is kept per shape); the relevance does not weigh by ``x``."""
    ones = torch.ones((1, *x.shape[1:]), dtype=x.dtype, device=x.device)

    def counted() -> tuple[Tensor, Tensor]:
        weight = torch.ones_like(module.weight)
        return weight, _linear(module, ones, weight, None).add_(epsilon)

    weight, counts = _kept(module, ("flat", ones.shape), counted)
    return _input_gradient(module, ones.expand_as(x), weight, relevance / counts)


def _term_parameters(module: nn.Module, index: int, param_mod) -> tuple[Tensor, Tensor | None]:
    """The weight and bias of a rule's term ``index`` (zennit's ``param_mod`` of the layer's own)."""
    def modified() -> tuple[Tensor, Tensor | None]:
        with param_mod(module):
            return module.weight.detach(), None if module.bias is None else module.bias.detach()

    return _kept(module, ("term", index), modified)


def _positive_parameters(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """W⁺ and b⁺."""
    return _kept(module, "positive",
                 lambda: (module.weight.clamp(min=0), None if module.bias is None else module.bias.clamp(min=0)))


def _kept(module: nn.Module, key, make):
    """``make()``, computed once per prepared layer and kept on it while its weight stays the same (a
    prepared shadow is rebuilt when the model's weights change)."""
    source = (module.weight.data_ptr(), module.weight._version)
    kept = module.__dict__.setdefault("_lrp_kept", {})
    if key not in kept or kept[key][0] != source:
        kept[key] = (source, make())
    return kept[key][1]


_LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_POOLS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d)


@contextlib.contextmanager
def ruled(module: nn.Module, composite) -> Iterator[list]:
    """``composite``'s canonizers applied to ``module`` and its rules installed on its layers' calls,
    for the block; yields the canonizers' handles. ``module`` is a shadow copy: an in-place layer
    passing relevance on (a ReLU) stays in place except on a tensor a rule keeps, which it gets a
    copy of (as zennit does); any other in-place layer is made out-of-place."""
    from zennit.core import RemovableHandleList

    handles = RemovableHandleList()
    ruled_layers: list[nn.Module] = []
    try:
        for canonizer in composite.canonizers:
            handles += canonizer.apply(module)
        context: dict = {}
        for name, child in module.named_modules():
            template = composite.module_map(context, name, child)
            if template is not None:
                child.forward = RuledLayer(child, template)
                ruled_layers.append(child)
            elif getattr(child, "inplace", False) is True:
                child.inplace = False
        yield handles
    finally:
        for child in ruled_layers:
            del child.forward
        handles.remove()
