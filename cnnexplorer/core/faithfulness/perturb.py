"""Deletion, insertion and ROAD scores for a batch of images and their maps, batched.

Every perturbed image of every image and step is one row of a batch of ``batch`` rows, so a
curve of N steps costs about N batched forward passes per image, not N single ones.

* Deletion and insertion follow RISE (Petsiuk et al. 2018): pixels are ordered by the map
  (largest first, ties by position) and changed in N equal steps; deletion sets them to a
  baseline colour (below), insertion copies them into the image
  blurred with σ = 1/8 of its longer side (RISE's blurred canvas). The score at each step is the
  softmax probability of the explained class; the AUC is the trapezoid area over the removed
  fraction 0…1. At 0 deletion is the original image (its probability is known) and at 1 the
  baseline alone (the same for every image: one forward); insertion ends on the original.
  The baseline colour is the caller's; ``run`` uses RISE's: zeros of the *normalised* input (RISE
  deletes on the normalised tensor), that is the model's mean colour. Black is far from the
  training data's colours on some models and a black blob of the object's outline is itself a
  shape (on the shapes demo Grad-CAM then barely beats a random map; with the mean it does clearly).
* ROAD (Rong et al. 2022) removes 10, 20 … 90 % of the pixels, the most relevant first (MoRF) or
  the least relevant first (LeRF), and fills them by noisy linear imputation; the score is the
  mean probability over the nine levels (low MoRF and high LeRF mean a faithful map).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cnnexplorer.core.attribution.blur import gaussian_blur
from cnnexplorer.core.faithfulness.imputation import noisy_linear_imputation
from cnnexplorer.core.jobs import Job, Progress

ROAD_LEVELS = tuple(round(0.1 * k, 1) for k in range(1, 10))


def auc(fractions: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Each curve's (row's) trapezoid area over ``fractions``."""
    return ((curves[:, 1:] + curves[:, :-1]) / 2 * np.diff(fractions)).sum(axis=1)


def pixel_ranks(maps: Tensor) -> Tensor:
    """``[n,1,H,W]``: each pixel's place in its map's order, 0 for the largest (ties by position)."""
    flat = maps.reshape(maps.shape[0], -1)
    order = torch.argsort(-flat, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks.view(maps.shape[0], 1, *maps.shape[-2:])


def _probabilities(model, rows: list[tuple[int, object]], make, targets: Tensor, batch: int, label: str,
                   done: int, total: int) -> Job[np.ndarray]:
    """The target's probability for each ``(image, key)`` row, ``make(images, keys)`` giving the
    perturbed inputs of a batch of rows."""
    out = np.empty(len(rows))
    for start in range(0, len(rows), batch):
        yield Progress(done + start, total, label)
        part = rows[start:start + batch]
        owners = torch.tensor([i for i, _ in part], device=targets.device)
        inputs = make(owners, [k for _, k in part])
        probs = torch.softmax(model(inputs).float(), dim=1)
        out[start:start + len(part)] = probs.gather(1, targets[owners][:, None])[:, 0].cpu().numpy()
    return out


def deletion_job(model, images: Tensor, maps: Tensor, targets: Tensor, original: Tensor, baseline: Tensor,
                 steps: int = 20, batch: int = 64, insertion: bool = True) -> Job[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Fractions and the deletion (and insertion) curves ``[n, steps+1]`` of ``images`` ``[n,C,H,W]``
    explained by ``maps`` ``[n,H,W]``; ``original`` ``[n]``: each target's probability on the image;
    ``baseline`` ``[C]``: the colour deleted pixels take."""
    n, _, height, width = images.shape
    ranks = pixel_ranks(maps.to(images.device))
    counts = torch.round(torch.linspace(0, height * width, steps + 1)).long().tolist()
    fractions = np.array(counts, dtype=np.float64) / (height * width)
    rows = [(i, c) for i in range(n) for c in counts[1:-1]]
    rows_in = [(i, c) for i in range(n) for c in counts[:-1]] if insertion else []
    total = len(rows) + len(rows_in)

    def mixed(before: Tensor, after: Tensor):
        def make(owners: Tensor, keys: list) -> Tensor:
            changed = ranks[owners] < torch.tensor(keys, device=images.device).view(-1, 1, 1, 1)
            return torch.where(changed, after[owners], before[owners])
        return make

    flat = baseline.to(images.device, images.dtype).view(1, -1, 1, 1).expand_as(images[:1])
    end = torch.softmax(model(flat).float(), dim=1)[0, targets]
    middle = yield from _probabilities(model, rows, mixed(images, flat.expand_as(images)), targets, batch,
                                       "deletion curves", 0, total)
    deletion = np.column_stack([original.cpu().numpy(), middle.reshape(n, -1), end.cpu().numpy()])
    if not insertion:
        return fractions, deletion, None
    blurred = gaussian_blur(images, max(height, width) / 8)
    middle = yield from _probabilities(model, rows_in, mixed(blurred, images), targets, batch,
                                       "insertion curves", len(rows), total)
    insertion_curve = np.column_stack([middle.reshape(n, -1), original.cpu().numpy()])
    return fractions, deletion, insertion_curve


def road_job(model, images: Tensor, maps: Tensor, targets: Tensor, batch: int = 64,
             generator: torch.Generator | None = None) -> Job[tuple[np.ndarray, np.ndarray]]:
    """ROAD's mean probability over removal levels 10 … 90 %, most relevant first (MoRF) and least
    relevant first (LeRF), each image's removed pixels filled by noisy linear imputation."""
    n, _, height, width = images.shape
    ranks = pixel_ranks(maps.to(images.device))
    pixels = height * width
    rows = [(i, (order, level)) for i in range(n) for order in ("morf", "lerf") for level in ROAD_LEVELS]

    def make(owners: Tensor, keys: list) -> Tensor:
        removed = torch.stack([ranks[o] < round(level * pixels) if order == "morf" else ranks[o] >= pixels - round(level * pixels)
                               for o, (order, level) in zip(owners.tolist(), keys)])
        return noisy_linear_imputation(images[owners], removed, generator=generator)

    probs = yield from _probabilities(model, rows, make, targets, batch, "ROAD", 0, len(rows))
    probs = probs.reshape(n, 2, len(ROAD_LEVELS))
    return probs[:, 0].mean(axis=1), probs[:, 1].mean(axis=1)
