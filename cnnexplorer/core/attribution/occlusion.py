"""Occlusion sensitivity (Zeiler & Fergus 2014): slide a grey patch over the image and record
how much the target score drops; each pixel gets the mean drop of the windows covering it."""

from __future__ import annotations

import torch
from torch import Tensor

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.passes import batches, heatmaps
from cnnexplorer.core.attribution.targets import TargetSpec, resolve_targets
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle, eval_mode


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window offsets every ``stride`` pixels, plus a last one flush with the edge."""
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def occlusion(handle: ModelHandle, pixels: Tensor, target: TargetSpec = None, negative: bool = False,
              window: int | None = None, stride: int | None = None, fill: float | None = None,
              batch: int = 32) -> Job[list[Heatmap]]:
    """Score drops for square ``window`` patches every ``stride`` pixels (defaults: 1/8 and
    1/16 of the shorter side), the occluded copies run in batches of ``batch``.

    ``fill`` is the patch's grey level in [0,1]; None uses the model's normalisation mean (the
    "zero" of its input). The score is the target's logit, so a saturated softmax still moves.
    """
    pixels = pixels.to(handle.device)
    count, channels, height, width = pixels.shape
    window = window or max(1, min(height, width) // 8)
    stride = stride or max(1, window // 2)
    if not 1 <= window <= min(height, width) or stride < 1:
        raise UserError(f"occlusion window must be 1 to {min(height, width)} pixels and stride at least 1; "
                        f"got window {window}, stride {stride}")
    patch = torch.tensor(handle.preprocessing.mean if fill is None else [fill] * channels,
                         dtype=pixels.dtype, device=pixels.device).view(channels, 1, 1)
    spots = [(y, x) for y in window_starts(height, window, stride) for x in window_starts(width, window, stride)]
    total = len(spots) * count
    drops = torch.zeros(count, height, width, device=pixels.device)
    cover = torch.zeros(height, width, device=pixels.device)
    for y, x in spots:
        cover[y:y + window, x:x + window] += 1
    model = handle.pixel_model()
    with torch.no_grad(), eval_mode(handle.module):
        logits = model(pixels)
        targets = resolve_targets(target, logits, negative)
        clean = targets.scores(logits)
        for image in range(count):
            owners = torch.full((len(spots),), image)
            for part in batches(len(spots), batch):
                yield Progress(image * len(spots) + part.start, total, "occlusion")
                occluded = pixels[image].repeat(part.stop - part.start, 1, 1, 1)
                for row, (y, x) in enumerate(spots[part]):
                    occluded[row, :, y:y + window, x:x + window] = patch
                drop = clean[image] - targets.scores(model(occluded), owners[part])
                for value, (y, x) in zip(drop.tolist(), spots[part]):
                    drops[image, y:y + window, x:x + window] += value
    return heatmaps(drops / cover, True, targets, logits, "occlusion")
