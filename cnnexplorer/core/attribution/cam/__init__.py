"""The CAM family: one short class per method over the ``CAM`` template in ``base``."""

from __future__ import annotations

from cnnexplorer.core.attribution.cam.base import CAM, LayerPass, layer_pass
from cnnexplorer.core.attribution.cam.gradcam import GradCAM
from cnnexplorer.core.attribution.cam.gradcam_pp import GradCAMPlusPlus
from cnnexplorer.core.attribution.cam.guided_gradcam import GuidedGradCAM
from cnnexplorer.core.attribution.cam.layercam import LayerCAM
from cnnexplorer.core.attribution.cam.scorecam import ScoreCAM

__all__ = ["CAM", "GradCAM", "GradCAMPlusPlus", "GuidedGradCAM", "LayerCAM", "LayerPass", "ScoreCAM", "layer_pass"]
