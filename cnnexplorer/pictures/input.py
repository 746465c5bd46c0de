"""The image as the model sees it: resized and cropped the model's own way, before it normalises it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class InputOptions:
    """Nothing to choose: the model's preprocessing alone makes the picture."""


def tensor_pixels(tensor: torch.Tensor) -> np.ndarray:
    """A ``[C,H,W]`` tensor in [0,1] as uint8 pixels: H×W×3, or H×W for one channel."""
    import numpy as np
    import torch

    array = (tensor.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))


def make_input(inputs: Inputs, options: InputOptions) -> Job[Picture]:
    image = inputs.need_image("input")
    yield Progress(0, None, f"preprocessing {image.name}")
    return Picture(tensor_pixels(inputs.handle.pixels(image)), settings=settings_of(options),
                   report={"input_size": list(inputs.handle.input_size)})


RECIPE = Recipe("input", InputOptions, make_input)
