"""Random transformations applied to the image before every step, as composable closures.

Optimising through small random shifts, scalings and rotations keeps only patterns that
survive them: the usual cure for adversarial high-frequency noise (Lucid's "transformation
robustness"). Each closure draws from the loop's ``torch.Generator`` (one draw per batch), so a
seed reproduces the run.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _choice(values: Sequence[float], generator: torch.Generator) -> float:
    return values[int(torch.randint(len(values), (1,), generator=generator))]


def pad(width: int, value: float = 0.5) -> Transform:
    """Pad every side with ``width`` constant pixels (grey), so jitter can move the border in."""
    return lambda image, generator: F.pad(image, (width,) * 4, value=value)


def jitter(distance: int) -> Transform:
    """Crop a random window, up to ``distance - 1`` pixels smaller on each axis."""

    def inner(image, generator):
        dx, dy = (int(v) for v in torch.randint(distance, (2,), generator=generator))
        return image[:, :, dy: image.shape[2] - distance + 1 + dy, dx: image.shape[3] - distance + 1 + dx]

    return inner


def _affine(image: torch.Tensor, scale: float, degrees: float) -> torch.Tensor:
    """Rotate by ``degrees`` and zoom by ``scale`` about the centre (``affine_grid``'s grid, made from the
    identity's with the angle as plain numbers: a matrix sent to a GPU would make the host wait for it)."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    x, y = _identity_grid(image.shape[-2], image.shape[-1], image.dtype, image.device).unbind(-1)
    grid = torch.stack((x * cos - y * sin, x * sin + y * cos), -1).expand(len(image), -1, -1, -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@functools.lru_cache(maxsize=16)
def _identity_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``affine_grid``'s identity grid ``[H, W, 2]`` (x, y) for ``align_corners=False``."""
    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=dtype)
    return F.affine_grid(theta, [1, 1, height, width], align_corners=False)[0].to(device)


def random_scale(scales: Sequence[float]) -> Transform:
    """Zoom about the centre by a factor drawn from ``scales`` (size kept)."""
    return lambda image, generator: _affine(image, _choice(scales, generator), 0.0)


def random_rotate(degrees: Sequence[float]) -> Transform:
    """Rotate about the centre by an angle drawn from ``degrees``."""
    return lambda image, generator: _affine(image, 1.0, _choice(degrees, generator))


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order."""

    def inner(image, generator):
        for transform in transforms:
            image = transform(image, generator)
        return image

    return inner


def standard_transforms(size: int) -> Transform:
    """Lucid's standard set, pad(12) jitter(8) scale 0.9–1.1 rotate ±10° jitter(4), with the
    pixel distances scaled to ``size`` (given for 128 px)."""
    unit = size / 128

    def px(n: int) -> int:
        return max(1, round(n * unit))

    return compose([
        pad(px(12)),
        jitter(px(8)),
        random_scale([1 + (i - 5) / 50 for i in range(11)]),
        random_rotate(list(range(-10, 11))),
        jitter(px(4)),
    ])
