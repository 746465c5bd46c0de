"""Every heatmap method by name, and the one entry point the GUI and the CLI use.

Each method is a job (a generator yielding ``Progress`` and returning one ``Heatmap`` per
image), so the GUI can show progress and cancel the long ones (Score-CAM, SmoothGrad,
integrated gradients, occlusion) between two batches; ``compute_heatmap`` drives it to the end.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from torch import Tensor

from cnnexplorer.core.attribution.cam import GradCAM, GradCAMPlusPlus, GuidedGradCAM, LayerCAM, ScoreCAM
from cnnexplorer.core.attribution.guided import deconvnet, guided_backprop
from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.input_x_gradient import input_x_gradient
from cnnexplorer.core.attribution.integrated_gradients import integrated_gradients
from cnnexplorer.core.attribution.lrp import lrp
from cnnexplorer.core.attribution.occlusion import occlusion
from cnnexplorer.core.attribution.saliency import saliency
from cnnexplorer.core.attribution.smoothgrad import smoothgrad
from cnnexplorer.core.attribution.targets import TargetSpec
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, drive
from cnnexplorer.core.model_handle import ModelHandle

_COMMON = {"self", "handle", "pixels", "target", "layer", "negative", "recorded", "options"}


@dataclass(frozen=True)
class Method:
    """A heatmap method: its job, whether it works at a layer, and the options it takes."""

    name: str
    title: str
    job: Callable[..., Job[list[Heatmap]]]
    uses_layer: bool = False

    @property
    def options(self) -> tuple[str, ...]:
        func = type(self.job).weights_job if self.uses_layer else self.job
        return tuple(p for p in inspect.signature(func).parameters if p not in _COMMON)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("gradcam", "Grad-CAM", GradCAM(), uses_layer=True),
        Method("gradcam++", "Grad-CAM++", GradCAMPlusPlus(), uses_layer=True),
        Method("scorecam", "Score-CAM", ScoreCAM(), uses_layer=True),
        Method("layercam", "LayerCAM", LayerCAM(), uses_layer=True),
        Method("guided-gradcam", "Guided Grad-CAM", GuidedGradCAM(), uses_layer=True),
        Method("saliency", "Saliency (gradient)", saliency),
        Method("smoothgrad", "SmoothGrad", smoothgrad),
        Method("guided", "Guided backprop", guided_backprop),
        Method("deconvnet", "DeconvNet", deconvnet),
        Method("ig", "Integrated gradients", integrated_gradients),
        Method("inputxgrad", "Input × gradient", input_x_gradient),
        Method("occlusion", "Occlusion", occlusion),
        Method("lrp", "LRP", lrp),
    )
}


def find_method(name: str) -> Method:
    if name not in METHODS:
        raise UserError(f"unknown heatmap method '{name}'; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def heatmaps_job(handle: ModelHandle, pixels: Tensor, method: str, target: TargetSpec = None,
                 layer: str | None = None, negative: bool = False, **options) -> Job[list[Heatmap]]:
    """One heatmap per image of ``pixels`` ``[N,C,H,W]`` in [0,1] (see ``heatmap_job``)."""
    found = find_method(method)
    unknown = sorted(set(options) - set(found.options))
    if unknown:
        takes = ", ".join(found.options) or "no options"
        raise UserError(f"method {method} does not take {', '.join(unknown)} (it takes {takes})")
    if pixels.ndim != 4 or pixels.shape[1] != handle.input_size[0]:
        raise UserError(f"expected pixels [N,{handle.input_size[0]},H,W] for this model, got {list(pixels.shape)}")
    if found.uses_layer:
        return (yield from found.job(handle, pixels, target, layer, negative, **options))
    if layer is not None:
        raise UserError(f"method {method} works on the input, not at a layer; leave out the layer "
                        "or pick a CAM method (" + ", ".join(n for n, m in METHODS.items() if m.uses_layer) + ")")
    return (yield from found.job(handle, pixels, target, negative, **options))


def heatmap_job(handle: ModelHandle, pixels: Tensor, method: str, target: TargetSpec = None,
                layer: str | None = None, negative: bool = False, **options) -> Job[Heatmap]:
    """The heatmap of ``method`` for one image ``[1,C,H,W]`` (or ``[C,H,W]``) in [0,1].

    ``target``: a class index, a callable on the logits, or None for the top-1 class.
    ``layer``: for CAM methods, default the last spatial layer (``last_conv_layer``).
    ``negative``: explain the evidence against the target ("why not").
    ``options``: the method's own (``METHODS[name].options``), e.g. ``steps`` for ``ig``.
    Never changes the model's weights, train/eval flags or ``requires_grad`` flags.
    """
    batch = pixels[None] if pixels.ndim == 3 else pixels
    if batch.shape[0] != 1:
        raise UserError(f"heatmap_job takes one image; use heatmaps_job for {batch.shape[0]}")
    return (yield from heatmaps_job(handle, batch, method, target, layer, negative, **options))[0]


def compute_heatmap(handle: ModelHandle, pixels: Tensor, method: str, target: TargetSpec = None,
                    layer: str | None = None, negative: bool = False, **options) -> Heatmap:
    """``heatmap_job`` run to its end."""
    return drive(heatmap_job(handle, pixels, method, target, layer, negative, **options))


def compute_heatmaps(handle: ModelHandle, pixels: Tensor, method: str, target: TargetSpec = None,
                     layer: str | None = None, negative: bool = False, **options) -> list[Heatmap]:
    """``heatmaps_job`` run to its end."""
    return drive(heatmaps_job(handle, pixels, method, target, layer, negative, **options))
