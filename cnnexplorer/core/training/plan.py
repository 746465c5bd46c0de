"""What a run will do to its model, said before it starts, and whether its result beats where it started.

A run can fine-tune trained weights (the accuracy often drops at first), start from scratch, replace
the classifier head for the data's classes and freeze parts of the model. ``describe_plan`` says which
in one paragraph, from the request alone, so the Training tab shows it before Start and the CLI prints
it; ``Baseline`` holds the starting model's validation accuracy, measured on the run's own validation
data, so a run that ends worse (or at chance level) does not silently replace the model it started from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.training.transfer import head_name


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
    """One paragraph on what ``request`` (a ``TrainRequest``) will do; ``class_names`` are the data's, if known."""
    if request.resume is not None:
        length = f"up to {request.epochs} epochs" if request.epochs else "its planned epochs"
        return (f"Continues the run saved in {Path(request.resume).name} from its last epoch to {length}, with the "
                "settings and frozen layers it was trained with.")
    handle, config = request.model, request.config
    classes = class_names if class_names is not None else data_class_names(request.data)
    if request.scratch:
        start = f"Trains {handle.spec} from scratch: its weights are re-initialised, so it starts at chance level."
    elif handle.trained:
        start = (f"Fine-tunes {handle.spec}: training continues from its trained weights, so the accuracy may "
                 "drop at first before it recovers.")
    else:
        start = f"Trains {handle.spec} from its untrained (random) weights."
    return " ".join((start, _head(handle, classes), _frozen(handle, config), f"{config.epochs} epoch{'s' if config.epochs > 1 else ''}."))


def _head(handle, classes: list[str] | None) -> str:
    own = len(handle.class_names)
    try:
        head = head_name(handle.module)
    except UserError:
        return "The model has no Linear head to replace."
    if classes is None:
        return (f"Its head ({head}, {own} classes) is kept if the data has the same classes, else replaced by a new "
                "one, initialised at random.")
    if list(classes) == list(handle.class_names):
        return f"It keeps its head ({head}) for the data's {own} classes."
    return (f"Its head ({head}, {own} classes) is replaced by a new one for the data's {len(classes)} classes, "
            "initialised at random, so it starts at chance level.")


def _frozen(handle, config) -> str:
    if config.freeze_base:
        n = config.unfreeze_top
        trained = f"the head and the top {n} block{'s' if n > 1 else ''} are" if n else "the head is"
        return f"Only {trained} trained; the rest is frozen."
    params = list(handle.module.parameters())
    frozen = sum(not p.requires_grad for p in params)
    if frozen:
        return (f"{frozen} of its {len(params)} parameter tensors are frozen (as set in the model tree); the rest "
                "is trained.")
    return "Every layer is trained."


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
