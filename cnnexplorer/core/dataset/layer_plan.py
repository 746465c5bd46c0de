"""Which layers an index records and what they give, found by one forward pass on the set's first image.

The default layers are every Conv2d and Linear module in the model tree. A chosen layer that does not
run, or whose output ``core.layouts`` cannot read as maps ``[N,C,H,W]`` or a vector ``[N,C]``, is
left out with a note. A module that runs several times in one forward pass is recorded at its first call.

Pooled features are kept for the feature layers; by default the *penultimate* layer (the input of the
model's last Conv2d/Linear, named after the module whose output it is, e.g. ``pool`` or
``classifier.5``; ``LAST:input`` when no module gave it) and the last chosen layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import find_layers, forward_hooks, output_tensors
from cnnexplorer.core.layouts import layout_of
from cnnexplorer.core.model_handle import ModelHandle, eval_mode

INPUT = "input"  # a feature taken from a module's input (the penultimate layer)
OUTPUT = "output"


@dataclass(frozen=True)
class Plan:
    """``layers``: name → (channels, map size or None); ``features``: name → (module, INPUT|OUTPUT)."""

    layers: dict[str, tuple[int, tuple[int, int] | None]]
    features: dict[str, tuple[str, str]]
    classes: int
    notes: list[str] = field(default_factory=list)


def default_layers(handle: ModelHandle) -> list[str]:
    """Every Conv2d/Linear output the model tree shows, in tree order."""
    return [name for name, module in handle.module.named_modules() if name and isinstance(module, (nn.Conv2d, nn.Linear))]


def all_layers(handle: ModelHandle) -> list[str]:
    """Every module of the tree (those without maps are left out by the plan, with a note)."""
    return [name for name, _ in handle.module.named_modules() if name]


def resolve_layers(handle: ModelHandle, layers: list[str] | None) -> list[str]:
    """The chosen layers, checked (an unknown name is a ``UserError`` naming the closest), without repeats, in the
    model tree's order (however they were listed, the same layers are the same index)."""
    names = default_layers(handle) if layers is None else list(dict.fromkeys(layers))
    if not names:
        raise UserError("this model has no Conv2d or Linear layer to index; pass --layers NAME,… or --layers all")
    find_layers(handle.module, names)
    tree = {name: position for position, (name, _) in enumerate(handle.module.named_modules())}
    return sorted(names, key=tree.__getitem__)


def map_shape(root: nn.Module, name: str, tensor: torch.Tensor) -> tuple[int, tuple[int, int] | None] | str:
    """(channels, map size or None) of ``name``'s output ``tensor``, or why it has no maps."""
    try:
        maps = layout_of(root, name).maps(tensor)
    except UserError as exc:
        return str(exc)
    if maps.ndim == 4:
        return int(maps.shape[1]), (int(maps.shape[2]), int(maps.shape[3]))
    if maps.ndim == 2:
        return int(maps.shape[1]), None
    return f"it gives {list(tensor.shape)}, neither maps [N,C,H,W] nor a vector [N,C]"


def plan_index(handle: ModelHandle, pixels: torch.Tensor, layers: list[str],
               feature_layers: list[str] | None) -> Plan:
    """The plan for ``layers`` from one forward pass on ``pixels`` [1,C,H,W]."""
    root = handle.module
    if feature_layers is not None:
        find_layers(root, feature_layers)
    watched = [n for n, _ in root.named_modules() if n] if feature_layers is None else [*layers, *feature_layers]
    modules = dict(zip(watched, find_layers(root, watched)))
    last = _last_layer(root) if feature_layers is None else None
    outputs: dict[str, torch.Tensor] = {}
    order: list[str] = []
    seen_input: list[tuple[int, torch.Tensor]] = []

    def recorder(name: str):
        def hook(module, args, output):
            tensors = output_tensors(output)
            if tensors and name not in outputs:
                outputs[name] = tensors[0]
                order.append(name)
        return hook

    def input_hook(module, args):
        if args and isinstance(args[0], torch.Tensor) and not seen_input:
            seen_input.append((len(order), args[0]))

    handles = []
    try:
        if last is not None:
            handles.append(root.get_submodule(last).register_forward_pre_hook(input_hook))
        with torch.no_grad(), eval_mode(root), forward_hooks([(m, recorder(n)) for n, m in modules.items()]):
            logits = output_tensors(handle.pixel_model()(pixels.to(handle.device)))
    finally:
        for h in handles:
            h.remove()
    notes, kept = [], {}
    for name in layers:
        shape = map_shape(root, name, outputs[name]) if name in outputs else "it does not run in the forward pass"
        if isinstance(shape, str):
            notes.append(f"layer {name} left out: {shape}")
        else:
            kept[name] = shape
    if not kept:
        raise UserError(f"none of the chosen layers can be indexed ({'; '.join(notes)}); choose convolutional or "
                        "linear layers")
    features = _features(root, feature_layers, kept, outputs, order, last, seen_input, notes)
    classes = int(logits[0].reshape(1, -1).shape[1]) if logits else 0
    return Plan(kept, features, classes, notes)


def _last_layer(root: nn.Module) -> str | None:
    names = [n for n, m in root.named_modules() if n and isinstance(m, (nn.Conv2d, nn.Linear))]
    return names[-1] if names else None


def _features(root, feature_layers, kept, outputs, order, last, seen_input, notes) -> dict[str, tuple[str, str]]:
    if feature_layers is not None:
        features = {}
        for name in feature_layers:
            shape = map_shape(root, name, outputs[name]) if name in outputs else "it does not run in the forward pass"
            if isinstance(shape, str):
                raise UserError(f"feature layer {name} cannot be pooled: {shape}; choose a convolutional or linear layer")
            features[name] = (name, OUTPUT)
        return features
    features = {}
    if seen_input:
        position, tensor = seen_input[0]
        features[_producer(tensor, order[:position], outputs, last)] = (last, INPUT)
    features.setdefault(list(kept)[-1], (list(kept)[-1], OUTPUT))
    return features


def _producer(tensor: torch.Tensor, order: list[str], outputs: dict[str, torch.Tensor], last: str) -> str:
    """The last module (before ``last`` runs) whose output holds ``tensor``'s values, else ``LAST:input``."""
    for name in reversed(order):
        out = outputs[name]
        if out.data_ptr() == tensor.data_ptr() and out.numel() == tensor.numel() and not last.startswith(name + "."):
            return name
    return f"{last}:{INPUT}"
