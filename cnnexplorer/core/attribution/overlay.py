"""A heatmap drawn over its image: the one render function the GUI and ``export heatmap`` share."""

from __future__ import annotations

import numpy as np
import torch

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.colormaps import apply_colormap
from cnnexplorer.core.errors import UserError


def default_cmap(heatmap: Heatmap) -> str:
    """Diverging (blue against, red for) for signed maps, magma for unsigned ones."""
    return "diverging" if heatmap.signed or heatmap.map.ndim == 3 else "magma"


def image_pixels(pixels: torch.Tensor) -> np.ndarray:
    """A ``[C,H,W]`` (or ``[1,C,H,W]``) tensor in [0,1] → ``H×W×3`` uint8 (grey repeated)."""
    tensor = pixels[0] if pixels.ndim == 4 else pixels
    array = (tensor.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array)


def render_heatmap(pixels: torch.Tensor, heatmap: Heatmap, alpha: float = 0.7, cmap: str | None = None) -> np.ndarray:
    """``H×W×3`` uint8: the coloured heatmap over the image, at the model input's resolution.

    Each pixel's opacity is ``alpha`` times the strength of its evidence (the display value for
    unsigned maps, the distance from the neutral middle for signed ones), so the image stays
    visible where the map says nothing: gradient maps are sparse, and a uniform blend would
    tint the whole picture with the colour map's zero.
    """
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"heatmap opacity must be between 0 and 1, got {alpha}")
    base = image_pixels(pixels).astype(np.float32)
    values = heatmap.display_values()
    if values.ndim == 3:  # per-channel map: its largest-magnitude channel, sign kept
        pick = np.abs(values - 0.5).argmax(axis=2)[..., None]
        values = np.take_along_axis(values, pick, axis=2)[..., 0]
    if values.shape != base.shape[:2]:
        raise UserError(f"heatmap of {values.shape} does not match the image of {base.shape[:2]}")
    colour = apply_colormap(values, cmap or default_cmap(heatmap)).astype(np.float32)
    strength = np.abs(2 * values - 1) if heatmap.signed or heatmap.map.ndim == 3 else values
    weight = (alpha * strength)[..., None]
    return np.round((1 - weight) * base + weight * colour).astype(np.uint8)
