"""Input × Gradient (Shrikumar et al. 2016): the gradient weighted by the pixel value, summed
over the colour channels; a first-order estimate of each pixel's contribution (signed).

Computed by captum's ``InputXGradient`` (one pass, nothing to report or cancel). The other
input methods keep their own loops: IG, SmoothGrad and occlusion must yield progress and stop
between batches, which captum's one-call ``attribute`` cannot; guided backprop and DeconvNet
must also catch ``F.relu`` calls, which captum's hooks on ``nn.ReLU`` modules miss.
"""

from __future__ import annotations

from torch import Tensor

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.passes import clean_logits, explaining, heatmaps
from cnnexplorer.core.attribution.targets import TargetSpec, resolve_targets
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle


def input_x_gradient(handle: ModelHandle, pixels: Tensor, target: TargetSpec = None,
                     negative: bool = False) -> Job[list[Heatmap]]:
    """``Σ_c pixel · ∂score/∂pixel`` for a batch ``[N,C,H,W]`` in [0,1] pixel space."""
    from captum.attr import InputXGradient

    yield Progress(0, 1, "input × gradient")
    pixels = pixels.to(handle.device)
    with explaining(handle) as model:
        logits = clean_logits(model, pixels)
        targets = resolve_targets(target, logits, negative)
        explainer = InputXGradient(lambda x: targets.scores(model(x)))
        attributions = explainer.attribute(pixels.detach().clone().requires_grad_(True))
    return heatmaps(attributions.detach().sum(dim=1), True, targets, logits, "inputxgrad")
