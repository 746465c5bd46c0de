"""LayerCAM (Jiang et al. 2021): every location weighted by its own positive gradient, which
keeps fine detail and works at early layers too."""

from __future__ import annotations

from torch import Tensor

from cnnexplorer.core.attribution.cam.base import CAM


class LayerCAM(CAM):
    name = "layercam"
    title = "LayerCAM"

    def weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        return gradients.clamp(min=0)
