"""The template every CAM method fills in: ``map = ReLU(Σ_k w_k · A_k)`` at one layer.

One forward pass records the layer's activations ``A`` ``[N,K,h,w]`` (laid out by
``core.layouts``: transformer tokens and channels-last outputs become maps); methods that need them
get the gradients ``G`` of the target scores w.r.t. ``A``. A subclass says how to weigh the
activations (``weights``, or the ``weights_job`` generator when that takes more passes) and
may refine the upsampled map (``finish``).

The forward pass runs under ``no_grad`` up to the layer and records the graph only after it,
so the backward pass covers just the layers above (for torchvision ResNet at ``layer4``: the
pooling and the classifier), and costs almost nothing next to the forward pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.layers import last_conv_layer
from cnnexplorer.core.attribution.passes import heatmaps
from cnnexplorer.core.attribution.targets import TargetSpec, Targets, resolve_targets
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import find_layer, forward_hooks
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.layouts import cam_layer, layout_of, require_gradients
from cnnexplorer.core.model_handle import ModelHandle, eval_mode


@dataclass(frozen=True)
class LayerPass:
    """What one forward (and backward) pass recorded at the CAM layer."""

    layer: str
    activations: Tensor
    gradients: Tensor | None
    logits: Tensor
    targets: Targets


def layer_pass(handle: ModelHandle, pixels: Tensor, layer: str, target: TargetSpec | Targets,
               negative: bool = False, gradients: bool = True) -> LayerPass:
    """Activations of ``layer`` (its last call, for a module that runs several times) as
    ``[N,K,h,w]`` maps (``core.layouts``: a ViT block's patch tokens on their grid, Swin's
    channels-last outputs permuted) and, with ``gradients``, the gradients of the target
    scores w.r.t. them."""
    if gradients:
        require_gradients(handle.module, "gradient-based CAM methods (try Score-CAM)")
    module = find_layer(handle.module, layer)
    layout = layout_of(handle.module, layer)
    recorded: list[Tensor] = []
    owner = threading.get_ident()

    def hook(mod, args, output):
        if threading.get_ident() != owner:  # another worker running the same model
            return None
        if not isinstance(output, Tensor) or layout.maps(output).ndim != 4:
            shape = list(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise UserError(f"layer '{layer}' gives {shape}, not a feature map [N,C,H,W]; "
                            "pick a convolutional layer or a block for CAM methods")
        if not gradients:
            recorded.append(output.detach().clone())
            return None
        torch.set_grad_enabled(True)  # from here on, record the graph (restored by no_grad's exit)
        leaf = output.detach().requires_grad_(True)
        recorded.append(leaf)
        return leaf.clone()  # later in-place operations (ReLU(inplace=True)) must not touch the leaf

    with eval_mode(handle.module), forward_hooks([(module, hook)]):
        with torch.no_grad():
            logits = handle.pixel_model()(pixels)
        if not recorded:
            raise UserError(f"layer '{layer}' did not run for this input; pick another layer")
        targets = resolve_targets(target, logits.detach(), negative)
        grads = None
        if gradients:
            with torch.enable_grad():
                score = targets.scores(logits).sum()
            (raw,) = torch.autograd.grad(score, recorded[-1], allow_unused=True)
            if raw is None or not raw.any():
                raise UserError(f"the target score does not depend on layer '{layer}' for this input (its gradient "
                                "is zero everywhere, as with an untrained head); pick an earlier layer or another "
                                "target, or load trained weights")
            grads = layout.maps(raw)
            if not grads.any():
                hint = cam_layer(handle.module)
                raise UserError(f"the target score depends on layer '{layer}' only through its class token, which "
                                "has no place on the map; pick an earlier layer" + (f" such as {hint}" if hint else ""))
    return LayerPass(layer, layout.maps(recorded[-1].detach()), grads, logits.detach(), targets)


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """``[N,K,h,w]`` → ``[N,K,H,W]``, bilinear (half-pixel centres)."""
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


class CAM:
    """A class activation map method; call it like the other methods: ``CAM()(handle, pixels, …)``."""

    name: ClassVar[str]
    title: ClassVar[str]
    uses_gradients: ClassVar[bool] = True

    def __call__(self, handle: ModelHandle, pixels: Tensor, target: TargetSpec = None, layer: str | None = None,
                 negative: bool = False, **options) -> Job[list[Heatmap]]:
        """Maps for a batch ``[N,C,H,W]`` at ``layer`` (default: ``last_conv_layer``)."""
        yield Progress(0, 1, self.title)
        pixels = pixels.to(handle.device)
        layer = layer or last_conv_layer(handle.module, tuple(pixels.shape[1:]), handle.device)
        recorded = layer_pass(handle, pixels, layer, target, negative, self.uses_gradients)
        weights = yield from self.weights_job(handle, pixels, recorded, **options)
        cams = (weights * recorded.activations).sum(dim=1, keepdim=True).clamp(min=0)
        maps = self.finish(handle, pixels, upsample(cams, tuple(pixels.shape[-2:]))[:, 0], recorded)
        return heatmaps(maps, False, recorded.targets, recorded.logits, self.name, layer)

    def weights_job(self, handle: ModelHandle, pixels: Tensor, recorded: LayerPass) -> Job[Tensor]:
        """The weights, broadcastable to the activations; a generator for methods that need passes."""
        yield from ()
        return self.weights(recorded.activations, recorded.gradients)

    def weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        raise NotImplementedError

    def finish(self, handle: ModelHandle, pixels: Tensor, maps: Tensor, recorded: LayerPass) -> Tensor:
        """The final ``[N,H,W]`` maps from the upsampled CAMs (unchanged by default)."""
        return maps
