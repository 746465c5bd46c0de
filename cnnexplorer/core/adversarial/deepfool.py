"""DeepFool (Moosavi-Dezfooli et al. 2016): the smallest step to the nearest linearised boundary.

Each iteration linearises the classifier around the current image, finds the class whose
boundary is nearest (``|f_k − f_true| / ‖∇(f_k − f_true)‖``) among the ``candidates`` classes
the model ranked highest for the original, and steps just onto it. The accumulated step is
applied with a small ``overshoot``; each image stops as soon as its 8-bit version is fooled.
Untargeted and unbounded: it looks for the smallest perturbation, so there is no ε.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cnnexplorer.core.adversarial.base import Attack, AttackState, margin
from cnnexplorer.core.adversarial.budget import Budget, per_sample_norm
from cnnexplorer.core.errors import UserError


class DeepFool(Attack):
    name = "deepfool"

    def __init__(self, steps: int = 50, overshoot: float = 0.02, candidates: int = 10):
        super().__init__(Budget(), steps, early_stop=True)
        self.overshoot = overshoot
        self.candidates = candidates

    def settings(self) -> dict:
        return {**super().settings(), "overshoot": self.overshoot, "candidates": self.candidates}

    def start(self, state: AttackState) -> None:
        if state.targets is not None:
            raise UserError("deepfool is untargeted: leave out --target, or use pgd, cw or ascent for a target")
        before = state.memory["before"]
        others = before.scatter(1, state.labels[:, None], -1.0)
        count = max(1, min(self.candidates, before.shape[1]) - 1)
        state.memory["candidates"] = others.topk(count, dim=1).indices
        state.memory["total"] = torch.zeros_like(state.original)
        state.var = state.original.clone()

    def objective(self, state: AttackState, idx: Tensor, logits: Tensor, pixels: Tensor) -> Tensor:
        return margin(logits, state.labels[idx])

    def update(self, state: AttackState, idx: Tensor, var: Tensor, loss: Tensor, logits: Tensor) -> None:
        true_logit = logits.gather(1, state.labels[idx, None])
        candidates = state.memory["candidates"][idx]
        nearest = torch.full((idx.numel(),), float("inf"), device=logits.device)
        step = torch.zeros_like(var)
        for j in range(candidates.shape[1]):
            gap = (logits.gather(1, candidates[:, j : j + 1]) - true_logit)[:, 0]
            (w,) = torch.autograd.grad(gap.sum(), var, retain_graph=j < candidates.shape[1] - 1)
            norm = per_sample_norm(w).clamp_min(1e-12)
            distance = gap.detach().abs() / norm.flatten()
            closer = distance < nearest
            nearest = torch.where(closer, distance, nearest)
            r = (gap.detach().abs() + 1e-4).view_as(norm) * w / norm**2
            step = torch.where(closer.view_as(norm), r, step)
        total = state.memory["total"]
        total[idx] += step
        state.var[idx] = (state.original[idx] + (1 + self.overshoot) * total[idx]).clamp(0, 1)
