"""Which layer a CAM method uses by default: the end of the last stage with a spatial map."""

from __future__ import annotations

import weakref

import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import forward_hooks
from cnnexplorer.core.layouts import cam_layer, layout_of
from cnnexplorer.core.model_handle import eval_mode


_RESAMPLING = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
"""Pooling to a fixed output grid: never a CAM layer (see ``last_conv_layer``)."""

_FOUND: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], str]] = weakref.WeakKeyDictionary()
"""Per model and input size, the layer found: the probe is a whole forward pass, which would
otherwise double the cost of every CAM map."""


def last_conv_layer(module: nn.Module, input_size: tuple[int, int, int], device: torch.device | str = "cpu") -> str:
    """The dotted name of the last module to *finish* with an ``[N,C,H,W]`` output larger than
    1×1 (as ``core.layouts`` lays it out), found by one probe forward on zeros of ``input_size``
    ``(C,H,W)``; for a ViT, the layer ``core.layouts.cam_layer`` names.

    Finishing order prefers the enclosing block over its last convolution: ``layer4`` in a
    torchvision ResNet (not ``layer4.2.conv3``, which is before batch norm and the shortcut),
    ``features`` (the last conv block) in VGG, AlexNet, MobileNet and the built-in models,
    ``permute`` (the final norm's maps) in Swin. Global pooling (1×1) is excluded, and so is
    adaptive pooling to a fixed grid (VGG's and AlexNet's ``avgpool``, 7×7 and 6×6 whatever the
    input): it only resamples the last block's maps, and at a small input it would enlarge
    them. The answer is remembered per model and input size.
    """
    known = _FOUND.setdefault(module, {})
    if tuple(input_size) not in known:
        known[tuple(input_size)] = cam_layer(module) or _probe(module, tuple(input_size), device)
    return known[tuple(input_size)]


def _probe(module: nn.Module, input_size: tuple[int, ...], device: torch.device | str) -> str:
    finished: list[str] = []

    def recorder(name: str):
        layout = layout_of(module, name)

        def hook(mod, args, output):
            if isinstance(output, torch.Tensor):
                maps = layout.maps(output)
                if maps.ndim == 4 and maps.shape[2] * maps.shape[3] > 1:
                    finished.append(name)

        return hook

    named = [(name, mod) for name, mod in module.named_modules() if name and not isinstance(mod, _RESAMPLING)]
    with torch.no_grad(), eval_mode(module), forward_hooks([(mod, recorder(name)) for name, mod in named]):
        module(torch.zeros(1, *input_size, device=device))
    if not finished:
        raise UserError("this model has no layer with a spatial feature map, so CAM methods cannot run; "
                        "use a gradient method such as saliency")
    return finished[-1]
