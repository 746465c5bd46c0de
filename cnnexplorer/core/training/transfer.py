"""Transfer-learning surgery: a new classifier head, a frozen base, the top blocks unfrozen.

As the course notes describe it: replace the head for the dataset's classes (or the whole top by
a new head, ``heads.py``), train it on a frozen convolutional base, then unfreeze the top N blocks
of the base, or every base layer from a named one onward, and fine-tune them at a lower rate. The
*head* trained on a frozen base is the model's top (``heads.top_children``: what follows the
convolutional base), or its final Linear layer where it has no such top. A *block* is a unit one
would freeze as a whole: a custom module (a ResNet ``BasicBlock``), a ``Sequential`` of plain
layers (conv/BN/ReLU), or a single layer inside a long ``Sequential`` (VGG's ``features``), where
a BatchNorm joins the layer before it.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import replace

import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.layers import SigmoidPair
from cnnexplorer.core.model_handle import ModelHandle
from cnnexplorer.core.training.heads import (NewHead, apply_head, has_auxiliary_heads, head_record, no_top_message,
                                             top_children)

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def head_name(module: nn.Module) -> str:
    """The dotted name of the final Linear layer (the classifier head)."""
    linears = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError("the model has no Linear classifier layer, so its head cannot be replaced or trained "
                        "alone; choose another architecture")
    return linears[-1]


def replace_head(module: nn.Module, num_classes: int, seed: int = 0) -> nn.Module:
    """A copy of ``module`` whose head outputs ``num_classes`` (freshly initialised with ``seed``).

    A new head from a spec (``NewHead``) is built again with the same layers for the new classes.
    """
    model = copy.deepcopy(module)
    record = head_record(model)
    name = record["at"] if record is not None else head_name(model)
    old = model.get_submodule(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if record is not None:
            new = NewHead(record["spec"], record["binary"] and num_classes == 2, record["in_features"], num_classes,
                          record["dropped"])
        else:
            new = nn.Linear(old.in_features, _linear_outputs(model, old, num_classes), bias=old.bias is not None)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    weight = next(old.parameters())
    setattr(parent, child, new.to(weight.device, weight.dtype))
    return model


def _linear_outputs(model: nn.Module, old: nn.Linear, num_classes: int) -> int:
    """The width of a new final Linear layer: one logit where a ``SigmoidPair`` shows it as two classes; for
    another class count the pair is removed and the layer gives one score per class."""
    pairs = [name for name, m in model.named_modules() if isinstance(m, SigmoidPair)]
    if not pairs or old.out_features != 1:
        return num_classes
    if num_classes == 2:
        return 1
    for name in pairs:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, nn.Identity())
    return num_classes


def trained_top(module: nn.Module) -> list[str]:
    """What a frozen base leaves trainable: the top's children with parameters, else the final Linear layer."""
    top = [name for name in top_children(module) if _has_params(module.get_submodule(name))]
    return top or [head_name(module)]


def _within(name: str, roots: list[str]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def base_blocks(module: nn.Module) -> list[tuple[str, ...]]:
    """The base's blocks in forward order: ``--unfreeze-top N`` trains the last N of them."""
    top = trained_top(module)
    return [b for b in blocks(module) if not any(_within(m, top) or _within(t, [m]) for m in b for t in top)]


def base_layers(module: nn.Module) -> list[str]:
    """The base's layers with parameters in the order the model lists them (the ``--unfreeze-from`` choices)."""
    top = trained_top(module)
    return [name for name, m in module.named_modules()
            if name and not _within(name, top) and any(True for _ in m.parameters(recurse=False))]


def layers_from(module: nn.Module, name: str) -> list[str]:
    """The base's layers from ``name`` (a layer or a block of them) onward; ``UserError`` if it names none."""
    order = {n: k for k, (n, _) in enumerate(module.named_modules())}
    layers, top = base_layers(module), trained_top(module)
    if name in order and _within(name, top):
        raise UserError(f"{name} is in the model's head ({', '.join(top)}), which a frozen base trains anyway; "
                        f"name a base layer to unfreeze from{_span(layers)}")
    if name not in order or not name:
        names = [n for n in order if n and not _within(n, top)]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"the model has no layer '{name}' to unfreeze from{hint} (name a base layer{_span(layers)})")
    return [n for n in layers if order[n] >= order[name]]


def _span(layers: list[str]) -> str:
    return f": {layers[0]} … {layers[-1]}" if layers else ""


def blocks(module: nn.Module) -> list[tuple[str, ...]]:
    """The model's freezable blocks in forward order, each as its member modules' dotted names."""
    found: list[list[str]] = []
    _collect(module, "", found)
    return [tuple(members) for members in found]


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _collect(module: nn.Module, prefix: str, found: list[list[str]]) -> None:
    after_layer = False
    for name, child in module.named_children():
        if not _has_params(child):
            continue
        full = prefix + name
        inner = list(child.children())
        plain = isinstance(child, _CONTAINERS)
        leaves_only = all(not any(True for _ in c.children()) for c in inner)
        weighted = sum(isinstance(c, (nn.Conv2d, nn.Linear)) for c in inner)
        if plain and (not leaves_only or weighted > 1):
            _collect(child, full + ".", found)
            after_layer = False
        elif isinstance(child, _NORMS) and after_layer:
            found[-1].append(full)  # a norm layer belongs to the layer before it
        else:
            found.append([full])
            after_layer = isinstance(child, (nn.Conv2d, nn.Linear))


def set_trainable(module: nn.Module, freeze_base: bool, unfreeze_top: int = 0, unfreeze_from: str = "") -> list[str]:
    """Freeze everything but the head and the base's top ``unfreeze_top`` blocks, or its layers from
    ``unfreeze_from`` onward; returns the trainable modules.

    Without ``freeze_base`` the ``requires_grad`` flags stay as they are (the GUI's tree edits them).
    """
    if not freeze_base:
        return [name for name, m in module.named_modules()
                if any(p.requires_grad for p in m.parameters(recurse=False))]
    head = trained_top(module)
    if unfreeze_from:
        chosen = layers_from(module, unfreeze_from)
    else:
        base = base_blocks(module)
        chosen = [m for b in (base[len(base) - unfreeze_top:] if unfreeze_top > 0 else []) for m in b]
    trainable = chosen + head
    for p in module.parameters():
        p.requires_grad_(False)
    for name in trainable:
        for p in module.get_submodule(name).parameters():
            p.requires_grad_(True)
    return trainable


def parameter_groups(module: nn.Module, lr: float, base_lr: float | None) -> list[dict]:
    """The trainable parameters as optimiser groups: the head's at ``lr`` first, the base's at ``base_lr``
    (one group at ``lr`` when ``base_lr`` is None); the groups depend only on the model, so a resume
    rebuilds them alike."""
    params = [p for p in module.parameters() if p.requires_grad]
    if base_lr is None:
        return [{"params": params, "lr": lr}] if params else []
    head = {id(p) for name in trained_top(module) for p in module.get_submodule(name).parameters()}
    groups = ({"params": [p for p in params if id(p) in head], "lr": lr},
              {"params": [p for p in params if id(p) not in head], "lr": base_lr})
    return [g for g in groups if g["params"]]


def frozen_parameters(module: nn.Module) -> list[str]:
    """Names of the parameters not trained (tree edits or ``freeze_base``), for a checkpoint to restore."""
    return [name for name, p in module.named_parameters() if not p.requires_grad]


def restore_frozen(module: nn.Module, names: list[str]) -> None:
    """Freeze exactly the parameters ``names`` and train the rest, as the run that saved them did."""
    frozen = set(names)
    for name, p in module.named_parameters():
        p.requires_grad_(name not in frozen)


def frozen_norms(module: nn.Module) -> list[nn.Module]:
    """BatchNorm layers whose parameters are all frozen: they must run in eval mode while training."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
            and not any(p.requires_grad for p in m.parameters(recurse=False))]


def reinitialise(module: nn.Module, seed: int) -> nn.Module:
    """A copy of ``module`` with every layer's parameters drawn afresh (training from scratch)."""
    model = copy.deepcopy(module)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return model


def check_transfer(module: nn.Module, head: str = "", unfreeze_from: str = "", binary: bool = False,
                   classes: list[str] | None = None) -> None:
    """Refuse at once a new head for a model without a top, a layer to unfreeze from that the base lacks,
    or a binary head for other than 2 classes (``classes``: the data's, when known)."""
    if head and not top_children(module):
        raise UserError(no_top_message(module) + "; train it without a head spec")
    if binary and classes is not None and len(classes) != 2:
        shown = ", ".join(classes[:4]) + (", …" if len(classes) > 4 else "")
        raise UserError(f"a binary head (one sigmoid output) needs exactly 2 classes but the data has "
                        f"{len(classes)} ({shown}); drop --binary (the GUI's 'one sigmoid output')")
    if unfreeze_from:
        layers_from(module, unfreeze_from)


def prepare_model(handle: ModelHandle, class_names: list[str], scratch: bool = False, seed: int = 0,
                  head: str = "", binary: bool = False) -> ModelHandle:
    """The model to train for ``class_names``: a copy, re-initialised if ``scratch``, with a new head if needed.

    A ``head`` spec replaces the model's whole top; ``binary`` gives it one sigmoid output (with an empty
    spec, the final Linear layer alone becomes one unit).
    """
    module = reinitialise(handle.module, seed) if scratch else copy.deepcopy(handle.module)
    if head or binary:
        check_transfer(module, head, binary=binary, classes=list(class_names))
        apply_head(module, head, binary, len(class_names), handle.input_size, seed)
    elif list(handle.class_names) != list(class_names):
        module = replace_head(module, len(class_names), seed)
    resize_auxiliary(module, len(class_names), seed)
    return replace(handle, module=module, class_names=list(class_names), trained=not scratch and handle.trained)


def resize_auxiliary(module: nn.Module, classes: int, seed: int = 0) -> None:
    """Give the auxiliary classifiers (GoogLeNet's ``aux1``/``aux2``, Inception's ``AuxLogits``) a final layer
    for ``classes`` classes too, as torchvision builds them for ``num_classes``, so a checkpoint reopens."""
    if not has_auxiliary_heads(module):
        return
    for name, child in module.named_children():
        if child is None or "aux" not in name.lower():
            continue
        linears = [n for n, m in child.named_modules() if isinstance(m, nn.Linear)]
        old = child.get_submodule(linears[-1]) if linears else None
        if old is None or old.out_features == classes:
            continue
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            new = nn.Linear(old.in_features, classes, bias=old.bias is not None)
        parent, _, last = linears[-1].rpartition(".")
        setattr(child.get_submodule(parent) if parent else child, last, new.to(old.weight.device, old.weight.dtype))
