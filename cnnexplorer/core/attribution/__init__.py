"""Class heatmaps: which pixels made the model say what it said (and what spoke against it).

Gradient methods (saliency, SmoothGrad, guided backprop, DeconvNet, integrated gradients,
input × gradient), occlusion, and the CAM family (``cam``), all in [0,1] pixel space through
the model handle, each in its own module; ``methods`` names them, ``overlay`` draws them,
``compare`` runs several at once, ``sanity`` checks them against randomised weights and
``faithfulness`` draws their deletion and insertion curves.
"""

from __future__ import annotations

from cnnexplorer.core.attribution.compare import comparison_job, top_classes_job
from cnnexplorer.core.attribution.faithfulness import Curve, curves_job
from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.layers import last_conv_layer
from cnnexplorer.core.attribution.methods import (METHODS, compute_heatmap, compute_heatmaps, heatmap_job,
                                                  heatmaps_job)
from cnnexplorer.core.attribution.overlay import default_cmap, render_heatmap
from cnnexplorer.core.attribution.sanity import SanityResult, rank_correlation, sanity_job
from cnnexplorer.core.attribution.targets import Targets

__all__ = ["METHODS", "Curve", "Heatmap", "SanityResult", "Targets", "comparison_job", "compute_heatmap",
           "compute_heatmaps", "curves_job", "default_cmap", "heatmap_job", "heatmaps_job", "last_conv_layer",
           "rank_correlation", "render_heatmap", "sanity_job", "top_classes_job"]
