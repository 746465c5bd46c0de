"""Input × Gradient (Shrikumar et al. 2016): the gradient weighted by the pixel value, summed
over the colour channels; a first-order estimate of each pixel's contribution (signed).

One forward and one backward pass, the same as saliency's (``passes.input_gradients``). Like
the other input methods it keeps its own loop: IG, SmoothGrad and occlusion must yield progress
and stop between batches, which captum's one-call ``attribute`` cannot, and guided backprop and
DeconvNet must also catch ``F.relu`` calls, which captum's hooks on ``nn.ReLU`` modules miss.
"""

from __future__ import annotations

from torch import Tensor

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.passes import explaining, heatmaps, input_gradients
from cnnexplorer.core.attribution.targets import TargetSpec
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle


def input_x_gradient(handle: ModelHandle, pixels: Tensor, target: TargetSpec = None,
                     negative: bool = False) -> Job[list[Heatmap]]:
    """``Σ_c pixel · ∂score/∂pixel`` for a batch ``[N,C,H,W]`` in [0,1] pixel space."""
    yield Progress(0, 1, "input × gradient")
    pixels = pixels.to(handle.device)
    with explaining(handle) as model:
        grad, logits, targets = input_gradients(model, pixels, target, negative)
    return heatmaps((pixels * grad).sum(dim=1), True, targets, logits, "inputxgrad")
