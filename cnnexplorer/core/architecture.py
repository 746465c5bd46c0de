"""The layer table of a model: output shapes, parameters, MACs and receptive fields.

Everything comes from ONE probe forward (batch 1, eval mode, no grad) watched by a
``TorchDispatchMode``. Seeing every ATen op means MACs are counted wherever they happen (fused
attention included) and receptive fields flow through any graph (residual adds, concatenation,
flatten, squeeze-excitation) instead of assuming a sequential model. Module hooks keep a stack
of the executing module so each op's MACs go to the innermost module that ran it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cnnexplorer.core.errors import UserError, is_out_of_memory
from cnnexplorer.core.model_handle import ModelHandle, eval_mode

Axes = tuple[int, ...]


@dataclass(frozen=True)
class LayerInfo:
    """One row of the table; ``params`` and ``macs`` are totals over the module's subtree."""

    name: str
    type: str
    depth: int
    parent: str | None
    output_shape: tuple[int, ...] | None  # without the batch dim; None if not called in the probe
    params: int
    trainable_params: int
    macs: int
    kernel_size: Axes | None
    stride: Axes | None
    padding: Axes | str | None
    rf_size: int | None
    rf_jump: int | None
    calls: int
    param_formula: str | None
    floored: bool | None = None  # a sliding window whose (W − F + 2P)/S + 1 is not whole; None: not such a layer
    floor_note: str = ""  # the course's arithmetic of that size and what PyTorch did with it

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "depth": self.depth,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "kernel_size": _json_axes(self.kernel_size),
            "stride": _json_axes(self.stride),
            "padding": _json_axes(self.padding),
            "rf_size": self.rf_size,
            "rf_jump": self.rf_jump,
            "calls": self.calls,
            "floored": self.floored,
            "floor_note": self.floor_note,
        }


@dataclass(frozen=True)
class Summary:
    model: str
    input_size: tuple[int, int, int]
    layers: list[LayerInfo]
    total_params: int
    trainable_params: int
    macs: int
    conv_params: int = 0  # the course's split: convolution weights and biases …
    fc_params: int = 0  # … and fully connected ones (Linear layers)
    conv_macs: int = 0
    fc_macs: int = 0

    def layer(self, name: str) -> LayerInfo:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise UserError(f"no layer named '{name}' in {self.model or 'the model'}; "
                        "use a dotted name as listed by `cnnexplorer summary`")

    def to_json(self) -> dict:
        """The ``cnnexplorer summary --json`` object (DESIGN.md §3)."""
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "conv_params": self.conv_params,
            "fc_params": self.fc_params,
            "conv_macs": self.conv_macs,
            "fc_macs": self.fc_macs,
            "layers": [layer.to_json() for layer in self.layers],
        }


def _json_axes(value: Axes | str | None) -> list[int] | str | None:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class _Field:
    """Receptive field of one unit of a tensor, per spatial axis of the input.

    ``flat`` marks a tensor whose feature dimension holds merged spatial positions (after a
    flatten), so a matrix product over it sees the whole input.
    """

    size: Axes
    jump: Axes
    flat: bool = False


_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "var", "std", "logsumexp"}
_VIEWS = {"view", "_unsafe_view", "_reshape_alias"}
_MATMULS = {"mm", "addmm", "bmm", "baddbmm"}
_ATTENTION = ("scaled_dot_product", "_native_multi_head_attention")


def _fit(values: Any, n: int) -> Axes:
    """``values`` (an int or a sequence) as ``n`` per-axis ints; a mismatch uses the largest."""
    values = tuple(int(v) for v in values) if isinstance(values, (list, tuple, torch.Size)) else (int(values),)
    return values if len(values) == n else (max(values),) * n


def _bind(func, args: tuple, kwargs: dict) -> dict:
    """An ATen op's arguments by schema name."""
    bound = dict(kwargs)
    bound.update((arg.name, value) for arg, value in zip(func._schema.arguments, args))
    return bound


def _macs(name: str, args: dict, out: torch.Tensor) -> int:
    """Multiply-accumulates of one op (convolutions, matrix products, attention)."""
    if name == "convolution":
        source = args["input"] if args["transposed"] else out
        return source.numel() * math.prod(args["weight"].shape[1:])
    if name in ("mm", "bmm"):
        return out.numel() * args["self"].shape[-1]
    if name in ("addmm", "baddbmm"):
        return out.numel() * args["mat1" if name == "addmm" else "batch1"].shape[-1]
    if name == "_native_multi_head_attention":
        query, key, dim = args["query"], args["key"], args["embed_dim"]
        return 2 * dim * (query.numel() + key.numel()) + 2 * key.shape[-2] * query.numel()
    if "scaled_dot_product" in name:
        return args["key"].shape[-2] * (args["query"].numel() + out.numel())
    return 0


class _Probe(TorchDispatchMode):
    """Watches the probe forward: a receptive field per tensor, and per module its calls, MACs
    and first output (``enter``/``leave`` are its forward pre- and post-hooks).

    Every tracked tensor is kept referenced until the probe ends, so ``id`` values stay unique.
    """

    def __init__(self, extent: Axes):
        super().__init__()
        self.extent = extent
        self.fields: dict[int, tuple[torch.Tensor, _Field]] = {}
        self.stack: list[nn.Module] = []
        self.calls: dict[nn.Module, int] = defaultdict(int)
        self.macs: dict[nn.Module, int] = defaultdict(int)
        self.first_output: dict[nn.Module, tuple[tuple[int, ...] | None, _Field | None]] = {}
        self.first_input: dict[nn.Module, tuple[int, ...]] = {}
        self.spatial = False  # a convolution or pooling ran: receptive fields mean something

    def track(self, tensor: torch.Tensor, field: _Field) -> None:
        self.fields[id(tensor)] = (tensor, field)

    def field_of(self, value: Any) -> _Field | None:
        entry = self.fields.get(id(value)) if isinstance(value, torch.Tensor) else None
        return entry[1] if entry is not None else None

    def enter(self, module: nn.Module, args: Any) -> None:
        self.stack.append(module)
        self.calls[module] += 1
        tensor = _first_tensor(args)
        if tensor is not None and module not in self.first_input:
            self.first_input[module] = tuple(tensor.shape[2:])

    def leave(self, module: nn.Module, args: Any, output: Any) -> None:
        self.stack.pop()
        if module not in self.first_output:
            tensor = _first_tensor(output)
            shape = tuple(tensor.shape[1:]) if tensor is not None else None
            self.first_output[module] = (shape, self.field_of(tensor))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        if not outputs:
            return out
        name = func.overloadpacket.__name__
        bound = _bind(func, args, kwargs)
        if self.stack:
            self.macs[self.stack[-1]] += _macs(name, bound, outputs[0])
        inputs = [f for f in map(self.field_of, tree_leaves(args)) if f is not None]
        if inputs:
            field = self._propagate(name, bound, inputs, outputs[0])
            for tensor in outputs:
                self.track(tensor, field)
        return out

    def _whole(self, field: _Field) -> _Field:
        return _Field(tuple(map(max, field.size, self.extent)), self.extent, True)

    def _propagate(self, name: str, args: dict, inputs: list[_Field], out: torch.Tensor) -> _Field:
        first = inputs[0]
        n = len(first.size)
        if name == "convolution" and not args["transposed"]:
            kernel = args["weight"].shape[2:]
            return self._window(first, _fit(kernel, n), _fit(args["stride"], n), _fit(args["dilation"], n))
        if "adaptive" in name and "pool" in name:
            return self._adaptive(first, tuple(args["self"].shape[2:]), tuple(out.shape[2:]))
        if "max_pool" in name or "avg_pool" in name:
            kernel = _fit(args["kernel_size"], n)
            stride = _fit(args.get("stride") or kernel, n)
            return self._window(first, kernel, stride, _fit(args.get("dilation", 1), n))
        if name in _REDUCTIONS and _reduces_space(args):
            return self._whole(first)
        if name.startswith(_ATTENTION) or (name in _MATMULS and any(f.flat for f in inputs)):
            return self._whole(first)
        source = args.get("self")
        merges_space = (name in _VIEWS and isinstance(source, torch.Tensor) and source.dim() >= 3
                        and out.dim() >= 1 and out.shape[-1] > source.shape[-1])
        return _Field(
            tuple(max(axis) for axis in zip(*(f.size for f in inputs))),
            tuple(min(axis) for axis in zip(*(f.jump for f in inputs))),
            merges_space or any(f.flat for f in inputs),
        )

    def _window(self, field: _Field, kernel: Axes, stride: Axes, dilation: Axes) -> _Field:
        """A sliding window: rf += (k − 1)·dilation·jump, jump *= stride (per axis)."""
        self.spatial = True
        size = tuple(r + (k - 1) * d * j for r, k, d, j in zip(field.size, kernel, dilation, field.jump))
        return _Field(size, tuple(j * s for j, s in zip(field.jump, stride)), field.flat)

    def _adaptive(self, field: _Field, sizes: Axes, outs: Axes) -> _Field:
        """Adaptive pooling: global when the output is 1×1, else its widest window and step."""
        self.spatial = True
        if all(o == 1 for o in outs) or len(sizes) != len(field.size):
            return self._whole(field)
        kernel = tuple(max(-(-(j + 1) * i // o) - j * i // o for j in range(o)) for i, o in zip(sizes, outs))
        stride = tuple(max(1, i // o) for i, o in zip(sizes, outs))
        return self._window(field, kernel, stride, (1,) * len(kernel))


def _reduces_space(args: dict) -> bool:
    """True for a reduction (mean, sum, max …) over a spatial axis of an image-like tensor."""
    source, dims = args.get("self"), args.get("dim")
    if not isinstance(source, torch.Tensor) or source.dim() < 3 or "other" in args:  # max(a, b) is elementwise
        return False
    if dims is None or dims == []:
        return True
    dims = [dims] if isinstance(dims, int) else dims
    return any(d % source.dim() >= 2 for d in dims)


def _first_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a module returned; for tuples, namedtuples and dicts, the first one."""
    return next((t for t in tree_leaves(output) if isinstance(t, torch.Tensor)), None)


def _ancestors(name: str) -> list[str]:
    """``name`` and every module above it, the root ("") included."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts) + 1)]


def _geometry(module: nn.Module) -> tuple[Axes | None, Axes | None, Axes | str | None]:
    """Kernel, stride and padding of a convolution or pooling module (None for others)."""
    kernel = getattr(module, "kernel_size", None)
    if kernel is None:
        return None, None, None
    type_name = type(module).__name__
    n = len(kernel) if isinstance(kernel, tuple) else int(type_name[-2]) if type_name[-2:-1].isdigit() else 2
    stride = getattr(module, "stride", None) or kernel
    padding = getattr(module, "padding", 0)
    return _fit(kernel, n), _fit(stride, n), padding if isinstance(padding, str) else _fit(padding, n)


def _param_formula(module: nn.Module, params: int) -> str | None:
    """``out × (k·k·in/groups + 1) = total`` for a convolution, ``out × (in + 1)`` for a linear."""
    bias = " + 1" if getattr(module, "bias", None) is not None else ""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        out, per_group, *kernel = module.weight.shape
        return f"{out} × ({'·'.join(map(str, (*kernel, per_group)))}{bias}) = {params:,}"
    if isinstance(module, nn.Linear):
        return f"{module.out_features} × ({module.in_features}{bias}) = {params:,}"
    return None


def summarize(module: nn.Module, input_size: tuple[int, int, int], device: torch.device | str = "cpu",
              model_name: str = "") -> Summary:
    """The layer table of ``module`` for one ``input_size`` (C, H, W) image on ``device``."""
    input_size = tuple(int(v) for v in input_size)
    reference = next((t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()), None)
    dtype = reference.dtype if reference is not None else torch.float32
    probe = _Probe(tuple(input_size[1:]))
    named = dict(module.named_modules())
    handles = []
    try:
        for mod in named.values():
            handles.append(mod.register_forward_pre_hook(probe.enter))
            handles.append(mod.register_forward_hook(probe.leave, always_call=True))
        x = torch.zeros((1, *input_size), dtype=dtype, device=device)
        probe.track(x, _Field((1,) * (len(input_size) - 1), (1,) * (len(input_size) - 1)))
        with torch.no_grad(), eval_mode(module), probe:
            module(x)
    except RuntimeError as exc:
        if is_out_of_memory(exc):
            raise
        size = "×".join(map(str, input_size))
        raise UserError(f"{model_name or type(module).__name__} failed on a {size} input ({exc}); "
                        "give the input size it expects (--input-size C,H,W)") from exc
    finally:
        for handle in handles:
            handle.remove()
        probe.fields.clear()

    macs = dict.fromkeys(named, 0)
    for name, mod in named.items():
        for ancestor in _ancestors(name):
            macs[ancestor] += probe.macs.get(mod, 0)
    layers = [_layer(name, mod, macs[name], probe.calls[mod], *probe.first_output.get(mod, (None, None)),
                     probe.spatial, probe.first_input.get(mod)) for name, mod in named.items()]
    root = layers[0]
    split = _weight_split(named, layers)
    return Summary(model_name, input_size, layers, root.params, root.trainable_params, root.macs, *split)


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_WINDOWS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
            nn.AvgPool3d)


def _weight_split(named: dict[str, nn.Module], layers: list[LayerInfo]) -> tuple[int, int, int, int]:
    """(conv params, fully connected params, conv MACs, fully connected MACs), as the course tabulates them."""
    conv_params = fc_params = conv_macs = fc_macs = 0
    for layer in layers:
        module = named[layer.name]
        if isinstance(module, _CONVS):
            conv_params, conv_macs = conv_params + layer.params, conv_macs + layer.macs
        elif isinstance(module, nn.Linear):
            fc_params, fc_macs = fc_params + layer.params, fc_macs + layer.macs
    return conv_params, fc_params, conv_macs, fc_macs


def _floor(module: nn.Module, spatial: tuple[int, ...] | None) -> tuple[bool | None, str]:
    """Whether a convolution's or pooling's output size was rounded from its input size, and the
    course's arithmetic of the axis where it was (per axis: (W − F_eff + 2P)/S + 1)."""
    from cnnexplorer.core.lab.arithmetic import conv_arithmetic, pool_arithmetic

    if not isinstance(module, _WINDOWS) or not spatial or isinstance(getattr(module, "padding", 0), str):
        return None, ""
    n = len(spatial)
    kernel, stride, padding = _geometry(module)
    dilation = _fit(getattr(module, "dilation", 1), n)
    ceil = bool(getattr(module, "ceil_mode", False))
    for axis, (size, k, s, p, d) in enumerate(zip(spatial, kernel, stride, _fit(padding, n), dilation)):
        if isinstance(module, _CONVS):
            sizes = conv_arithmetic(size, k, s, p, d)
        else:
            sizes = pool_arithmetic(size, k, s, p, d)
        if not sizes.valid and sizes.output >= 1:
            axes = ("depth", "height", "width")[-n:] if n > 1 else ("length",)
            where = f" (along the {axes[axis]})" if len(set(spatial)) > 1 else ""
            rounded = (f"ceil_mode rounds it up to {sizes.ceil_output}" if ceil
                       else f"PyTorch floors it to {sizes.output}")
            unused = (f"; the last {sizes.unused} input row(s)/column(s) are never used"
                      if sizes.unused and not ceil else "")
            return True, f"output size {sizes.formula()}{where} is not whole: {rounded}{unused}"
    return False, ""


def parameter_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts of ``module`` as it is now."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in module.parameters()) - trainable


def _layer(name: str, module: nn.Module, macs: int, calls: int, shape: tuple[int, ...] | None,
           field: _Field | None, spatial: bool, input_spatial: tuple[int, ...] | None = None) -> LayerInfo:
    trainable, frozen = parameter_counts(module)
    params = trainable + frozen
    has_rf = spatial and field is not None
    return LayerInfo(
        name=name,
        type=type(module).__name__,
        depth=name.count(".") + 1 if name else 0,
        parent=name.rpartition(".")[0] if name else None,
        output_shape=shape,
        params=params,
        trainable_params=trainable,
        macs=macs,
        **dict(zip(("kernel_size", "stride", "padding"), _geometry(module))),
        rf_size=max(field.size) if has_rf else None,
        rf_jump=max(field.jump) if has_rf else None,
        calls=calls,
        param_formula=_param_formula(module, params),
        **dict(zip(("floored", "floor_note"), _floor(module, input_spatial))),
    )


def summarize_handle(handle: ModelHandle) -> Summary:
    """The layer table of a loaded model at its own input size."""
    return summarize(handle.module, handle.input_size, handle.device, model_name=handle.spec)
