"""The index's thumbnails: the model's input, small, as 8-bit RGB (the map's hover, pixel-space neighbours).

A thumbnail is made from the 8-bit image the model's pixels come from (``Preprocessing.fit``): shrunk
by whole factors with a box filter (PIL's ``reduce``, as ``Image.thumbnail`` does), then resized
bilinearly to ``THUMBNAIL`` pixels a side. The probe set's readers make them as they decode each image
(``ProbeSet.batches_with_thumbnails``), some 15 µs each, so the index's pass does no work of its
own for them. A query's thumbnail is made from its pixels, whose 8-bit values they hold exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from cnnexplorer.core.dataset.index_types import THUMBNAIL


def thumbnail(fitted: Image.Image) -> np.ndarray:
    """``[THUMBNAIL, THUMBNAIL, 3]`` uint8 RGB of the model's input image ``fitted`` (grey or RGB)."""
    image = fitted.convert("RGB")
    factor = (max(image.width // THUMBNAIL, 1), max(image.height // THUMBNAIL, 1))
    if factor != (1, 1):
        image = image.reduce(factor)
    if image.size != (THUMBNAIL, THUMBNAIL):
        image = image.resize((THUMBNAIL, THUMBNAIL), Image.BILINEAR)
    return np.asarray(image)


def pixels_thumbnail(pixels: torch.Tensor) -> np.ndarray:
    """``thumbnail`` of the model input ``pixels`` ``[C,H,W]`` in [0,1] (1 or 3 channels), which hold its 8-bit
    values exactly (``Preprocessing.tensor``)."""
    levels = (pixels.detach().float().cpu() * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return thumbnail(Image.fromarray(levels[0]) if len(levels) == 1 else Image.fromarray(np.ascontiguousarray(levels.transpose(1, 2, 0))))


def black_thumbnail() -> np.ndarray:
    """The thumbnail of an image that could not be read (a black image stands in)."""
    return np.zeros((THUMBNAIL, THUMBNAIL, 3), np.uint8)
