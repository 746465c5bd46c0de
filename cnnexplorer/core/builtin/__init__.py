"""The built-in models: a trained shapes demo and untrained classic architectures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from cnnexplorer.core.builtin.nets import LeNet5, ShapesNet, TinyVGG
from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES
from cnnexplorer.core.model_handle import Preprocessing


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in architecture; ``weights`` is a file in resources/weights, or None if untrained."""

    name: str
    description: str
    factory: Callable[[int], nn.Module]  # num_classes -> untrained module
    class_names: tuple[str, ...]
    preprocessing: Preprocessing
    weights: str | None

    def build(self, num_classes: int | None = None) -> nn.Module:
        """The untrained architecture, for its own classes or ``num_classes``."""
        return self.factory(num_classes or len(self.class_names))


_IMAGE_RGB = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            "shapes",
            "demo CNN trained on generated shapes (64×64 RGB)",
            ShapesNet,
            SHAPE_CLASSES,
            Preprocessing(3, (64, 64), **_IMAGE_RGB),
            "shapes.pt",
        ),
        BuiltinModel(
            "lenet5",
            "LeNet-5 (LeCun 1998), 32×32 grey, untrained",
            LeNet5,
            tuple(str(d) for d in range(10)),
            Preprocessing(1, (32, 32), mean=(0.5,), std=(0.5,)),
            None,
        ),
        BuiltinModel(
            "tinyvgg",
            "CNN Explainer's TinyVGG, 64×64 RGB, untrained",
            TinyVGG,
            tuple(f"class {d}" for d in range(10)),
            Preprocessing(3, (64, 64), **_IMAGE_RGB),
            None,
        ),
    )
}
