"""Fooling images by gradient ascent on a class score (the CS231n course notes' method).

Start from the image and climb the target class's logit with normalised gradient steps,
minus an L2 penalty ``λ‖δ‖²`` that keeps the change small, until the model's top-1 (on the
8-bit image) is the target. ``alpha`` is the step's RMS change per pixel, so it means the same
at any resolution (1/255: one grey level on average).
"""

from __future__ import annotations

from torch import Tensor

from cnnexplorer.core.adversarial.base import Attack, AttackState
from cnnexplorer.core.adversarial.budget import Budget, per_sample_norm
from cnnexplorer.core.checks import check_number


class Ascent(Attack):
    name = "ascent"
    needs_target = True

    def __init__(self, alpha: float = 1 / 255, steps: int = 100, l2_penalty: float = 0.01):
        super().__init__(Budget(), steps, early_stop=True)
        self.alpha = check_number("the step size (--step-size)", alpha, 0, 1, open_low=True)
        self.l2_penalty = l2_penalty

    def settings(self) -> dict:
        return {**super().settings(), "alpha": self.alpha, "l2_penalty": self.l2_penalty}

    def objective(self, state: AttackState, idx: Tensor, logits: Tensor, pixels: Tensor) -> Tensor:
        score = logits.gather(1, state.targets[idx, None])[:, 0]
        return -score + self.l2_penalty * (pixels - state.original[idx]).pow(2).flatten(1).sum(dim=1)

    def descend(self, state: AttackState, idx: Tensor, var: Tensor, grad: Tensor) -> Tensor:
        length = self.alpha * grad[0].numel() ** 0.5
        return (var - length * grad / per_sample_norm(grad).clamp_min(1e-12)).clamp(0, 1)
