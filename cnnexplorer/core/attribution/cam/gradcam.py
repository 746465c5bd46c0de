"""Grad-CAM (Selvaraju et al. 2017): each channel weighted by its spatially averaged gradient."""

from __future__ import annotations

from torch import Tensor

from cnnexplorer.core.attribution.cam.base import CAM


class GradCAM(CAM):
    name = "gradcam"
    title = "Grad-CAM"

    def weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        return gradients.mean(dim=(2, 3), keepdim=True)
