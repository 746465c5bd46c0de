"""Transfer-learning surgery: a new classifier head, a frozen base, the top blocks unfrozen.

As the course notes describe it: replace the head for the dataset's classes, train it on a
frozen convolutional base, then unfreeze the top N blocks and fine-tune at a lower rate. A
*block* is a unit one would freeze as a whole: a custom module (a ResNet ``BasicBlock``), a
``Sequential`` of plain layers (conv/BN/ReLU), or a single layer inside a long ``Sequential``
(VGG's ``features``), where a BatchNorm joins the layer before it.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_handle import ModelHandle

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
    """A copy of ``module`` whose head outputs ``num_classes`` (freshly initialised with ``seed``)."""
    model = copy.deepcopy(module)
    name = head_name(model)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    setattr(parent, child, new.to(old.weight.device, old.weight.dtype))
    return model


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


def set_trainable(module: nn.Module, freeze_base: bool, unfreeze_top: int = 0) -> list[str]:
    """Freeze everything but the head and the top ``unfreeze_top`` blocks; returns the trainable modules.

    Without ``freeze_base`` the ``requires_grad`` flags stay as they are (the GUI's tree edits them).
    """
    if not freeze_base:
        return [name for name, m in module.named_modules()
                if any(p.requires_grad for p in m.parameters(recurse=False))]
    head = head_name(module)
    base = [b for b in blocks(module) if not any(head == m or head.startswith(m + ".") for m in b)]
    chosen = base[len(base) - unfreeze_top:] if unfreeze_top > 0 else []
    trainable = [m for b in chosen for m in b] + [head]
    for p in module.parameters():
        p.requires_grad_(False)
    for name in trainable:
        for p in module.get_submodule(name).parameters():
            p.requires_grad_(True)
    return trainable


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


def prepare_model(handle: ModelHandle, class_names: list[str], scratch: bool = False, seed: int = 0) -> ModelHandle:
    """The model to train for ``class_names``: a copy, re-initialised if ``scratch``, with a new head if needed."""
    module = reinitialise(handle.module, seed) if scratch else copy.deepcopy(handle.module)
    if list(handle.class_names) != list(class_names):
        module = replace_head(module, len(class_names), seed)
    return replace(handle, module=module, class_names=list(class_names), trained=not scratch and handle.trained)
