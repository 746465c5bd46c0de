"""The model passes attribution methods share: gradients w.r.t. the input, in eval mode.

Only the input asks for gradients (``torch.autograd.grad``), so no parameter gets a ``.grad``
and no ``requires_grad`` flag is touched; train/eval flags are restored by ``eval_mode``.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.targets import TargetSpec, Targets, resolve_targets
from cnnexplorer.core.layouts import require_gradients
from cnnexplorer.core.model_handle import ModelHandle, PixelModel, eval_mode


@contextlib.contextmanager
def explaining(handle: ModelHandle) -> Iterator[PixelModel]:
    """The [0,1]-pixel model in eval mode with gradients enabled, for the block (a quantized
    model, without gradients, is refused)."""
    require_gradients(handle.module, "gradient heatmaps (try occlusion or Score-CAM)")
    with eval_mode(handle.module), torch.enable_grad():
        yield handle.pixel_model()


def input_gradients(model: PixelModel, pixels: Tensor, target: TargetSpec | Targets,
                    negative: bool = False, owners: Tensor | None = None) -> tuple[Tensor, Tensor, Targets]:
    """Gradients of each row's target score w.r.t. ``pixels`` ``[M,C,H,W]``, the logits and the
    resolved targets (resolved from these logits unless already ``Targets``)."""
    x = pixels.detach().requires_grad_(True)
    logits = model(x)
    targets = resolve_targets(target, logits.detach(), negative)
    (grad,) = torch.autograd.grad(targets.scores(logits, owners).sum(), x)
    return grad, logits.detach(), targets


def clean_logits(model: PixelModel, pixels: Tensor) -> Tensor:
    """Logits of the unchanged input, without building a graph."""
    with torch.no_grad():
        return model(pixels)


def heatmaps(maps: Tensor, signed: bool, targets: Targets, logits: Tensor, method: str,
             layer: str | None = None) -> list[Heatmap]:
    """One ``Heatmap`` per image from a batch of maps ``[N,H,W]`` (or ``[N,H,W,C]``)."""
    arrays = maps.detach().float().cpu().numpy()
    return [Heatmap(arrays[i], signed, targets.index(i), targets.reported_score(i, logits), method, layer,
                    targets.negative) for i in range(arrays.shape[0])]


def batches(total: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` items covering ``range(total)``."""
    for start in range(0, total, max(1, size)):
        yield slice(start, min(total, start + max(1, size)))
