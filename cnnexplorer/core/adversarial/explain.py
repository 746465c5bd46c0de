"""Attack, then explain: Grad-CAM and a layer's activations for the original and the adversarial.

Each row shows the original, the adversarial and their difference side by side. Grad-CAM
explains each image's own top-1 class (what made the model say what it said), each map scaled
to its own peak; the difference (adversarial − original) uses the diverging map, red where the
adversarial draws more attention. The activation grids share one channel order and colour
scale (``compare_grids``), so equal colours mean equal values, and the difference grid shows
which channels the perturbation turned up or down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from cnnexplorer.core.activations import capture, compare_grids, render_activation_picture
from cnnexplorer.core.adversarial.base import AttackResult
from cnnexplorer.core.adversarial.panel import render_row, tile_image, zoom_for
from cnnexplorer.core.colormaps import apply_colormap
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle


@dataclass(frozen=True)
class Explanation:
    """Pictures (``H×W×3`` uint8) of one attacked image; ``activations`` is None without a layer."""

    gradcam: np.ndarray
    activations: np.ndarray | None
    layer: str | None
    classes: tuple[int, int]


def explain_job(handle: ModelHandle, result: AttackResult, layer: str | None = None,
                index: int = 0) -> Job[Explanation]:
    """Grad-CAM rows (and ``layer``'s activation grids) for image ``index`` of ``result``."""
    from cnnexplorer.core.attribution import compute_heatmap, render_heatmap

    pair = torch.stack([result.original[index], result.adversarial[index]])
    classes = (int(result.before[index].argmax()), int(result.after[index].argmax()))
    overlays, maps = [], []
    for k, (pixels, target) in enumerate(zip(pair, classes)):
        yield Progress(k, 3, f"Grad-CAM of the {('original', 'adversarial')[k]}")
        heat = compute_heatmap(handle, pixels.to(handle.device), "gradcam", target)
        overlays.append(render_heatmap(pixels, heat))
        maps.append(heat.display_values())
    difference = apply_colormap(0.5 + 0.5 * (maps[1] - maps[0]), "diverging")
    names = [handle.label(c) for c in classes]
    captions = [["original", f"explains {names[0]}"], ["adversarial", f"explains {names[1]}"],
                ["difference", "red: more attention after", "blue: less"]]
    tiles = [np.ascontiguousarray(t.transpose(2, 0, 1)) for t in (*overlays, difference)]
    gradcam = render_row([tile_image(t, zoom_for(t)) for t in tiles], captions, "Grad-CAM of each image's top-1 class")
    activations = None
    if layer is not None:
        yield Progress(2, 3, f"activations of {layer}")
        output = capture(handle, pair, [layer]).output(layer)
        grids = compare_grids(output[:1], output[1:])
        (change,) = compare_grids(output[1:], output[:1], difference=True)
        pictures = [render_activation_picture(g) for g in (*grids, change)]
        captions = [["original"], ["adversarial"], ["difference: adversarial - original"]]
        activations = render_row([Image.fromarray(p) for p in pictures], captions,
                                 f"{layer}: activations, same channel order and scale")
    return Explanation(gradcam, activations, layer, classes)
