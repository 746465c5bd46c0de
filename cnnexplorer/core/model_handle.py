"""A loaded model with everything the views need: device, preprocessing and class names.

Views and attacks work in [0,1] pixel space; ``ModelHandle.pixel_model`` applies the model's
own normalisation inside the forward pass. Layer names are always the dotted paths of
``handle.module.named_modules()``, the raw model, never the wrapper.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnexplorer.core.errors import UserError

MAX_INPUT_SIDE = 4096


RESAMPLING = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
MAX_SCALED_PIXELS = 4096 * 4096  # a resized copy of a photo is far smaller; extreme aspect ratios are not


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the model's input tensor, in [0,1] pixel space.

    ``resize`` is the shorter side the image is scaled to (with ``interpolation``, antialiased as
    PIL always does) before the centre crop to ``size`` (torchvision's 256 → 224); None scales the
    whole image straight to ``size``. This is exactly what torchvision's and timm's evaluation
    transforms do to a PIL image.
    """

    channels: int
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int | None = None
    interpolation: str = "bilinear"

    def __post_init__(self):
        """Refuse settings no image can be turned into (from a file, or --input-size/--mean/--std)."""
        where = "check --input-size, --mean and --std, or the checkpoint's preprocessing"
        if self.channels not in (1, 3):
            raise UserError(f"an input of {self.channels} channels cannot be made from an image (1 = grey, "
                            f"3 = RGB); {where}")
        if len(self.size) != 2 or not all(1 <= s <= MAX_INPUT_SIDE for s in self.size):
            raise UserError(f"input size {'×'.join(map(str, self.size))} is not usable: height and width go "
                            f"from 1 to {MAX_INPUT_SIDE} pixels; {where}")
        if self.resize is not None and not 1 <= self.resize <= MAX_INPUT_SIDE:
            raise UserError(f"resize to {self.resize} pixels is not usable (1 to {MAX_INPUT_SIDE}); {where}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise UserError(f"the mean and std need {self.channels} values, one per input channel "
                            f"(got {len(self.mean)} and {len(self.std)}); {where}")
        if not all(math.isfinite(m) for m in self.mean) or not all(math.isfinite(s) and s > 0 for s in self.std):
            raise UserError(f"mean {list(self.mean)} and std {list(self.std)} must be finite numbers with every "
                            f"std above 0 (a zero std divides by zero); {where}")
        if self.interpolation not in RESAMPLING:
            raise UserError(f"interpolation '{self.interpolation}' is not one of {', '.join(RESAMPLING)}; {where}")

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """``[C,H,W]`` float tensor in [0,1] from a PIL image (resized, cropped): ``tensor(fit(image))``."""
        return self.tensor(self.fit(image))

    def fit(self, image: Image.Image) -> Image.Image:
        """The image as the model takes it: grey or RGB, resized and cropped to ``size``.

        A photo is scaled whole and cropped, as torchvision does, so the pixels are the same to
        the bit; an image whose scaled copy would pass ``MAX_SCALED_PIXELS`` (an extreme aspect
        ratio) has only its kept part resampled (``crop_box``), which may differ from that by one
        grey level in a few pixels.
        """
        image = image.convert("L" if self.channels == 1 else "RGB")
        height, width = self.size
        resample = RESAMPLING[self.interpolation]
        if self.resize is None:
            return image.resize((width, height), resample)
        if math.prod(scaled := self.scaled_size(image.size)) <= MAX_SCALED_PIXELS:
            left, top = self.crop_origin(scaled)
            return image.resize(scaled, resample).crop((left, top, left + width, top + height))
        return image.resize((width, height), resample, box=self.crop_box(image.size))

    def tensor(self, fitted: Image.Image) -> torch.Tensor:
        """``[C,H,W]`` float tensor in [0,1] of an image ``fit`` made."""
        array = np.asarray(fitted, dtype=np.float32) / 255.0
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def scaled_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of an image of ``size`` scaled so its shorter side is ``resize``.

        The longer side is truncated, as torchvision's ``resize`` does; never below the crop.
        """
        height, width = self.size
        short, long = sorted(size)
        scaled_long = int(self.resize * long / short)
        scaled = (self.resize, scaled_long) if size[0] <= size[1] else (scaled_long, self.resize)
        return max(width, scaled[0]), max(height, scaled[1])

    def crop_origin(self, scaled: tuple[int, int]) -> tuple[int, int]:
        """Left and top of the centre crop of a scaled image, rounded as torchvision's ``center_crop``."""
        height, width = self.size
        return int(round((scaled[0] - width) / 2.0)), int(round((scaled[1] - height) / 2.0))

    def crop_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """The part of an image of ``size`` (width, height) that the resize and centre crop keep.

        It is the crop of the image scaled so its shorter side is ``resize``, mapped back to the
        original's pixels, so only that part need be resampled: an extreme aspect ratio (20000×1)
        never asks for a huge intermediate image.
        """
        height, width = self.size
        scaled = self.scaled_size(size)
        left, top = self.crop_origin(scaled)
        sx, sy = size[0] / scaled[0], size[1] / scaled[1]
        return (left * sx, top * sy, (left + width) * sx, (top + height) * sy)

    def to_json(self) -> dict:
        return {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
            "interpolation": self.interpolation,
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
    file path); ``trained`` is False for random initialisation, and the GUI says so. ``about`` says
    what the model is (the tree's tooltips); ``layer_notes`` add a remark to a layer's tooltip
    (where a torchvision model departs from the paper a course teaches, say).
    """

    spec: str
    module: nn.Module
    device: torch.device
    preprocessing: Preprocessing
    class_names: list[str]
    weights: str
    trained: bool
    notes: list[str] = field(default_factory=list)
    about: str = ""
    layer_notes: dict[str, str] = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return self.preprocessing.input_size

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else f"class {index}"

    def pixels(self, image) -> torch.Tensor:
        """The model's ``[C,H,W]`` input in [0,1] for an opened image (a ``LoadedImage``), resized and
        cropped the model's way."""
        return self.preprocessing.to_tensor(image.image)

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
