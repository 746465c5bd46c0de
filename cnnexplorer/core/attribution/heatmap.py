"""The result every attribution method returns, and how its values become display values."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cnnexplorer.core.errors import UserError

REDUCTIONS = ("max-abs", "mean", "rgb")


@dataclass(frozen=True, eq=False)
class Heatmap:
    """Where the evidence for (or against) a target lies, at the model input's resolution.

    ``map`` is ``[H,W]`` float32 (``[H,W,C]`` for a gradient kept per colour channel), raw
    values as the method computed them; ``signed`` says whether negative values carry meaning.
    ``target`` is the explained class (None for a callable target) and ``score`` its softmax
    probability on the unchanged input (the callable's value for a callable target).
    ``negative`` marks a "why not" map: the evidence against the target. ``info`` holds what a
    method reports besides the map (LRP: its composite, the relevance sum and the logit it conserves).
    """

    map: np.ndarray
    signed: bool
    target: int | None
    score: float
    method: str
    layer: str | None = None
    negative: bool = False
    info: dict = field(default_factory=dict)

    @property
    def scalar_map(self) -> np.ndarray:
        """One value per pixel: per-channel maps reduced by the largest magnitude."""
        return np.abs(self.map).max(axis=2) if self.map.ndim == 3 else self.map

    def peak(self) -> tuple[int, int]:
        """``(x, y)`` of the largest value in model-input pixels (the first one on ties)."""
        y, x = np.unravel_index(int(np.argmax(self.scalar_map)), self.scalar_map.shape)
        return int(x), int(y)

    def scale(self, clip: float = 0.0) -> float:
        """The magnitude that saturates the colour map: the ``100 - clip`` percentile of the map's
        magnitudes (positive values for unsigned maps), or its maximum when that is 0.

        Gradient maps are dominated by a few extreme pixels; scaling by the maximum leaves the
        rest near zero (specks), so attribution libraries let the top 1-2 % saturate.
        """
        values = np.abs(self.map) if self.signed or self.map.ndim == 3 else np.clip(self.map, 0.0, None)
        top = float(values.max())
        if 0.0 < clip < 100.0 and top > 0:
            clipped = float(np.percentile(values, 100.0 - clip))
            top = clipped if clipped > 0 else top
        return top

    def display_values(self, clip: float = 0.0) -> np.ndarray:
        """Values in [0,1] for a colour map, ``scale(clip)`` at the ends: unsigned maps from 0
        (negatives clipped to 0), signed and per-channel maps symmetric with 0 at 0.5."""
        values = self.map.astype(np.float32)
        top = self.scale(clip)
        if self.signed or values.ndim == 3:
            return np.clip(0.5 + 0.5 * values / top, 0.0, 1.0) if top > 0 else np.full_like(values, 0.5)
        return np.clip(values / top, 0.0, 1.0) if top > 0 else np.zeros_like(values)


def reduce_channels(gradients: torch.Tensor, how: str) -> torch.Tensor:
    """``[N,C,H,W]`` per-channel attributions → ``[N,H,W]`` (or ``[N,H,W,C]`` for ``rgb``).

    ``max-abs`` is Simonyan et al.'s saliency (largest magnitude over the colour channels,
    sign-blind), ``mean`` keeps the sign, ``rgb`` keeps every channel.
    """
    if how == "max-abs":
        return gradients.abs().amax(dim=1)
    if how == "mean":
        return gradients.mean(dim=1)
    if how == "rgb":
        return gradients.permute(0, 2, 3, 1)
    raise UserError(f"unknown channel reduction '{how}'; choose one of {', '.join(REDUCTIONS)}")


def is_signed(how: str) -> bool:
    return how != "max-abs"
