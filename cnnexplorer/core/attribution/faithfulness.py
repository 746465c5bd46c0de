"""Deletion and insertion curves (Petsiuk et al. 2018, RISE): how fast the target's probability
falls when the most relevant pixels are removed first, and rises when they are put back first
into a blurred copy. A faithful map gives a low deletion AUC and a high insertion AUC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cnnexplorer.core.attribution.blur import gaussian_blur
from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.passes import batches
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle, eval_mode


@dataclass(frozen=True)
class Curve:
    """``scores[i]``: the target's probability with a fraction ``fractions[i]`` of the pixels
    deleted (or inserted); ``auc`` is the trapezoid area over fractions 0 to 1."""

    kind: str
    fractions: np.ndarray
    scores: np.ndarray

    @property
    def auc(self) -> float:
        return float(((self.scores[1:] + self.scores[:-1]) / 2 * np.diff(self.fractions)).sum())


def pixel_order(heatmap: Heatmap) -> np.ndarray:
    """Pixel indices (row-major) from the most to the least relevant, ties by position."""
    values = heatmap.scalar_map.ravel()
    return np.argsort(-values, kind="stable")


def curves_job(handle: ModelHandle, pixels: Tensor, heatmap: Heatmap, steps: int = 32,
               batch: int = 32) -> Job[tuple[Curve, Curve]]:
    """The deletion curve (pixels set to black) and the insertion curve (pixels copied into
    the input blurred with σ = 1/8 of its longer side), each at ``steps + 1`` points."""
    if steps < 1:
        raise UserError(f"deletion/insertion curves need at least 1 step, got {steps}")
    if heatmap.target is None:
        raise UserError("deletion/insertion curves need a class target, not a custom score")
    image = (pixels[None] if pixels.ndim == 3 else pixels)[:1].to(handle.device)
    _, _, height, width = image.shape
    order = torch.from_numpy(pixel_order(heatmap)).to(image.device)
    counts = np.round(np.linspace(0, height * width, steps + 1)).astype(int)
    ranks = torch.empty(height * width, dtype=torch.long, device=image.device)
    ranks[order] = torch.arange(height * width, device=image.device)
    ranks = ranks.view(1, 1, height, width)
    starts = {"deletion": (image, torch.zeros_like(image)),
              "insertion": (gaussian_blur(image, max(height, width) / 8), image)}
    model = handle.pixel_model()
    results = []
    with torch.no_grad(), eval_mode(handle.module):
        for number, (kind, (before, after)) in enumerate(starts.items()):
            scores = []
            for part in batches(len(counts), batch):
                yield Progress(number * len(counts) + part.start, 2 * len(counts), f"{kind} curve")
                changed = ranks < torch.tensor(counts[part], device=image.device).view(-1, 1, 1, 1)
                mixed = torch.where(changed, after, before)
                probs = torch.softmax(model(mixed).float(), dim=1)[:, heatmap.target]
                scores.extend(probs.tolist())
            results.append(Curve(kind, counts / (height * width), np.array(scores)))
    return results[0], results[1]
