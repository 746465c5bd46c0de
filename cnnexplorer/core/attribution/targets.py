"""What a heatmap explains: a class (its logit) per image, or any callable on the logits.

Targets are resolved once, from the logits of the unchanged input, so that every pass of a
method (noisy copies, interpolation steps, masked inputs) explains the same thing. ``negative``
explains the negated score: the evidence *against* the target ("why not").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
from torch import Tensor

from cnnexplorer.core.errors import UserError

ScoreFn = Callable[[Tensor], Tensor]
"""One image's logits ``[K]`` → the scalar score to explain."""
TargetSpec = Union[int, ScoreFn, None, Sequence[Union[int, ScoreFn, None]]]
"""None (the top-1 class), a class index, a callable, or one of those per image."""


@dataclass(frozen=True)
class Targets:
    """The resolved target of each image of a batch."""

    items: tuple[int | ScoreFn, ...]
    negative: bool = False

    def scores(self, logits: Tensor, owners: Tensor | None = None) -> Tensor:
        """The score of each row of ``logits`` ``[M,K]``; row ``m`` belongs to image ``owners[m]``
        (default: row m is image m). Class targets are gathered in one operation."""
        owners = torch.arange(logits.shape[0]) if owners is None else owners
        if all(isinstance(item, int) for item in self.items):
            index = torch.tensor(self.items, device=logits.device)[owners.to(logits.device)]
            scores = logits.gather(1, index[:, None])[:, 0]
        else:
            scores = torch.stack([self._score(self.items[int(o)], row) for row, o in zip(logits, owners)])
        return -scores if self.negative else scores

    @staticmethod
    def _score(item: int | ScoreFn, row: Tensor) -> Tensor:
        return row[item] if isinstance(item, int) else item(row)

    def index(self, image: int) -> int | None:
        item = self.items[image]
        return item if isinstance(item, int) else None

    def reported_score(self, image: int, logits: Tensor) -> float:
        """The softmax probability of a class target, or a callable target's value."""
        item = self.items[image]
        if isinstance(item, int):
            return float(torch.softmax(logits[image].float(), dim=0)[item])
        return float(item(logits[image]))


def resolve_targets(target: TargetSpec | Targets, logits: Tensor, negative: bool = False) -> Targets:
    """Targets for the batch whose unchanged-input logits are ``logits`` ``[N,K]``."""
    if isinstance(target, Targets):
        return target
    count, classes = logits.shape
    items = list(target) if isinstance(target, Sequence) else [target] * count
    if len(items) != count:
        raise UserError(f"got {len(items)} targets for {count} images; give one target per image")
    top = logits.argmax(dim=1).tolist()
    resolved = []
    for item, best in zip(items, top):
        if item is None:
            item = best
        elif not callable(item):
            item = int(item)
            if not 0 <= item < classes:
                raise UserError(f"target class {item} is out of range: the model has classes 0 to {classes - 1}")
        resolved.append(item)
    return Targets(tuple(resolved), negative)
