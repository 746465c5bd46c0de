"""Interventions: channels of a layer switched off, set to their dataset mean, scaled, or kept alone.

An edit never changes the model: it is a forward hook that returns an edited *copy* of the layer's
output (so an in-place ReLU after the layer, or the layer being an in-place ReLU, edits nothing of
the caller's), installed for a block (``applied``) or until its owner removes it (``Installed``),
always removed in ``finally``. The channel axis comes from ``core/layouts`` (axis 1 for maps and
vectors, the last axis for channels-last stages, tokens and windows).

The text form, one layer per ``--ablate``:

* ``LAYER:0,5,9-12``      the channels set to zero (ranges inclusive);
* ``LAYER:0,5=mean``      set to their dataset mean (the caller gives the means: ``with_means``);
* ``LAYER:3*0.5``         scaled by a factor (``LAYER:0-3*2`` for several);
* ``LAYER:keep=1,2``      every other channel set to zero.

The sweep (``sweep_job``) zeroes each channel of a layer in turn, a batch of copies of the image
at a time, one channel per row through one hook with a per-row mask, and ranks the channels by
how much the target's probability drops.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from dataclasses import dataclass, replace
from typing import Iterable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import find_layers, forward_hooks
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.layouts import layout_of
from cnnexplorer.core.model_handle import ModelHandle, eval_mode

MODES = ("zero", "mean", "scale", "keep")
SPEC_HELP = ("LAYER:0,5,9-12 switches channels off (zero); LAYER:0,5=mean sets them to the dataset mean; "
             "LAYER:3*0.5 scales them; LAYER:keep=1,2 keeps only those")


@dataclass(frozen=True)
class Edit:
    """One layer's edit: ``mode`` (one of ``MODES``) on ``channels``; ``factor`` for ``scale``;
    ``values`` (one per channel, in order) for ``mean`` once the means are known."""

    layer: str
    channels: tuple[int, ...]
    mode: str = "zero"
    factor: float = 0.0
    values: tuple[float, ...] | None = None

    def spec(self) -> str:
        """The edit as ``--ablate`` text (``parse_edit(e.spec()) == e`` up to the mean values)."""
        channels = _ranges(self.channels)
        if self.mode == "keep":
            return f"{self.layer}:keep={channels}"
        if self.mode == "mean":
            return f"{self.layer}:{channels}=mean"
        if self.mode == "scale":
            return f"{self.layer}:{channels}*{self.factor:g}"
        return f"{self.layer}:{channels}"

    def words(self) -> str:
        """How the badge and menus say it: ``conv2: 3, 5 off``."""
        channels = ", ".join(_ranges(self.channels).split(","))
        said = {"zero": f"{channels} off", "mean": f"{channels} at the mean", "scale": f"{channels} × {self.factor:g}",
                "keep": f"only {channels} kept"}[self.mode]
        return f"{self.layer}: {said}"

    def to_json(self) -> dict:
        data = {"layer": self.layer, "channels": list(self.channels), "mode": self.mode}
        if self.mode == "scale":
            data["factor"] = self.factor
        if self.values is not None:
            data["values"] = list(self.values)
        return data

    @staticmethod
    def from_json(data: dict) -> "Edit":
        mode = str(data["mode"])
        if mode not in MODES:
            raise ValueError(f"unknown intervention mode {mode!r}")
        values = data.get("values")
        return Edit(str(data["layer"]), tuple(int(c) for c in data["channels"]), mode, float(data.get("factor", 0.0)),
                    None if values is None else tuple(float(v) for v in values))


Edits = tuple[Edit, ...]


def _ranges(channels: Sequence[int]) -> str:
    """``0,5,9-12`` for channels 0, 5, 9, 10, 11, 12."""
    parts, ordered = [], sorted(set(channels))
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            first, last = ordered[start], ordered[i - 1]
            parts.append(str(first) if first == last else f"{first}-{last}")
            start = i
    return ",".join(parts)


def parse_edit(text: str) -> Edit:
    """An ``--ablate`` text as an ``Edit`` (see the module notes); ``UserError`` naming the problem."""
    layer, sep, spec = str(text).strip().rpartition(":")
    if not sep or not layer or not spec:
        raise UserError(f"--ablate '{text}' needs LAYER:CHANNELS ({SPEC_HELP})")
    if spec.startswith("keep="):
        return Edit(layer, _channels(text, spec[len("keep="):]), "keep")
    if spec.endswith("=mean"):
        return Edit(layer, _channels(text, spec[:-len("=mean")]), "mean")
    if "*" in spec:
        channels, _, factor = spec.partition("*")
        try:
            value = float(factor)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise UserError(f"--ablate '{text}': the scale factor '{factor}' is not a finite number (e.g. {layer}:3*0.5)")
        return Edit(layer, _channels(text, channels), "scale", value)
    return Edit(layer, _channels(text, spec), "zero")


def _channels(text: str, listed: str) -> tuple[int, ...]:
    found: list[int] = []
    for part in listed.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise UserError(f"--ablate '{text}': '{part}' is not a channel number or a range like 9-12 "
                            f"({SPEC_HELP})") from None
        if low < 0 or high < low:
            raise UserError(f"--ablate '{text}': '{part}' is not a channel range (channels count from 0, ranges go up)")
        found.extend(range(low, high + 1))
    return tuple(dict.fromkeys(found))


def parse_edits(texts: Iterable[str]) -> Edits:
    return tuple(parse_edit(t) for t in texts)


def describe(edits: Edits) -> str:
    """A stable text of the edits, ``''`` when there are none: for cache keys (an index made on an
    edited model is another index) and reports. Mean values are part of it."""
    parts = []
    for edit in edits:
        values = "" if edit.values is None else "[" + ",".join(f"{v:.9g}" for v in edit.values) + "]"
        parts.append(edit.spec() + values)
    return "; ".join(parts)


def with_means(edits: Edits, means: Mapping[str, Sequence[float]]) -> Edits:
    """The edits with every ``mean`` edit's values filled from ``means`` (layer → per-channel means);
    ``UserError`` when a layer's means are missing or a channel is beyond them."""
    done = []
    for edit in edits:
        if edit.mode == "mean" and edit.values is None:
            if edit.layer not in means:
                raise UserError(f"no dataset means for layer {edit.layer}: index a dataset with that layer first "
                                "(or switch the channels off instead of =mean)")
            layer_means = means[edit.layer]
            _check_range(edit, len(layer_means))
            edit = replace(edit, values=tuple(float(layer_means[c]) for c in edit.channels))
        done.append(edit)
    return tuple(done)


def _check_range(edit: Edit, count: int) -> None:
    outside = [c for c in edit.channels if c >= count]
    if outside:
        raise UserError(f"--ablate {edit.spec()}: layer {edit.layer} has channels 0-{count - 1}; "
                        f"channel {outside[0]} does not exist")


def _channel_axis(root: nn.Module, name: str) -> int:
    return 1 if layout_of(root, name).kind == "maps" else -1


def edit_tensor(edit: Edit, output: Tensor, axis: int) -> Tensor:
    """``output`` with ``edit`` applied along ``axis``: a new tensor, ``output`` is left as it was."""
    if not isinstance(output, Tensor) or output.ndim < 2:
        raise UserError(f"layer {edit.layer} does not give a tensor of channels; edit a convolutional layer or a block")
    count = output.shape[axis]
    _check_range(edit, count)
    if edit.mode == "mean" and edit.values is None:
        raise UserError(f"{edit.spec()} needs the dataset's means of {edit.layer}; index a dataset with that layer")
    index = torch.tensor(edit.channels, dtype=torch.long, device=output.device)
    selected = torch.zeros(count, dtype=torch.bool, device=output.device)
    selected[index] = True
    if edit.mode == "keep":
        selected = ~selected
    shape = [1] * output.ndim
    shape[axis] = count
    if edit.mode == "scale":
        replaced = output * edit.factor
    elif edit.mode == "mean":
        fill = torch.zeros(count, dtype=output.dtype, device=output.device)
        fill[index] = torch.tensor(edit.values, dtype=output.dtype, device=output.device)
        replaced = fill.view(shape).expand_as(output)
    else:
        replaced = torch.zeros((), dtype=output.dtype, device=output.device)
    return torch.where(selected.view(shape), replaced, output)


_INSTALLED: "weakref.WeakKeyDictionary[nn.Module, list[Installed]]" = weakref.WeakKeyDictionary()


def active_edits(module: nn.Module) -> Edits:
    """The edits installed on ``module`` now: what a result computed from it depends on besides its weights
    (the dataset index folds ``describe`` of them into its cache key)."""
    return tuple(edit for installed in _INSTALLED.get(module, ()) for edit in installed.edits)


class Installed:
    """Edits installed as forward hooks on ``module`` until ``remove()`` (the GUI's owner keeps
    one while the user's edits are on; ``applied`` wraps one in ``try``/``finally``)."""

    def __init__(self, module: nn.Module, edits: Edits):
        self.edits = tuple(edits)
        self._module = weakref.ref(module)
        self._handles = []
        by_layer: dict[str, list[Edit]] = {}
        for edit in self.edits:
            by_layer.setdefault(edit.layer, []).append(edit)
        layers = find_layers(module, by_layer)
        try:
            for (name, layer_edits), layer in zip(by_layer.items(), layers):
                self._handles.append(layer.register_forward_hook(_hook(layer_edits, _channel_axis(module, name))))
        except BaseException:
            self.remove()
            raise
        _INSTALLED.setdefault(module, []).append(self)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        module = self._module()
        if module is not None and self in _INSTALLED.get(module, ()):
            _INSTALLED[module].remove(self)


def _hook(edits: list[Edit], axis: int):
    def hook(module, args, output):
        for edit in edits:
            output = edit_tensor(edit, output, axis)
        return output

    return hook


@contextlib.contextmanager
def applied(module: nn.Module, edits: Edits) -> Iterator[None]:
    """The block runs ``module`` with ``edits`` on; the hooks are gone after, whatever happens."""
    installed = None
    try:
        installed = Installed(module, edits) if edits else None
        yield
    finally:
        if installed is not None:
            installed.remove()


@dataclass(frozen=True)
class SweepResult:
    """Each channel of ``layer`` switched off alone: the target's probability then, ranked by the
    drop from ``base`` (the probability with the layer intact), largest drop first."""

    layer: str
    target: int
    base: float
    channels: tuple[int, ...]
    probs: tuple[float, ...]

    @property
    def drops(self) -> tuple[float, ...]:
        return tuple(self.base - p for p in self.probs)


def sweep_job(handle: ModelHandle, pixels: Tensor, layer: str, target: int | None = None, batch: int = 64,
              edits: Edits = ()) -> Job[SweepResult]:
    """Switch off each channel of ``layer`` in turn for one image ``[C,H,W]`` or ``[1,C,H,W]`` in [0,1].

    The image is repeated over a batch; one hook zeroes channel ``first + row`` in row ``row``. ``target``:
    a class index (default: the top class of the image with ``edits`` on, which stay on throughout).
    """
    image = (pixels[None] if pixels.ndim == 3 else pixels)[:1].to(handle.device)
    module = handle.module
    found = find_layers(module, [layer])[0]
    axis = _channel_axis(module, layer)
    model = handle.pixel_model()
    state: dict[str, object] = {}

    def hook(_, args, output):
        if not isinstance(output, Tensor) or output.ndim < 2:
            raise UserError(f"layer {layer} does not give a tensor of channels; sweep a convolutional layer or a block")
        state["count"] = output.shape[axis]
        first = state.get("first")
        if first is None:
            return output
        rows = output.shape[0]
        channels = torch.arange(first, first + rows, device=output.device)
        mask = torch.arange(output.shape[axis], device=output.device)[None, :] != channels[:, None]
        shape = [rows] + [1] * (output.ndim - 1)
        shape[axis] = output.shape[axis]
        return output * mask.view(shape).to(output.dtype)

    probs: list[float] = []
    with torch.no_grad(), eval_mode(module), applied(module, edits):
        registered = found.register_forward_hook(hook)
        try:
            base_probs = torch.softmax(model(image).float(), dim=1)[0]
            target = int(base_probs.argmax()) if target is None else int(target)
            count = int(state["count"])
            for first in range(0, count, batch):
                yield Progress(first, count, f"sweep of {layer}: channel {first} of {count}")
                rows = min(batch, count - first)
                state["first"] = first
                out = torch.softmax(model(image.expand(rows, *image.shape[1:])).float(), dim=1)[:, target]
                probs.extend(out.tolist())
        finally:
            registered.remove()
    base = float(base_probs[target])
    order = sorted(range(len(probs)), key=lambda c: (-(base - probs[c]), c))
    return SweepResult(layer, target, base, tuple(order), tuple(probs[c] for c in order))


def channel_means_job(handle: ModelHandle, probe, layers: Sequence[str], limit: int = 512,
                      batch: int = 64) -> Job[dict[str, tuple[float, ...]]]:
    """Each layer's per-channel mean over every position of the first ``limit`` images of a probe set
    (what ``=mean`` sets a channel to when no dataset index gives the means)."""
    layers = list(dict.fromkeys(layers))
    modules = find_layers(handle.module, layers)
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = {}

    def recorder(name: str):
        axis = _channel_axis(handle.module, name)

        def hook(_, args, output):
            values = output.detach().float().movedim(axis, -1).reshape(-1, output.shape[axis])
            sums[name] = sums.get(name, 0) + values.sum(0).cpu()
            counts[name] = counts.get(name, 0) + values.shape[0]
        return hook

    total = min(limit, len(probe))
    model = handle.pixel_model()
    with torch.no_grad(), eval_mode(handle.module), forward_hooks([(m, recorder(n)) for n, m in zip(layers, modules)]):
        for first, pixels, _ in probe.batches(handle.preprocessing, batch):
            if first >= total:
                break
            yield Progress(first, total, "dataset means of the edited layers")
            model(pixels[:total - first].to(handle.device))
    return {name: tuple(float(v) for v in sums[name] / counts[name]) for name in layers}
