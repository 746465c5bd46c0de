"""Concept relevance propagation (Achtibat et al. 2023): which channels of a layer a prediction
rests on, and where in the image each of them found its evidence.

One LRP pass (``lrp``'s composite and canonizers) records the relevance reaching ``layer``'s
output; summed over each channel's map it ranks the channels, with each one's share of the
layer's total. Each concept's conditional heatmap is the same backward pass with every other
channel's relevance at that layer set to zero (a gradient hook on the layer's output masks it),
all concepts at once as one batch of copies of the image. When a dataset index is given, a
channel's reference images are its top images by activation (from the index) and the same
candidates re-ranked by the channel's relevance for their own top class (or a given target).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.lrp import LRPModel, lrp_model, relevance, relevance_heatmaps
from cnnexplorer.core.attribution.targets import TargetSpec
from cnnexplorer.core.checks import check_number
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import find_layer, forward_hooks, output_tensors
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle

if TYPE_CHECKING:
    from cnnexplorer.core.dataset.index_types import DatasetIndex


@dataclass(frozen=True)
class Concept:
    """One channel: its relevance at the layer, its share of the layer's total, and its conditional heatmap."""

    channel: int
    relevance: float
    share: float
    heatmap: Heatmap


@dataclass(frozen=True)
class Concepts:
    """The ranked concepts of one image at ``layer`` (most relevant first), the total relevance
    there, the whole LRP map (``heatmap``, its info holding the relevance sum and the logit)."""

    layer: str
    composite: str
    total: float
    heatmap: Heatmap
    concepts: tuple[Concept, ...]

    def to_json(self) -> list[dict]:
        return [{"channel": c.channel, "relevance": c.relevance, "share": c.share} for c in self.concepts]


def _recorded(model: LRPModel, layer: str, mask: Tensor | None = None):
    """A forward hook on ``layer`` of the shadow that keeps the relevance arriving at its output
    (first call only) and, with ``mask`` (``[N,C]``), lets only the masked channels' relevance on."""
    seen: dict[str, Tensor] = {}

    def hook(module, args, output):
        if "output" in seen:
            return
        tensor = output_tensors(output)[0]
        if tensor.ndim not in (2, 4):
            raise UserError(f"layer {layer} gives {tensor.ndim}-d outputs; concepts need channels of a map "
                            "([N,C,H,W]) or units of a vector ([N,C])")
        seen["output"] = tensor

        def on_relevance(grad):
            seen["relevance"] = grad.detach()
            if mask is not None:
                return grad * mask.view(*mask.shape, *([1] * (grad.ndim - 2)))
            return None

        tensor.register_hook(on_relevance)

    return hook, seen


def channel_relevance(model: LRPModel, layer: str, pixels: Tensor, target: TargetSpec, negative: bool = False,
                      mask: Tensor | None = None):
    """Input relevance, logits, targets and the relevance per channel of ``layer`` (``[N,C]``)."""
    hook, seen = _recorded(model, layer, mask)
    with forward_hooks([(find_layer(model.module, layer), hook)]):
        found, logits, targets = relevance(model, pixels, target, negative)
    if "relevance" not in seen:
        raise UserError(f"layer {layer} did not run in the forward pass; pick a layer the model uses")
    at_layer = seen["relevance"]
    return found, logits, targets, at_layer.flatten(2).sum(2) if at_layer.ndim == 4 else at_layer


def concepts_job(handle: ModelHandle, pixels: Tensor, layer: str, target: TargetSpec = None, top: int = 8,
                 composite: str = "epsilon-plus-flat", negative: bool = False) -> Job[Concepts]:
    """The ``top`` most relevant channels of ``layer`` for one image (``[C,H,W]`` or ``[1,C,H,W]``
    in [0,1]) and ``target``, each with its conditional heatmap."""
    check_number("the number of concepts (--top)", top, 1, 64, whole=True,
                 why="each concept is one more image in the conditional pass")
    batch = (pixels[None] if pixels.ndim == 3 else pixels).to(handle.device)
    if batch.shape[0] != 1:
        raise UserError(f"concepts explain one image at a time, got {batch.shape[0]}")
    find_layer(handle.module, layer)
    yield Progress(0, 2, f"concepts at {layer}: relevance per channel")
    with lrp_model(handle, composite, tuple(batch.shape)) as model:
        found, logits, targets, per_channel = channel_relevance(model, layer, batch, target, negative)
        scores = per_channel[0]
        total = float(scores.sum())
        order = torch.argsort(scores, descending=True)[:top]
        yield Progress(1, 2, f"concepts at {layer}: {len(order)} conditional heatmaps")
        mask = torch.zeros(len(order), scores.numel(), device=batch.device)
        mask[torch.arange(len(order)), order] = 1.0
        repeated = replace(targets, items=targets.items * len(order))
        conditional, _, _, _ = channel_relevance(model, layer, batch.expand(len(order), -1, -1, -1), repeated,
                                                 mask=mask)
    whole = relevance_heatmaps(found, logits, targets, "lrp", composite)[0]
    maps = relevance_heatmaps(conditional, logits.expand(len(order), -1), repeated, "lrp", composite, layer)
    concepts = tuple(Concept(c, float(scores[c]), float(scores[c]) / total if total else 0.0,
                             replace(m, info={**m.info, "channel": c}))
                     for c, m in zip(order.tolist(), maps))
    return Concepts(layer, composite, total, whole, concepts)


@dataclass(frozen=True)
class References:
    """A channel's reference images from a dataset index: image numbers by activation (the index's
    top images, strongest first) and the same candidates by the channel's relevance (most first)."""

    channel: int
    by_activation: tuple[int, ...]
    by_relevance: tuple[tuple[int, float], ...]


def references_job(handle: ModelHandle, index: DatasetIndex, load: Callable[[int], Tensor], layer: str,
                   channel: int, target: int | None = None, count: int = 8,
                   composite: str = "epsilon-plus-flat") -> Job[References]:
    """``channel``'s reference images; ``load(i)`` gives image ``i`` of the indexed set as model
    input (``[C,H,W]`` in [0,1]). Relevance is for each candidate's own top class, or ``target``."""
    if layer not in index.layers:
        raise UserError(f"the dataset index has no record of layer {layer}; index it with that layer")
    record = index.layers[layer]
    if not 0 <= channel < record.channels:
        raise UserError(f"layer {layer} has channels 0 to {record.channels - 1}; {channel} is out of range")
    candidates = [int(i) for i in record.top_images[channel] if i >= 0]
    yield Progress(0, 1, f"reference images of {layer} channel {channel}")
    if not candidates:
        return References(channel, (), ())
    pixels = torch.stack([load(i) for i in candidates]).to(handle.device)
    with lrp_model(handle, composite, tuple(pixels.shape)) as model:
        *_, per_channel = channel_relevance(model, layer, pixels, target)
    values = per_channel[:, channel].tolist()
    ranked = sorted(zip(candidates, values), key=lambda pair: -pair[1])
    return References(channel, tuple(candidates[:count]), tuple((i, float(v)) for i, v in ranked[:count]))
