"""Layers the app's own models are built from, beyond torch.nn's."""

from __future__ import annotations

import torch
from torch import nn


class SigmoidPair(nn.Module):
    """One sigmoid output (a binary classifier's single logit z) shown as two class scores [−z/2, z/2].

    Their softmax is [1 − σ(z), σ(z)], so every view that reads class scores works unchanged, and the
    cross-entropy of the pair is exactly the binary cross-entropy of z: a model with this output has the
    parameters of a single-unit sigmoid head (as the course's cats-vs-dogs models) and trains the same.
    """

    def forward(self, logit: torch.Tensor) -> torch.Tensor:
        if logit.shape[-1] != 1:
            raise ValueError(f"SigmoidPair takes one logit per example, not {logit.shape[-1]}")
        half = logit / 2
        return torch.cat([-half, half], dim=-1)
