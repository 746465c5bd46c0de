"""Several maps of one image as one job: every (or a chosen set of) method side by side, and
the maps of the top-k classes; progress counts across all of them."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.methods import METHODS, find_method, heatmap_job
from cnnexplorer.core.attribution.targets import TargetSpec
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle, eval_mode


def _scaled(job: Job[Heatmap], number: int, count: int, title: str) -> Job[Heatmap]:
    """Run ``job``, re-scaling its progress into slot ``number`` of ``count``."""
    while True:
        try:
            item = next(job)
        except StopIteration as stop:
            return stop.value
        fraction = item.fraction if isinstance(item, Progress) else None
        yield Progress(number + (fraction or 0.0), count, f"{title} ({number + 1}/{count})")


def comparison_job(handle: ModelHandle, pixels: Tensor, methods: Sequence[str] | None = None,
                   target: TargetSpec = None, layer: str | None = None,
                   negative: bool = False) -> Job[dict[str, Heatmap]]:
    """``{method: Heatmap}`` for ``methods`` (default: all), in that order, with default options.

    ``layer`` applies to the CAM methods only; the others always explain the input.
    """
    names = list(methods or METHODS)
    for name in names:
        find_method(name)
    maps = {}
    for number, name in enumerate(names):
        at = layer if METHODS[name].uses_layer else None
        maps[name] = yield from _scaled(heatmap_job(handle, pixels, name, target, at, negative), number,
                                        len(names), METHODS[name].title)
    return maps


def top_classes_job(handle: ModelHandle, pixels: Tensor, method: str, k: int = 3, layer: str | None = None,
                    **options) -> Job[list[Heatmap]]:
    """The maps of the ``k`` most probable classes, most probable first."""
    batch = (pixels[None] if pixels.ndim == 3 else pixels).to(handle.device)
    with torch.no_grad(), eval_mode(handle.module):
        logits = handle.pixel_model()(batch)[0]
    classes = logits.topk(min(k, logits.numel())).indices.tolist()
    maps = []
    for number, index in enumerate(classes):
        maps.append((yield from _scaled(heatmap_job(handle, batch, method, index, layer, **options), number,
                                        len(classes), f"{METHODS[method].title} for {handle.label(index)}")))
    return maps
