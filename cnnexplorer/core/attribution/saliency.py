"""Vanilla gradient saliency (Simonyan, Vedaldi & Zisserman 2014): how much each pixel's
change would move the target score, |∂score/∂pixel| reduced over the colour channels."""

from __future__ import annotations

from torch import Tensor

from cnnexplorer.core.attribution.heatmap import Heatmap, is_signed, reduce_channels
from cnnexplorer.core.attribution.passes import explaining, heatmaps, input_gradients
from cnnexplorer.core.attribution.targets import TargetSpec
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle


def saliency(handle: ModelHandle, pixels: Tensor, target: TargetSpec = None, negative: bool = False,
             reduce: str = "max-abs") -> Job[list[Heatmap]]:
    """One forward and one backward pass for the whole batch ``[N,C,H,W]``.

    ``reduce``: ``max-abs`` (the paper's choice, sign-blind, so "why not" gives the same map),
    ``mean`` (signed) or ``rgb`` (one map per channel).
    """
    yield Progress(0, 1, "saliency")
    with explaining(handle) as model:
        grad, logits, targets = input_gradients(model, pixels.to(handle.device), target, negative)
    return heatmaps(reduce_channels(grad, reduce), is_signed(reduce), targets, logits, "saliency")
