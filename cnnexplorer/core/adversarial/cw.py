"""Carlini–Wagner L2 (2017): minimise ``‖δ‖² + c·f(x)`` with Adam, in tanh space.

``x = (tanh(w) + 1) / 2`` keeps every pixel in [0,1] without clipping; ``f`` is the hinge on the
logit margin (``max(Z_true − max_other, −κ)``, or for a target ``max(max_other − Z_target, −κ)``).
One constant ``c`` (no binary search, like torchattacks' defaults: c 1, κ 0, 50 steps, lr 0.01).
All steps run; among the iterates that fool the model, the one closest to the original is kept.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cnnexplorer.core.adversarial.base import Attack, AttackState, margin
from cnnexplorer.core.adversarial.budget import Budget

_BETAS = (0.9, 0.999)


class CW(Attack):
    name = "cw"
    minimise_distance = True

    def __init__(self, c: float = 1.0, kappa: float = 0.0, steps: int = 50, lr: float = 0.01):
        super().__init__(Budget(), steps, early_stop=False)
        self.c = c
        self.kappa = kappa
        self.lr = lr

    def settings(self) -> dict:
        return {**super().settings(), "c": self.c, "kappa": self.kappa, "lr": self.lr}

    def start(self, state: AttackState) -> None:
        x0 = state.original
        state.var = torch.atanh((2 * x0 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        state.memory.update(m=torch.zeros_like(x0), v=torch.zeros_like(x0),
                            t=torch.zeros(x0.shape[0], device=x0.device))

    def pixels(self, state: AttackState, idx: Tensor, var: Tensor) -> Tensor:
        return (torch.tanh(var) + 1) / 2

    def objective(self, state: AttackState, idx: Tensor, logits: Tensor, pixels: Tensor) -> Tensor:
        distance = (pixels - state.original[idx]).pow(2).flatten(1).sum(dim=1)
        m = margin(logits, state.goal[idx])
        hinge = (-m if state.targets is not None else m).clamp(min=-self.kappa)
        return distance + self.c * hinge

    def descend(self, state: AttackState, idx: Tensor, var: Tensor, grad: Tensor) -> Tensor:
        """One Adam step for the images ``idx`` (their moments are kept per image)."""
        mem = state.memory
        b1, b2 = _BETAS
        t = mem["t"][idx] + 1
        mem["t"][idx] = t
        m = mem["m"][idx] * b1 + (1 - b1) * grad
        v = mem["v"][idx] * b2 + (1 - b2) * grad * grad
        mem["m"][idx], mem["v"][idx] = m, v
        shape = (-1,) + (1,) * (var.dim() - 1)
        m_hat = m / (1 - b1 ** t.view(shape))
        v_hat = v / (1 - b2 ** t.view(shape))
        return var - self.lr * m_hat / (v_hat.sqrt() + 1e-8)
