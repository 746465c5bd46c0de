"""Per-epoch pictures of what the network is learning: first-layer filters and a probe heatmap.

The heatmap is Grad-CAM from ``cnnexplorer.core.attribution`` when that module is installed and
can explain the probe, else the plain input-gradient saliency (|∂score/∂pixel|, max over colour
channels), computed here: a snapshot never stops a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnexplorer.core.colormaps import apply_colormap
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.filters import filter_view, render_filter_picture
from cnnexplorer.core.model_handle import ModelHandle, eval_mode


@dataclass(frozen=True)
class Snapshot:
    """What epoch ``epoch`` (1-based) ended with: filters and probe heatmap as H×W×3 uint8."""

    epoch: int
    filters: np.ndarray | None
    heatmap: np.ndarray
    method: str


def first_conv(module: nn.Module) -> str | None:
    return next((name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)), None)


def filters_picture(module: nn.Module) -> np.ndarray | None:
    layer = first_conv(module)
    return None if layer is None else render_filter_picture(filter_view(module, layer), labels=False)


def _saliency(handle: ModelHandle, pixels: torch.Tensor, target: int) -> np.ndarray:
    model = handle.pixel_model()
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        x = pixels[None].to(handle.device).clone().requires_grad_(True)
        with eval_mode(model):
            model(x)[0, target].backward()
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    grad = x.grad[0].abs().amax(0).float().cpu().numpy()
    return grad / (grad.max() or 1.0)


def _heatmap(handle: ModelHandle, pixels: torch.Tensor, target: int) -> tuple[np.ndarray, str]:
    """Grad-CAM, or the saliency where Grad-CAM is missing or refuses (no conv layer, a gradient of zero)."""
    try:
        from cnnexplorer.core.attribution import compute_heatmap
    except ImportError:
        compute_heatmap = None
    if compute_heatmap is not None:
        try:
            return compute_heatmap(handle, pixels, "gradcam", target=target).display_values(), "gradcam"
        except UserError:
            pass
    return _saliency(handle, pixels, target), "saliency"


def probe_picture(handle: ModelHandle, pixels: torch.Tensor, target: int) -> tuple[np.ndarray, str]:
    """The probe image (C×H×W in [0,1]) blended with its heatmap for class ``target``."""
    heat, method = _heatmap(handle, pixels, target)
    image = pixels.detach().float().cpu()
    image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    base = image.permute(1, 2, 0).numpy()
    if heat.shape != base.shape[:2]:
        heat = torch.nn.functional.interpolate(torch.from_numpy(heat)[None, None], size=base.shape[:2],
                                               mode="bilinear", align_corners=False)[0, 0].numpy()
    overlay = 0.45 * base + 0.55 * apply_colormap(heat, "magma").astype(np.float32) / 255
    return (np.clip(overlay, 0, 1) * 255).round().astype(np.uint8), method


def take_snapshot(handle: ModelHandle, epoch: int, probe: torch.Tensor, target: int) -> Snapshot:
    heatmap, method = probe_picture(handle, probe, target)
    return Snapshot(epoch, filters_picture(handle.module), heatmap, method)
