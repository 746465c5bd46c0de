"""The built-in models: the trained shapes demo and LeNet-5, and the classic architectures the course teaches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn
from torchvision.models import AlexNet_Weights

from cnnexplorer.core.builtin.course_nets import AlexNetOriginal, CatsDogs, KerasMNIST, KerasMNISTDropout, ZFNet
from cnnexplorer.core.builtin.digits_data import DIGIT_CLASSES
from cnnexplorer.core.builtin.nets import LeNet5, ShapesNet, TinyVGG
from cnnexplorer.core.builtin.residual_nets import residual_factory
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
_KERAS_GREY = dict(mean=(0.0,), std=(1.0,))  # Keras' rescale=1/255: the [0,1] pixels themselves
_IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), resize=256)
_IMAGENET_CLASSES = tuple(AlexNet_Weights.DEFAULT.meta["categories"])


def _shapes_twin(depth: int, shortcuts: bool) -> BuiltinModel:
    """An untrained residual net for the shapes data, or its plain twin (same layers, no shortcuts)."""
    kind = "resnet" if shortcuts else "plainnet"
    what = ("with identity shortcuts (zero-padded where the width doubles, so no extra weights)" if shortcuts
            else "the same layers without shortcuts")
    return BuiltinModel(f"{kind}-shapes-{depth}",
                        f"{depth}-layer CIFAR-style ResNet for the shapes (64×64 RGB → 16/8/4 px, 8/16/32 maps), {what}; "
                        "untrained: the course's degradation experiment (docs/course-lab.md)",
                        residual_factory(depth, shortcuts), SHAPE_CLASSES, Preprocessing(3, (64, 64), **_IMAGE_RGB),
                        None)


SHAPES_TWINS = ((8, False), (20, False), (20, True), (32, False), (32, True))

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
            "LeNet-5 (LeCun et al. 1998): 32×32 grey → 28/14/10/5/1 → 120 → 84 → 10, 61,706 parameters; trained on "
            "real handwritten digits (builtin:digits, white on black as MNIST): all 355 held-out digits right",
            LeNet5,
            DIGIT_CLASSES,
            Preprocessing(1, (32, 32), mean=(0.5,), std=(0.5,)),
            "lenet5.pt",
        ),
        BuiltinModel(
            "tinyvgg",
            "CNN Explainer's TinyVGG, 64×64 RGB, untrained",
            TinyVGG,
            tuple(f"class {d}" for d in range(10)),
            Preprocessing(3, (64, 64), **_IMAGE_RGB),
            None,
        ),
        BuiltinModel(
            "keras_mnist",
            "Keras MNIST convnet (Chollet, Deep Learning with Python §5.1): 28×28 grey → 26/13/11/5/3 → Dense 64 → "
            "10, 93,322 parameters, untrained",
            KerasMNIST,
            DIGIT_CLASSES,
            Preprocessing(1, (28, 28), **_KERAS_GREY),
            None,
        ),
        BuiltinModel(
            "keras_mnist_dropout",
            "Keras examples' MNIST CNN (mnist_cnn.py): 28×28 grey → 26/24 → pool 12 → dropout 0.25 → Dense 128 → "
            "dropout 0.5 → 10, 1,199,882 parameters, untrained",
            KerasMNISTDropout,
            DIGIT_CLASSES,
            Preprocessing(1, (28, 28), **_KERAS_GREY),
            None,
        ),
        BuiltinModel(
            "cats_dogs",
            "Cats-vs-dogs CNN (Chollet, Deep Learning with Python §5.2): 150×150 RGB → 148/74/72/36/34/17/15/7 "
            "(32, 64, 128, 128 maps) → Dense 512 → one sigmoid output, 3,453,121 parameters, untrained",
            CatsDogs,
            ("cats", "dogs"),  # the course's folder names (train/cats, train/dogs), so its data keeps this head
            Preprocessing(3, (150, 150), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
            None,
        ),
        BuiltinModel(
            "zfnet",
            "ZFNet (Zeiler & Fergus 2013): 224×224 RGB → 96 7×7 stride 2 → 110/55 → 256 5×5 stride 2 → 26/13 → "
            "384, 384, 256 3×3 → 6 → 4096 → 4096 → 1000, with LRN and dropout, 62,357,608 parameters, untrained",
            ZFNet,
            _IMAGENET_CLASSES,
            Preprocessing(3, (224, 224), **_IMAGENET),
            None,
        ),
        BuiltinModel(
            "alexnet_original",
            "AlexNet as published (Krizhevsky et al. 2012): 227×227 RGB → 96 11×11 stride 4 → 55/27 → 13 → 6 → "
            "4096 → 4096 → 1000, with LRN, dropout and two groups as on two GPUs, 60,965,224 parameters, untrained "
            "(torchvision:alexnet is the later one-GPU version with 64 first-layer maps)",
            AlexNetOriginal,
            _IMAGENET_CLASSES,
            Preprocessing(3, (227, 227), **_IMAGENET),
            None,
        ),
        *(_shapes_twin(depth, shortcuts) for depth, shortcuts in SHAPES_TWINS),
    )
}
