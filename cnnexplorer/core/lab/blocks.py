"""Find the course's design blocks in a real model, so the lab can link each trade-off to the tree.

One probe forward (no grad, eval mode; a model on the meta device costs nothing) records which
convolution feeds which: a convolution's output is followed through the unary layers after it
(batch norm, activations, dropout — they return the same or a new tensor from one input) to the
next convolution that reads it. Pooling, additions and concatenations end a chain. On these
chains the blocks are plain patterns:

- ``stacked_3x3``: two or more 3×3 convolutions in a row (VGG, ResNet's basic block);
- ``bottleneck``: 1×1, k×k, then a 1×1 that widens past the first (ResNet-50's block);
- ``depthwise_separable``: a depthwise convolution (one kernel per map) then a 1×1 (MobileNet);
- ``reduction_1x1``: a 1×1 that reduces the maps before a larger kernel (inception), outside a bottleneck;
- ``factorised``: a 1×n and an n×1 in a row or side by side on the same input (Inception v3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cnnexplorer.core.model_handle import eval_mode

KINDS = ("stacked_3x3", "bottleneck", "depthwise_separable", "reduction_1x1", "factorised")
KIND_TEXT = {
    "stacked_3x3": "stacked 3×3 convolutions: the view of a larger kernel with fewer weights",
    "bottleneck": "bottleneck: 1×1 reduces the maps, 3×3 works on few, 1×1 restores them",
    "depthwise_separable": "depthwise-separable: one kernel per map, then a 1×1 mixes the maps",
    "reduction_1x1": "1×1 reduction before a larger kernel (inception)",
    "factorised": "factorised convolution: 1×n and n×1 instead of n×n",
}
_PASS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish, nn.ELU,
         nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Dropout2d, nn.Identity, nn.GroupNorm, nn.PReLU, nn.Mish, nn.Hardsigmoid)


@dataclass(frozen=True)
class Block:
    """One block: its ``kind`` (one of ``KINDS``) and its convolutions' dotted ``layers`` in order;
    ``layer`` is the first, the one to select in the tree."""

    kind: str
    layers: tuple[str, ...]

    @property
    def layer(self) -> str:
        return self.layers[0]

    @property
    def text(self) -> str:
        return KIND_TEXT[self.kind]


class _InPlaceMixing(TorchDispatchMode):
    """Forgets a convolution's output once another tensor is mixed into it in place (a residual
    ``out += identity``); a unary in-place op (``relu_``) keeps it."""

    def __init__(self, source: dict[int, str]):
        super().__init__()
        self.source = source

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name.endswith("_") and args and isinstance(args[0], torch.Tensor) and id(args[0]) in self.source:
            if any(isinstance(a, torch.Tensor) for a in tree_leaves((args[1:], kwargs or {}))):
                del self.source[id(args[0])]
        return out


def _conv_graph(module: nn.Module, input_size: tuple[int, int, int], device) -> tuple[list[str], dict, dict]:
    """The convolutions in the order they ran, each one's feeding convolution (or None) and the
    id of the tensor it read."""
    convs = {m: n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)}
    order: list[str] = []
    source: dict[int, str] = {}  # tensor id -> the convolution whose output it still is
    feeder: dict[str, str | None] = {}
    read: dict[str, int] = {}
    kept: list = []  # every tensor seen stays alive, so ids stay unique

    def after(mod, args, output):
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        kept.extend((args[0], output))
        feeding = source.get(id(args[0]))
        if mod in convs:
            name = convs[mod]
            if name not in feeder:
                order.append(name)
                feeder[name], read[name] = feeding, id(args[0])
            source[id(output)] = name
        elif feeding is not None:
            source[id(output)] = feeding

    watched = [m for m in module.modules() if m in convs or isinstance(m, _PASS)]
    handles = [m.register_forward_hook(after) for m in watched]
    try:
        reference = next(module.parameters(), None)
        dtype = reference.dtype if reference is not None else torch.float32
        with torch.no_grad(), eval_mode(module), _InPlaceMixing(source):
            module(torch.zeros((1, *input_size), dtype=dtype, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return order, feeder, read


def _shape(conv: nn.Conv2d) -> tuple[int, int]:
    return tuple(conv.kernel_size)


def find_blocks(module: nn.Module, input_size: tuple[int, int, int], device=None) -> list[Block]:
    """The design blocks of ``module`` (in the order they run) for one probe input of ``input_size``
    (C, H, W) on ``device`` (default: where the module's weights are; a meta-device model works)."""
    if device is None:
        reference = next(module.parameters(), None)
        device = reference.device if reference is not None else "cpu"
    order, feeder, read = _conv_graph(module, input_size, device)
    mods = dict(module.named_modules())
    conv = {name: mods[name] for name in order}
    nexts: dict[str, list[str]] = {name: [] for name in order}
    for name in order:
        if feeder[name] is not None:
            nexts[feeder[name]].append(name)

    def is_3x3(n: str) -> bool:
        return _shape(conv[n]) == (3, 3) and conv[n].groups == 1

    def is_1x1(n: str) -> bool:
        return _shape(conv[n]) == (1, 1) and conv[n].groups == 1

    def reduces(n: str) -> bool:
        return is_1x1(n) and conv[n].out_channels < conv[n].in_channels

    blocks: list[Block] = []
    in_bottleneck: set[str] = set()
    for name in order:
        middle = [m for m in nexts[name] if max(_shape(conv[m])) > 1]
        for mid in middle if is_1x1(name) else []:
            last = [n for n in nexts[mid] if is_1x1(n) and conv[n].out_channels > conv[name].out_channels]
            if last:
                blocks.append(Block("bottleneck", (name, mid, last[0])))
                in_bottleneck.update((name, mid, last[0]))
    for name in order:
        c = conv[name]
        if c.groups > 1 and c.groups == c.in_channels:
            pointwise = [n for n in nexts[name] if is_1x1(n)]
            if pointwise:
                blocks.append(Block("depthwise_separable", (name, pointwise[0])))
        if reduces(name) and name not in in_bottleneck:
            larger = [n for n in nexts[name] if max(_shape(conv[n])) > 1 and conv[n].groups == 1]
            if larger:
                blocks.append(Block("reduction_1x1", (name, larger[0])))
        if is_3x3(name) and not (feeder[name] and is_3x3(feeder[name])):
            chain = [name]
            while len(follow := [n for n in nexts[chain[-1]] if is_3x3(n)]) == 1:
                chain.append(follow[0])
            if len(chain) > 1:
                blocks.append(Block("stacked_3x3", tuple(chain)))
        kh, kw = _shape(c)
        if min(kh, kw) == 1 < max(kh, kw):
            partners = [n for n in nexts[name] if _shape(conv[n]) == (kw, kh)]
            if kh == 1:  # side by side on one input (Inception v3's last blocks), found once from the 1×n
                partners += [n for n in order if n != name and read[n] == read[name] and _shape(conv[n]) == (kw, kh)]
            blocks.extend(Block("factorised", (name, p)) for p in partners[:1])
    position = {name: i for i, name in enumerate(order)}
    return sorted(blocks, key=lambda b: (position[b.layer], KINDS.index(b.kind)))


def blocks_of_handle(handle) -> list[Block]:
    """The blocks of a loaded model at its own input size."""
    return find_blocks(handle.module, handle.input_size, handle.device)
