"""Separable Gaussian blur of image batches (an IG baseline, a faithfulness baseline, and the
smoothing of gradient maps before a peak is taken)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Blur ``[N,C,H,W]`` with a Gaussian of ``sigma`` pixels, edges reflected (clamped to
    what the image allows); ``sigma <= 0`` returns the input unchanged."""
    if sigma <= 0:
        return images
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, images.shape[-1] - 1, images.shape[-2] - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    flat = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(flat, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
