"""SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of the input,
which removes the sharp, noisy local fluctuations of a single gradient."""

from __future__ import annotations

import torch
from torch import Tensor

from cnnexplorer.core.attribution.heatmap import Heatmap, is_signed, reduce_channels
from cnnexplorer.core.attribution.passes import batches, clean_logits, explaining, heatmaps, input_gradients
from cnnexplorer.core.attribution.targets import TargetSpec, resolve_targets
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle


def smoothgrad(handle: ModelHandle, pixels: Tensor, target: TargetSpec = None, negative: bool = False,
               samples: int = 25, noise: float = 0.15, reduce: str = "max-abs", batch: int = 32,
               seed: int = 0) -> Job[list[Heatmap]]:
    """Mean gradient over ``samples`` copies with Gaussian noise of std ``noise`` × the image's
    value range (the paper's 10–20 %), then reduced over channels like ``saliency``.

    Noisy copies of all images run in batches of ``batch``; the noise comes from ``seed``
    (drawn on the CPU, so results are the same on every device). Yields progress per batch.
    """
    pixels = pixels.to(handle.device)
    count = pixels.shape[0]
    gen = torch.Generator().manual_seed(seed)
    spread = (pixels.amax(dim=(1, 2, 3)) - pixels.amin(dim=(1, 2, 3))).clamp_min(1e-6)
    owners = torch.arange(count).repeat_interleave(samples)
    total = torch.zeros_like(pixels)
    with explaining(handle) as model:
        logits = clean_logits(model, pixels)
        targets = resolve_targets(target, logits, negative)
        for part in batches(len(owners), batch):
            yield Progress(part.start, len(owners), "SmoothGrad")
            rows = owners[part]
            noisy = pixels[rows] + torch.randn(len(rows), *pixels.shape[1:], generator=gen).to(pixels.device) \
                * (noise * spread[rows]).view(-1, 1, 1, 1)
            grad, _, _ = input_gradients(model, noisy, targets, owners=rows)
            total.index_add_(0, rows.to(pixels.device), grad)
    return heatmaps(reduce_channels(total / samples, reduce), is_signed(reduce), targets, logits, "smoothgrad")
