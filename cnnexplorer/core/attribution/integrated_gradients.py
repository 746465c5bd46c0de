"""Integrated Gradients (Sundararajan, Taly & Yan 2017): the gradient averaged along the
straight path from a baseline image to the input, times (input − baseline). The attributions
add up to score(input) − score(baseline) (completeness), up to the path integral's error."""

from __future__ import annotations

import torch
from torch import Tensor

from cnnexplorer.core.attribution.blur import gaussian_blur
from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.passes import batches, clean_logits, explaining, heatmaps, input_gradients
from cnnexplorer.core.attribution.targets import TargetSpec, resolve_targets
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle

BASELINES = ("black", "blur", "noise")


def ig_baseline(pixels: Tensor, kind: str, seed: int = 0) -> Tensor:
    """The reference image: black, the input blurred (σ = 1/16 of its longer side, so that
    shapes disappear but colours stay), or uniform noise drawn from ``seed``."""
    if kind == "black":
        return torch.zeros_like(pixels)
    if kind == "blur":
        return gaussian_blur(pixels, max(pixels.shape[-2:]) / 16)
    if kind == "noise":
        gen = torch.Generator().manual_seed(seed)
        return torch.rand(pixels.shape, generator=gen).to(pixels.device, pixels.dtype)
    raise UserError(f"unknown baseline '{kind}'; choose one of {', '.join(BASELINES)}")


def integrated_gradients(handle: ModelHandle, pixels: Tensor, target: TargetSpec = None, negative: bool = False,
                         steps: int = 50, baseline: str = "black", batch: int = 32,
                         seed: int = 0) -> Job[list[Heatmap]]:
    """IG with ``steps`` midpoint-rule points, the path points of all images in batches of
    ``batch``; the map is the attribution summed over colour channels (signed)."""
    if steps < 1:
        raise UserError(f"integrated gradients needs at least 1 step, got {steps}")
    pixels = pixels.to(handle.device)
    reference = ig_baseline(pixels, baseline, seed)
    count = pixels.shape[0]
    owners = torch.arange(count).repeat_interleave(steps)
    alphas = ((torch.arange(steps, dtype=pixels.dtype) + 0.5) / steps).repeat(count).to(pixels.device)
    total = torch.zeros_like(pixels)
    with explaining(handle) as model:
        logits = clean_logits(model, pixels)
        targets = resolve_targets(target, logits, negative)
        for part in batches(len(owners), batch):
            yield Progress(part.start, len(owners), "integrated gradients")
            rows, a = owners[part], alphas[part].view(-1, 1, 1, 1)
            start, end = reference[rows], pixels[rows]
            grad, _, _ = input_gradients(model, start + a * (end - start), targets, owners=rows)
            total.index_add_(0, rows.to(pixels.device), grad)
    attributions = (pixels - reference) * total / steps
    return heatmaps(attributions.sum(dim=1), True, targets, logits, "ig")
