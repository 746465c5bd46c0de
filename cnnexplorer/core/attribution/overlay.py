"""A heatmap drawn over its image, or alone: the one render function the GUI and ``export heatmap`` share.

The map is computed at the model input's resolution; it is drawn over the original image,
upsampled onto the part of it the model saw (the resize and centre crop undone), as the
classic Grad-CAM recipe does, so the picture has the image's own size and detail.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.colormaps import apply_colormap
from cnnexplorer.core.colour_bar import Scale
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.picture_style import PAPER

DEFAULT_CLIP = 1.0
"""Percent of the largest magnitudes that saturate the colour map (attribution libraries use 1-2)."""

UNITS = {
    "gradcam": "channel-weighted activation of the layer",
    "gradcam++": "channel-weighted activation of the layer",
    "scorecam": "score-weighted activation of the layer",
    "layercam": "gradient-weighted activation of the layer",
    "guided-gradcam": "guided-backprop gradient x Grad-CAM",
    "saliency": "gradient of the class logit per input value",
    "smoothgrad": "mean gradient of the class logit under noise",
    "guided": "guided-backprop gradient of the class logit",
    "deconvnet": "DeconvNet signal of the class logit",
    "ig": "contribution to the class logit",
    "inputxgrad": "input x gradient: contribution to the class logit",
    "occlusion": "drop of the class logit when covered, per pixel",
}


def default_cmap(heatmap: Heatmap) -> str:
    """Diverging (blue against, red for) for signed maps; jet, as in the Grad-CAM paper, for
    unsigned ones: its strong end is saturated red, where magma's near-white end washes out
    over a bright image."""
    return "diverging" if _signed(heatmap) else "jet"


def _signed(heatmap: Heatmap) -> bool:
    return heatmap.signed or heatmap.map.ndim == 3


def heatmap_scale(heatmap: Heatmap, cmap: str, clip: float = DEFAULT_CLIP) -> Scale:
    """What the colours of ``render_heatmap`` mean, for the colour bar."""
    top = heatmap.scale(clip)
    saturated = f"; top {clip:g} % saturate" if clip > 0 else ""
    return Scale(cmap, -top if _signed(heatmap) else 0.0, top, UNITS.get(heatmap.method, "map value") + saturated)


def image_pixels(pixels: torch.Tensor) -> np.ndarray:
    """A ``[C,H,W]`` (or ``[1,C,H,W]``) tensor in [0,1] → ``H×W×3`` uint8 (grey repeated)."""
    tensor = pixels[0] if pixels.ndim == 4 else pixels
    array = (tensor.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array)


def _values(heatmap: Heatmap, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """One display value per pixel in [0,1] and the strength of its evidence (the value for
    unsigned maps, the distance from the neutral middle for signed ones)."""
    values = heatmap.display_values(clip)
    if values.ndim == 3:  # per-channel map: its largest-magnitude channel, sign kept
        pick = np.abs(values - 0.5).argmax(axis=2)[..., None]
        values = np.take_along_axis(values, pick, axis=2)[..., 0]
    strength = np.abs(2 * values - 1) if _signed(heatmap) else values
    return values.astype(np.float32), strength.astype(np.float32)


def _stretched(layer: np.ndarray, size: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
    """An RGBA ``layer`` (model-input pixels) bilinearly stretched over ``box`` of a ``size``
    (width, height) picture, transparent outside it. PIL resamples 8-bit RGBA in C, fast
    enough to redraw a photo's full resolution as the opacity slider moves."""
    height, width = layer.shape[:2]
    left, top, right, bottom = box
    sx, sy = width / (right - left), height / (bottom - top)
    extent = (-left * sx, -top * sy, (size[0] - left) * sx, (size[1] - top) * sy)
    return Image.fromarray(layer, "RGBA").transform(size, Image.Transform.EXTENT, extent, Image.Resampling.BILINEAR)


def render_heatmap(pixels: torch.Tensor, heatmap: Heatmap, alpha: float = 0.7, cmap: str | None = None,
                   clip: float = DEFAULT_CLIP, *, background: np.ndarray | None = None,
                   box: tuple[float, float, float, float] | None = None, overlay: bool = True) -> np.ndarray:
    """``H×W×3`` uint8: the coloured heatmap over ``background`` (default: the model input).

    ``box`` is the part of ``background`` the model saw (default: all of it). Each pixel's
    opacity is ``alpha`` times the strength of its evidence, so the image stays visible where
    the map says nothing: a uniform blend would tint the whole picture with the colour map's
    zero. ``overlay`` False draws the map alone, fully opaque, on paper.
    """
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"heatmap opacity must be between 0 and 1, got {alpha}")
    if not 0.0 <= clip < 100.0:
        raise UserError(f"the clipped percentage must be from 0 up to 100, got {clip:g}")
    base = image_pixels(pixels) if background is None else background
    values, strength = _values(heatmap, clip)
    if background is None and values.shape != base.shape[:2]:
        raise UserError(f"heatmap of {values.shape} does not match the image of {base.shape[:2]}")
    size = (base.shape[1], base.shape[0])
    opacity = alpha * strength if overlay else np.ones_like(strength)
    layer = np.dstack([apply_colormap(values, cmap or default_cmap(heatmap)),
                       np.round(255 * opacity).astype(np.uint8)])
    under = Image.fromarray(base).convert("RGBA") if overlay else Image.new("RGBA", size, PAPER)
    drawn = Image.alpha_composite(under, _stretched(layer, size, box or (0.0, 0.0, float(size[0]), float(size[1]))))
    return np.asarray(drawn.convert("RGB"))
