"""The loss of a model with auxiliary classifiers (GoogLeNet, Inception v3), as their authors trained them.

In training mode such a model returns its main logits with the auxiliary heads' logits (torchvision's
``GoogLeNetOutputs``, ``InceptionOutputs``, or any tuple whose first item is the main output). The
loss is the main cross-entropy plus ``aux_weight`` times each auxiliary one (0.3 in the GoogLeNet
paper; 0 trains the main head alone), and accuracy is read from the main logits.
"""

from __future__ import annotations

import torch
from torch import nn

AUX_WEIGHT = 0.3


def split_outputs(outputs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The main logits and the auxiliary ones (none for a plain tensor)."""
    if isinstance(outputs, torch.Tensor):
        return outputs, []
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0], [o for o in outputs[1:] if isinstance(o, torch.Tensor)]
    raise TypeError(f"the model returned a {type(outputs).__name__}; a classifier returns a [batch, classes] "
                    "tensor, or a tuple whose first item is one")


def training_loss(outputs, labels: torch.Tensor, aux_weight: float = AUX_WEIGHT) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, main logits): cross-entropy of the main output plus ``aux_weight`` × each auxiliary one."""
    logits, aux = split_outputs(outputs)
    loss = nn.functional.cross_entropy(logits, labels)
    if aux_weight:
        for extra in aux:
            loss = loss + aux_weight * nn.functional.cross_entropy(extra, labels)
    return loss, logits
