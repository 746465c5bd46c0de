"""Projected gradient descent (Madry et al. 2018), in the L∞ or the L2 ball.

Untargeted: maximise the cross-entropy of the true class; targeted: minimise that of the
target. L∞ steps move every pixel by ``alpha`` along the gradient's sign, L2 steps move the
image by ``alpha`` along the normalised gradient; each iterate is projected back onto the ball
and [0,1]. Defaults are torchattacks': ε 8/255, α 2/255, 10 steps, random start (L2: ε 1.0,
α 0.2). By default all steps run (the strongest example in the ball, not just the first
one over the boundary); ``early_stop`` stops each image at its first success.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnexplorer.core.adversarial.base import Attack, AttackState
from cnnexplorer.core.adversarial.budget import MAX_L2, Budget, per_sample_norm
from cnnexplorer.core.checks import check_number


class PGD(Attack):
    name = "pgd"

    def __init__(self, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 10, norm: str = "linf",
                 random_start: bool = True, early_stop: bool = False):
        super().__init__(Budget(norm, eps), steps, early_stop)
        self.alpha = check_number("the step size (--step-size)", alpha, 0, MAX_L2 if norm == "l2" else 1, open_low=True)
        self.random_start = random_start

    def settings(self) -> dict:
        return {**super().settings(), "alpha": self.alpha, "random_start": self.random_start}

    def start(self, state: AttackState) -> None:
        x0 = state.original
        if not self.random_start:
            state.var = x0.clone()
            return
        eps, gen = self.budget.eps, state.generator
        if self.budget.norm == "linf":
            noise = (torch.rand(x0.shape, generator=gen, device=x0.device) * 2 - 1) * eps
        else:
            noise = torch.randn(x0.shape, generator=gen, device=x0.device)
            radius = torch.rand((x0.shape[0],) + (1,) * (x0.dim() - 1), generator=gen, device=x0.device) * eps
            noise = noise / per_sample_norm(noise).clamp_min(1e-12) * radius
        state.var = self.budget.project(x0 + noise, x0, state.box)

    def objective(self, state: AttackState, idx: Tensor, logits: Tensor, pixels: Tensor) -> Tensor:
        loss = F.cross_entropy(logits, state.goal[idx], reduction="none")
        return loss if state.targets is not None else -loss

    def descend(self, state: AttackState, idx: Tensor, var: Tensor, grad: Tensor) -> Tensor:
        if self.budget.norm == "linf":
            direction = grad.sign()
        else:
            direction = grad / per_sample_norm(grad).clamp_min(1e-12)
        return self.budget.project(var.sub_(direction, alpha=self.alpha), state.rows(state.original, idx),
                                   state.box_rows(idx))


class PGDL2(PGD):
    name = "pgd-l2"

    def __init__(self, eps: float = 1.0, alpha: float = 0.2, steps: int = 10, random_start: bool = True,
                 early_stop: bool = False):
        super().__init__(eps, alpha, steps, "l2", random_start, early_stop)
