"""Guided Grad-CAM (Selvaraju et al. 2017): guided backpropagation times the upsampled
Grad-CAM, class-discriminative and at pixel resolution."""

from __future__ import annotations

from torch import Tensor

from cnnexplorer.core.attribution.cam.base import LayerPass
from cnnexplorer.core.attribution.cam.gradcam import GradCAM
from cnnexplorer.core.attribution.guided import guided_gradients
from cnnexplorer.core.attribution.heatmap import reduce_channels
from cnnexplorer.core.model_handle import ModelHandle


class GuidedGradCAM(GradCAM):
    name = "guided-gradcam"
    title = "Guided Grad-CAM"

    def finish(self, handle: ModelHandle, pixels: Tensor, maps: Tensor, recorded: LayerPass) -> Tensor:
        grad, _, _ = guided_gradients(handle, pixels, recorded.targets)
        return reduce_channels(grad * maps[:, None], "max-abs")
