"""Concept relevance propagation (Achtibat et al. 2023): which channels of a layer a prediction
rests on, and where in the image each of them found its evidence.

One LRP pass (``lrp``'s composite and canonizers) records the relevance reaching ``layer``'s
output; summed over each channel's map it ranks the channels, with each one's share of the
layer's total. Each concept's conditional heatmap is that relevance with every other channel's
set to zero, passed down from the layer to the input (a forward stopped at the layer, then a
backward from its output), all concepts at once as one batch of copies of the image. When a dataset index is given, a
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
from cnnexplorer.core.attribution.targets import Targets, TargetSpec
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


class _Reached(Exception):
    """Raised by the hook that stops a forward pass at the explained layer."""


def _output_of(layer: str, stop: bool = False, on_grad: Callable[[Tensor], None] | None = None):
    """A forward hook on ``layer`` keeping its first output, then ending the pass there (``stop``) or
    handing the gradient (in zennit: the relevance) that reaches that output to ``on_grad``; the
    tensor hook goes on during the forward pass, before a later in-place op can change the output."""
    seen: dict[str, Tensor] = {}

    def hook(module, args, output):
        if "output" in seen:
            return
        tensor = output_tensors(output)[0]
        if tensor.ndim < 2:
            raise UserError(f"layer {layer} gives {tensor.ndim}-d outputs; concepts need channels")
        seen["output"] = tensor
        if on_grad is not None:
            tensor.register_hook(on_grad)
        if stop:
            raise _Reached

    return hook, seen


def layer_relevance(model: LRPModel, layer: str, pixels: Tensor, target: TargetSpec | Targets,
                    negative: bool = False) -> tuple[Tensor, Tensor, Targets, Tensor]:
    """Input relevance, logits, targets, and the relevance arriving at ``layer``'s output (``[N,C,…]``)."""
    arrived: dict[str, Tensor] = {}
    hook, _ = _output_of(layer, on_grad=lambda grad: arrived.setdefault("relevance", grad.detach()))
    with forward_hooks([(find_layer(model.module, layer), hook)]):
        found, logits, targets = relevance(model, pixels, target, negative)
    if "relevance" not in arrived:
        raise UserError(f"layer {layer} did not run in the forward pass; pick a layer the model uses")
    return found, logits, targets, arrived["relevance"]


def per_channel(at_layer: Tensor) -> Tensor:
    """``[N,C,…]`` relevance → ``[N,C]``, summed over each channel's map."""
    return at_layer.flatten(2).sum(2) if at_layer.ndim > 2 else at_layer


def relevance_from_layer(model: LRPModel, layer: str, pixels: Tensor, at_layer: Tensor) -> Tensor:
    """Input relevance of ``at_layer`` (relevance put on ``layer``'s output, one row per image) passed
    down from the layer alone: the forward stops there, so no relevance goes around it (a residual
    sum above the layer, in the same block, cannot add any)."""
    hook, seen = _output_of(layer, stop=True)
    inputs = model.normalise(pixels)
    try:
        with forward_hooks([(find_layer(model.module, layer), hook)]):
            model.forward(inputs)
    except _Reached:
        pass
    (found,) = torch.autograd.grad(seen["output"], inputs, at_layer)
    return found


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
        found, logits, targets, at_layer = layer_relevance(model, layer, batch, target, negative)
        scores = per_channel(at_layer)[0]
        total = float(scores.sum())
        order = torch.argsort(scores, descending=True)[:top]
        yield Progress(1, 2, f"concepts at {layer}: {len(order)} conditional heatmaps")
        mask = torch.zeros(len(order), scores.numel(), device=batch.device)
        mask[torch.arange(len(order)), order] = 1.0
        masked = at_layer * mask.view(*mask.shape, *([1] * (at_layer.ndim - 2)))
        conditional = relevance_from_layer(model, layer, batch.expand(len(order), -1, -1, -1).contiguous(), masked)
        repeated = replace(targets, items=targets.items * len(order))
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
        *_, at_layer = layer_relevance(model, layer, pixels, target)
    values = per_channel(at_layer)[:, channel].tolist()
    ranked = sorted(zip(candidates, values), key=lambda pair: -pair[1])
    return References(channel, tuple(candidates[:count]), tuple((i, float(v)) for i, v in ranked[:count]))
