"""Guided backpropagation and DeconvNet maps: input gradients under a modified ReLU rule."""

from __future__ import annotations

from torch import Tensor

from cnnexplorer.core.attribution.heatmap import Heatmap, is_signed, reduce_channels
from cnnexplorer.core.attribution.passes import explaining, heatmaps, input_gradients
from cnnexplorer.core.attribution.relu_rules import DeconvReLU, GuidedReLU, relu_rule
from cnnexplorer.core.attribution.targets import TargetSpec
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle


def guided_gradients(handle: ModelHandle, pixels: Tensor, target: TargetSpec = None, negative: bool = False,
                     deconvnet: bool = False):
    """Raw ``[N,C,H,W]`` guided-backprop (or DeconvNet) gradients, the logits and the targets."""
    with explaining(handle) as model, relu_rule(DeconvReLU if deconvnet else GuidedReLU):
        return input_gradients(model, pixels.to(handle.device), target, negative)


def guided_backprop(handle: ModelHandle, pixels: Tensor, target: TargetSpec = None, negative: bool = False,
                    reduce: str = "max-abs") -> Job[list[Heatmap]]:
    """Guided backpropagation (Springenberg et al. 2015), reduced over channels like saliency."""
    yield Progress(0, 1, "guided backprop")
    grad, logits, targets = guided_gradients(handle, pixels, target, negative)
    return heatmaps(reduce_channels(grad, reduce), is_signed(reduce), targets, logits, "guided")


def deconvnet(handle: ModelHandle, pixels: Tensor, target: TargetSpec = None, negative: bool = False,
              reduce: str = "max-abs") -> Job[list[Heatmap]]:
    """DeconvNet (Zeiler & Fergus 2014), reduced over channels like saliency."""
    yield Progress(0, 1, "DeconvNet")
    grad, logits, targets = guided_gradients(handle, pixels, target, negative, deconvnet=True)
    return heatmaps(reduce_channels(grad, reduce), is_signed(reduce), targets, logits, "deconvnet")
