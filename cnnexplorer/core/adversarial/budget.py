"""Perturbation budgets: projection onto the ε-ball and [0,1], and 8-bit quantisation.

Every image an attack judges is an 8-bit image (values k/255), because that is what a saved
PNG holds: an adversarial example that only fools the model in float32 is not one. The
original is snapped to the 8-bit grid first (a no-op for pictures loaded from files, whose
pixels are k/255 already), so ``‖δ‖∞ ≤ ε`` can be kept exactly in whole grey levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import Tensor

from cnnexplorer.core.checks import check_number
from cnnexplorer.core.errors import UserError

NORMS = ("linf", "l2")
MAX_L2 = 1e4


def to_8bit(pixels: Tensor) -> Tensor:
    """``round(x·255)/255`` clamped to [0,1]: the image a PNG would store."""
    return (pixels * 255).round().clamp(0, 255) / 255


def as_uint8(pixels: Tensor) -> Tensor:
    """[0,1] pixels on the 8-bit grid → uint8 grey levels (exact)."""
    return (pixels * 255).round().clamp(0, 255).to(torch.uint8)


def parse_eps(text: str) -> float:
    """``"8/255"``, ``"0.03"`` or ``"1e-2"`` → a float in pixel units (0–1)."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise UserError(f"cannot read the budget '{text}': write a number such as 0.03 or a fraction such as 8/255") from None
    if not value >= 0 or math.isinf(value):
        raise UserError(f"the budget {text} must be a positive number such as 8/255")
    return value


def per_sample_norm(t: Tensor) -> Tensor:
    """The L2 norm of each sample of a ``[N,...]`` tensor, shaped ``[N,1,...,1]`` to broadcast."""
    return t.flatten(1).norm(dim=1).view(-1, *[1] * (t.dim() - 1))


@dataclass(frozen=True)
class Box:
    """An L∞ ball cut to [0,1], per pixel: ``low``/``high`` in pixel units, ``q_low``/``q_high``
    in whole grey levels. Computed once per run, it makes projection and quantisation one
    clamp each in PGD's inner loop."""

    low: Tensor
    high: Tensor
    q_low: Tensor
    q_high: Tensor

    def rows(self, idx: Tensor) -> "Box":
        return Box(self.low[idx], self.high[idx], self.q_low[idx], self.q_high[idx])


@dataclass(frozen=True)
class Budget:
    """How far an attack may move the image: an L∞ or L2 ball of radius ``eps``, or unbounded (None)."""

    norm: str | None = None
    eps: float | None = None

    def __post_init__(self) -> None:
        if self.norm is not None and self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; use one of {NORMS}")
        if (self.norm is None) != (self.eps is None):
            raise ValueError("a budget needs both a norm and eps, or neither")
        if self.norm == "linf":
            check_number("the budget ε (--eps)", self.eps, 0, 1, why="an L∞ budget is a share of the 0–1 pixel range")
        elif self.norm == "l2":
            check_number("the budget ε (--eps)", self.eps, 0, MAX_L2,
                         why=f"{MAX_L2:g} is past the L2 distance between any two images of up to 4096×4096 pixels")

    @property
    def levels(self) -> int:
        """The L∞ budget in whole 8-bit grey levels (8 for ε = 8/255)."""
        return math.floor(self.eps * 255 + 1e-4)

    def box(self, original: Tensor) -> Box | None:
        """The L∞ ball around ``original`` (on the 8-bit grid) as a ``Box``; None for other budgets."""
        if self.norm != "linf":
            return None
        q0 = (original * 255).round()
        return Box((original - self.eps).clamp(min=0), (original + self.eps).clamp(max=1),
                   (q0 - self.levels).clamp(min=0), (q0 + self.levels).clamp(max=255))

    def project(self, pixels: Tensor, original: Tensor, box: Box | None = None) -> Tensor:
        """The nearest point of the ε-ball around ``original`` that lies inside [0,1].

        ``box`` (``self.box(original)``) gives the same result for L∞ with one clamp.
        """
        if box is not None:
            return torch.clamp(pixels, box.low, box.high)
        delta = pixels - original
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        elif self.norm == "l2":
            delta = delta * (self.eps / per_sample_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
        return (original + delta).clamp(0, 1)

    def quantise(self, pixels: Tensor, original: Tensor, box: Box | None = None) -> Tensor:
        """``pixels`` on the 8-bit grid, still inside the budget after rounding.

        ``original`` must be on the grid. L∞: round, then clamp each pixel to ±``levels`` grey
        levels of the original (with ``box``: one clamp). L2: round, and where that leaves the
        ball, round every pixel towards the original instead (no pixel moves further, so the
        norm cannot grow).
        """
        if box is not None:
            return (pixels * 255).round().clamp(box.q_low, box.q_high) / 255
        q0 = (original * 255).round()
        scaled = pixels * 255
        q = scaled.round().clamp(0, 255)
        if self.norm == "linf":
            q = torch.minimum(torch.maximum(q, q0 - self.levels), q0 + self.levels)
        elif self.norm == "l2":
            towards = (q0 + (scaled - q0).trunc()).clamp(0, 255)
            outside = per_sample_norm(q - q0) > self.eps * 255
            q = torch.where(outside, towards, q)
        return q / 255

    def describe(self) -> str:
        """``Linf 8/255``, ``L2 1.00`` or ``unbounded``, for pictures and logs."""
        if self.norm == "linf":
            return f"Linf eps {self.levels}/255"
        if self.norm == "l2":
            return f"L2 eps {self.eps:.3g}"
        return "unbounded"
