"""A loaded model with everything the views need: device, preprocessing and class names.

Views and attacks work in [0,1] pixel space; ``ModelHandle.pixel_model`` applies the model's
own normalisation inside the forward pass. Layer names are always the dotted paths of
``handle.module.named_modules()``, the raw model, never the wrapper.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the model's input tensor, in [0,1] pixel space.

    ``resize`` is the shorter side the image is scaled to before the centre crop to ``size``
    (torchvision's 256 → 224); None scales the whole image straight to ``size``.
    """

    channels: int
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int | None = None

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """``[C,H,W]`` float tensor in [0,1] from an RGB PIL image (resized, cropped)."""
        image = image.convert("L" if self.channels == 1 else "RGB")
        height, width = self.size
        if self.resize is None:
            image = image.resize((width, height), Image.BILINEAR)
        else:
            scale = self.resize / min(image.size)
            new_size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
            image = image.resize(new_size, Image.BILINEAR)
            left = (image.width - width) // 2
            top = (image.height - height) // 2
            image = image.crop((left, top, left + width, top + height))
        array = np.asarray(image, dtype=np.float32) / 255.0
        if array.ndim == 2:
            array = array[:, :, None]
        if self.channels == 3 and array.shape[2] == 1:
            array = np.repeat(array, 3, axis=2)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def to_json(self) -> dict:
        return {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
        }


class PixelModel(nn.Module):
    """Wraps a model so that it takes [0,1] pixels and normalises them itself."""

    def __init__(self, module: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 device: torch.device | str = "cpu"):
        super().__init__()
        self.module = module
        for name, values in (("mean", mean), ("std", std)):
            tensor = torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)
            self.register_buffer(name, tensor, persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module((pixels - self.mean) / self.std)


@dataclass
class ModelHandle:
    """A model ready to use: the raw module on its device plus its metadata.

    ``weights`` names what the parameters came from (an enum name, ``none``, ``builtin``, or a
    file path); ``trained`` is False for random initialisation, and the GUI says so.
    """

    spec: str
    module: nn.Module
    device: torch.device
    preprocessing: Preprocessing
    class_names: list[str]
    weights: str
    trained: bool
    notes: list[str] = field(default_factory=list)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return self.preprocessing.input_size

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else f"class {index}"

    def pixel_model(self) -> PixelModel:
        """The model taking [0,1] pixels, on the handle's device (shares the parameters).

        Only the two small buffers are made on the device: ``.to()`` on the wrapper would walk
        every parameter of the model in Python, which several worker threads do at once.
        """
        pre = self.preprocessing
        return PixelModel(self.module, pre.mean, pre.std, self.device)

    def to(self, device: torch.device) -> "ModelHandle":
        """The same model on another device (the module is moved, not copied)."""
        self.module.to(device)
        return replace(self, device=device)

    def describe(self) -> dict:
        """What reproduces this model, for sidecar files and ``--json`` output."""
        return {
            "spec": self.spec,
            "weights": self.weights,
            "trained": self.trained,
            "preprocessing": self.preprocessing.to_json(),
        }


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block and restore every submodule's flag after."""
    flags = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        yield module
    finally:
        for m, training in flags:
            m.training = training
