"""Where each unit of a layer looks: the box of input pixels that can influence it.

``core/architecture.py`` gives every layer's receptive-field size and jump; a box also needs the
offset of the first unit's field, which padding moves (a 3×3 convolution with padding 1 starts
one pixel before the image). One probe forward under a ``TorchDispatchMode`` follows, per tensor
and spatial axis, the span ``[start + i·jump, start + i·jump + size)`` of input pixels that unit
``i`` can see, through every ATen op: convolutions, pooling and padding move and widen it,
elementwise ops (residual adds, batch norm, ReLU) and concatenation take the union of their
inputs' spans. Anything that mixes positions in a way not modelled here (a global pool, a
flatten into a linear layer, an upsampling, a permutation of the spatial axes) gives the whole
input, which is always a true bound: the box contains every pixel with a non-zero gradient.

Boxes are in the model input's pixels, then mapped back through the preprocessing's resize and
centre crop to the original image's pixels (``image_box``).
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cnnexplorer.core.hooks import find_layers
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing, eval_mode

Box = tuple[int, int, int, int]  # x0, y0, x1, y1: x1 and y1 exclusive, as PIL's crop takes them


@dataclass(frozen=True)
class Span:
    """Along one axis, unit ``i`` sees input pixels ``start + i·jump`` up to ``start + i·jump + size`` (excluded)."""

    start: int
    jump: int
    size: int

    def of(self, i: int) -> tuple[int, int]:
        first = self.start + i * self.jump
        return first, first + self.size


@dataclass(frozen=True)
class Field:
    """The receptive field of a layer's units: one span per spatial axis (rows, columns), or None
    along both when every unit sees the whole input (a vector, a global pool)."""

    rows: Span | None
    cols: Span | None

    def input_box(self, y: int, x: int, extent: tuple[int, int], clip: bool = True) -> Box:
        """The box of the unit at map position ``(y, x)`` in an input of ``extent`` (H, W) pixels;
        unclipped, it may reach past the image (into the padding)."""
        height, width = extent
        y0, y1 = self.rows.of(y) if self.rows is not None else (0, height)
        x0, x1 = self.cols.of(x) if self.cols is not None else (0, width)
        if clip:
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        return x0, y0, x1, y1


WHOLE = Field(None, None)
_MOVING = ("flip", "roll", "upsample", "grid_sampler", "im2col", "col2im", "pixel_shuffle", "pixel_unshuffle",
           "permute", "transpose", "_interp", "fft", "convolution_backward")
_POOLS = ("max_pool2d", "avg_pool2d", "max_pool2d_with_indices")
_PADS = ("constant_pad_nd", "reflection_pad2d", "replication_pad2d", "pad")


def _pair(value: Any, default: int) -> tuple[int, int]:
    """A 2-D kernel, stride, padding or dilation argument as (rows, cols)."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return default, default
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1]))
    return int(value), int(value)


def _window(span: Span, kernel: int, stride: int, padding: int, dilation: int) -> Span:
    """A sliding window over ``span``'s units: its output ``o`` reads units ``o·stride − padding`` to
    ``o·stride − padding + (kernel − 1)·dilation``."""
    return Span(span.start - padding * span.jump, span.jump * stride, span.size + (kernel - 1) * dilation * span.jump)


def _union(fields: list[Field]) -> Field:
    """The field of an elementwise op or a concatenation over channels: every input's pixels."""
    if any(f.rows is None or f.cols is None for f in fields):
        return WHOLE
    return Field(*(_merge([getattr(f, axis) for f in fields]) for axis in ("rows", "cols")))


def _merge(spans: list[Span]) -> Span | None:
    jump = spans[0].jump
    if any(s.jump != jump for s in spans):
        return None  # units step at different rates: no one span holds them; the whole input does
    start = min(s.start for s in spans)
    return Span(start, jump, max(s.start + s.size for s in spans) - start)


def _bind(func, args: tuple, kwargs: dict) -> dict:
    bound = dict(kwargs)
    bound.update((arg.name, value) for arg, value in zip(func._schema.arguments, args))
    return bound


class _Tracer(TorchDispatchMode):
    """Follows each tensor's field through one forward pass; keeps every traced tensor referenced
    until it ends, so ``id`` values stay unique."""

    def __init__(self):
        super().__init__()
        self.fields: dict[int, tuple[torch.Tensor, Field]] = {}

    def field_of(self, value: Any) -> Field | None:
        entry = self.fields.get(id(value)) if isinstance(value, torch.Tensor) else None
        return entry[1] if entry is not None else None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [f for f in map(self.field_of, tree_leaves(args)) if f is not None]
        if inputs:
            outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            if outputs:
                field = self._propagate(func, _bind(func, args, kwargs), inputs, outputs[0])
                for tensor in outputs:
                    self.fields[id(tensor)] = (tensor, field)
        return out

    def _propagate(self, func, args: dict, inputs: list[Field], out: torch.Tensor) -> Field:
        name = func.overloadpacket.__name__
        source = args.get("input", args.get("self"))
        first = self.field_of(source) or inputs[0]
        if first.rows is None or out.dim() != 4:
            return WHOLE
        if name == "convolution":
            if args["transposed"] or out.dim() != 4:
                return WHOLE
            kernel = tuple(args["weight"].shape[2:])
            return self._slide(first, kernel, args["stride"], args["padding"], args["dilation"])
        if name in _POOLS:
            kernel = _pair(args["kernel_size"], 1)
            stride = args.get("stride") or kernel
            return self._slide(first, kernel, stride, args.get("padding", 0), args.get("dilation", 1))
        if "adaptive" in name and "pool" in name:
            return self._adaptive(first, tuple(source.shape[2:]), tuple(out.shape[2:]))
        if name in _PADS:
            pad = list(args.get("pad") or args.get("padding") or [])
            mode = args.get("mode") or ("reflect" if "reflection" in name else
                                        "replicate" if "replication" in name else "constant")
            return self._pad(first, pad, mode)
        if any(word in name for word in _MOVING):
            return WHOLE
        if isinstance(source, torch.Tensor) and source.dim() == 4 and tuple(source.shape[2:]) != tuple(out.shape[2:]):
            return WHOLE  # a slice or view that moves positions
        if name == "cat" and args.get("dim", 0) % 4 >= 2:
            return WHOLE
        return _union(inputs)

    @staticmethod
    def _slide(field: Field, kernel, stride, padding, dilation) -> Field:
        if isinstance(padding, str):
            return WHOLE
        k, s, p, d = _pair(kernel, 1), _pair(stride, 1), _pair(padding, 0), _pair(dilation, 1)
        return Field(*(_window(span, k[a], s[a], p[a], d[a]) for a, span in enumerate((field.rows, field.cols))))

    @staticmethod
    def _adaptive(field: Field, sizes: tuple[int, ...], outs: tuple[int, ...]) -> Field:
        """Adaptive pooling: output ``o`` of ``n`` reads inputs ``⌊o·m/n⌋`` to ``⌈(o+1)·m/n⌉``; one span
        ``o·step`` … ``o·step + width`` with ``step = ⌊m/n⌋`` holds every window."""
        if len(sizes) != 2 or len(outs) != 2 or outs == (1, 1):
            return WHOLE
        spans = []
        for span, m, n in zip((field.rows, field.cols), sizes, outs):
            step = max(1, m // n)
            width = max(-(-(o + 1) * m // n) - o * step for o in range(n))
            spans.append(_window(span, width, step, 0, 1))
        return Field(*spans)

    @staticmethod
    def _pad(field: Field, pad: list[int], mode: str) -> Field:
        """Padding of the last axes by ``[left, right, top, bottom]``: unit ``i`` is input unit ``i − left``.

        A constant pads with values no pixel moves. Replicated and reflected units repeat units from
        inside, up to ``before + after`` (replicate) or twice that (reflect) units away from where the
        shift puts them, so the span widens by that much: a bound for every unit, borders included.
        """
        if mode not in ("constant", "reflect", "replicate"):
            return WHOLE
        widen = {"constant": 0, "replicate": 1, "reflect": 2}[mode]
        sides = [int(v) for v in pad[:4]] + [0] * (4 - len(pad[:4]))
        spans = []
        for span, before, after in ((field.rows, sides[2], sides[3]), (field.cols, sides[0], sides[1])):
            grow = widen * (before + after) * span.jump
            shift = (before + widen * after) * span.jump
            spans.append(Span(span.start - shift, span.jump, span.size + grow))
        return Field(*spans)


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def receptive_fields(handle: ModelHandle) -> dict[str, Field]:
    """Every module's output field (at its first call) for the handle's input size, from one probe
    forward (remembered per model, input size and module structure)."""
    module = handle.module
    key = (handle.input_size, tuple((name, type(m)) for name, m in module.named_modules()))
    with _LOCK:
        known = _CACHE.get(module)
        if known is not None and known["key"] == key:
            return known["fields"]
    fields = _trace(module, handle.input_size, handle.device)
    with _LOCK:
        _CACHE[module] = {"key": key, "fields": fields}
    return fields


def _trace(module: nn.Module, input_size: tuple[int, int, int], device) -> dict[str, Field]:
    reference = next((t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()), None)
    dtype = reference.dtype if reference is not None else torch.float32
    tracer = _Tracer()
    fields: dict[str, Field] = {}
    owner = threading.get_ident()

    def recorder(name: str):
        def hook(mod, args, output):
            tensor = next((t for t in tree_leaves(output) if isinstance(t, torch.Tensor)), None)
            if name not in fields and threading.get_ident() == owner:
                fields[name] = tracer.field_of(tensor) or WHOLE

        return hook

    named = dict(module.named_modules())
    handles = []
    try:
        for name, mod in named.items():
            handles.append(mod.register_forward_hook(recorder(name)))
        x = torch.zeros((1, *input_size), dtype=dtype, device=device)
        tracer.fields[id(x)] = (x, Field(Span(0, 1, 1), Span(0, 1, 1)))
        with torch.no_grad(), eval_mode(module), tracer:
            module(x)
    finally:
        for handle in handles:
            handle.remove()
        tracer.fields.clear()
    return fields


def layer_field(handle: ModelHandle, layer: str) -> Field:
    """The field of ``layer``'s units (``UserError`` for an unknown layer)."""
    find_layers(handle.module, [layer])
    return receptive_fields(handle).get(layer, WHOLE)


def image_box(box: Box, preprocessing: Preprocessing, size: tuple[int, int], clip: bool = True) -> Box:
    """A box in the model input's pixels as the box of the original image (``size``: width, height)
    that the resize and centre crop turn into it, rounded outwards."""
    height, width = preprocessing.size
    if preprocessing.resize is None:
        left, top, right, bottom = 0.0, 0.0, float(size[0]), float(size[1])
    else:
        left, top, right, bottom = preprocessing.crop_box(size)
    sx, sy = (right - left) / width, (bottom - top) / height
    x0, y0 = math.floor(left + box[0] * sx + 1e-9), math.floor(top + box[1] * sy + 1e-9)
    x1, y1 = math.ceil(left + box[2] * sx - 1e-9), math.ceil(top + box[3] * sy - 1e-9)
    if clip:
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(size[0], x1), min(size[1], y1)
    return x0, y0, x1, y1
