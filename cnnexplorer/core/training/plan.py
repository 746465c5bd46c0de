"""What a run will do to its model, said before it starts, and whether its result beats where it started.

A run can fine-tune trained weights (the accuracy often drops at first), start from scratch, replace
the classifier head for the data's classes (or the whole top by a new head), freeze the base and
unfreeze parts of it, at a rate of their own. ``describe_plan`` says which
in one paragraph, from the request alone, so the Training tab shows it before Start and the CLI prints
it; ``Baseline`` holds the starting model's validation accuracy, measured on the run's own validation
data, so a run that ends worse (or at chance level) does not silently replace the model it started from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.training.heads import NewHead, describe_head, has_auxiliary_heads, top_children
from cnnexplorer.core.training.transfer import base_blocks, check_transfer, head_name, layers_from, trained_top


def data_class_names(spec: str | None) -> list[str] | None:
    """The classes a data spec holds, when they are known without loading it (None otherwise)."""
    kind, _, rest = (spec or "").strip().partition(":")
    if kind == "builtin" and rest == "shapes":
        from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES

        return list(SHAPE_CLASSES)
    if kind == "folder":
        root = Path(rest).expanduser()
        root = root / "train" if (root / "train").is_dir() and (root / "val").is_dir() else root
        try:
            return sorted(p.name for p in root.iterdir() if p.is_dir()) or None
        except OSError:
            return None
    if kind in ("mnist", "fashion-mnist"):
        import torchvision.datasets

        return [str(c) for c in getattr(torchvision.datasets, "MNIST" if kind == "mnist" else "FashionMNIST").classes]
    return None


def describe_plan(request, class_names: list[str] | None = None) -> str:
    """One paragraph on what ``request`` (a ``TrainRequest``) will do; ``class_names`` are the data's, if known.

    ``UserError`` when its transfer settings cannot apply to the model (a layer to unfreeze from that it
    lacks, a new head on a model without a top, a binary head for other than 2 classes).
    """
    if request.resume is not None:
        length = f"up to {request.epochs} epochs" if request.epochs else "its planned epochs"
        return (f"Continues the run saved in {Path(request.resume).name} from its last epoch to {length}, with the "
                "settings and frozen layers it was trained with.")
    handle, config = request.model, request.config
    classes = class_names if class_names is not None else data_class_names(request.data)
    check_transfer(handle.module, config.head, config.unfreeze_from, config.binary, classes)
    if request.scratch:
        start = f"Trains {handle.spec} from scratch: its weights are re-initialised, so it starts at chance level."
    elif handle.trained:
        start = (f"Fine-tunes {handle.spec}: training continues from its trained weights, so the accuracy may "
                 "drop at first before it recovers.")
    else:
        start = f"Trains {handle.spec} from its untrained (random) weights."
    parts = (start, _head(handle, config, classes), _frozen(handle, config), _rates(handle, config),
             _auxiliary(handle, config), f"{config.epochs} epoch{'s' if config.epochs > 1 else ''}.")
    return " ".join(p for p in parts if p)


def _head(handle, config, classes: list[str] | None) -> str:
    own = len(handle.class_names)
    count = len(classes) if classes is not None else None
    if config.head:
        top = top_children(handle.module)
        binary = " (one output for the 2 classes, binary cross-entropy)" if config.binary else ""
        return (f"Its top ({', '.join(top)}) is dropped and a new head takes its place: "
                f"{describe_head(config.head, config.binary, count)}{binary}, initialised at random.")
    try:
        head = _part(handle.module, head_name(handle.module))
    except UserError:
        return "The model has no Linear head to replace."
    if config.binary:
        return (f"Its output layer ({head}) becomes one unit with a sigmoid for the 2 classes (binary "
                "cross-entropy), initialised at random.")
    if classes is None:
        return (f"Its head ({head}, {own} classes) is kept if the data has the same classes, else replaced by a new "
                "one, initialised at random.")
    if list(classes) == list(handle.class_names):
        return f"It keeps its head ({head}) for the data's {own} classes."
    return (f"Its head ({head}, {own} classes) is replaced by a new one for the data's {len(classes)} classes, "
            "initialised at random, so it starts at chance level.")


def _part(module, name: str) -> str:
    """``name`` as the plan says it: a head made from a head spec sits where the first part it replaced was (a
    reopened checkpoint's ``avgpool`` may be one), so it is named for what it is."""
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        at = ".".join(parts[:end])
        head = module.get_submodule(at)
        if isinstance(head, NewHead):
            what = f"the new head at {at}: {describe_head(head.spec, head.binary, head.classes)}"
            return what if at == name else f"{name}, the last layer of {what}"
    return name


def _frozen(handle, config) -> str:
    if config.freeze_base:
        top = ", ".join(_part(handle.module, name) for name in trained_top(handle.module))
        head = "the new head" if config.head else f"the head ({top})"
        if config.unfreeze_from:
            layers = layers_from(handle.module, config.unfreeze_from)
            return (f"Only {head} and the base's {len(layers)} layers from {config.unfreeze_from} on "
                    f"({layers[0]} … {layers[-1]}) are trained; the base before them is frozen.")
        n = config.unfreeze_top
        if n:
            chosen = [b[0] for b in base_blocks(handle.module)][-n:]
            return (f"Only {head} and the top {n} block{'s' if n > 1 else ''} of the base ({', '.join(chosen)}) "
                    "are trained; the rest is frozen.")
        return f"Only {head} is trained; the base is frozen."
    params = list(handle.module.parameters())
    frozen = sum(not p.requires_grad for p in params)
    if frozen:
        return (f"{frozen} of its {len(params)} parameter tensors are frozen (as set in the model tree); the rest "
                "is trained.")
    return "Every layer is trained."


def _rates(handle, config) -> str:
    if config.base_lr is None:
        return ""
    if config.freeze_base and not (config.unfreeze_from or config.unfreeze_top):
        return f"The base's learning rate ({config.base_lr:g}) is not used: the whole base is frozen."
    return (f"The base's trained layers learn at {config.base_lr:g}, the head at {config.lr:g} (two optimiser "
            "parameter groups).")


def _auxiliary(handle, config) -> str:
    if not has_auxiliary_heads(handle.module):
        return ""
    if config.aux_weight:
        return f"Its auxiliary classifiers' losses are added, weighted {config.aux_weight:g}."
    return "Its auxiliary classifiers' losses are left out (weight 0)."


@dataclass(frozen=True)
class Baseline:
    """The starting model's validation accuracy on the run's data, and the chance level of that data."""

    val_acc: float
    classes: int
    val_size: int

    def falls_short(self, val_acc: float | None) -> bool:
        """Whether a run's final accuracy is missing, worse than the start, or within sampling noise of chance."""
        if val_acc is None or not math.isfinite(val_acc):
            return True
        chance = 1 / max(self.classes, 1)
        noise = 2 * math.sqrt(chance * (1 - chance) / max(self.val_size, 1))
        return val_acc < self.val_acc or val_acc <= chance + noise
