"""Grad-CAM++ (Chattopadhay et al. 2018): positive gradients weighted per location, so that
several instances of a class all count, with the closed form for an exponential score."""

from __future__ import annotations

import torch
from torch import Tensor

from cnnexplorer.core.attribution.cam.base import CAM


class GradCAMPlusPlus(CAM):
    name = "gradcam++"
    title = "Grad-CAM++"

    def weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        g2, g3 = gradients.pow(2), gradients.pow(3)
        total = activations.sum(dim=(2, 3), keepdim=True)
        denominator = 2 * g2 + total * g3
        alpha = torch.where(gradients != 0, g2 / torch.where(denominator != 0, denominator, torch.ones_like(g2)),
                            torch.zeros_like(g2))
        return (alpha * gradients.clamp(min=0)).sum(dim=(2, 3), keepdim=True)
