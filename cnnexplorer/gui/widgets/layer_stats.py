"""Each layer's sparsity for the Model tree, measured from the session's shared activation cache:
the forward pass that fills the tree's Zeros and Dead columns also serves the Activations view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnexplorer.core.activations import ActivationCache, channel_stats
from cnnexplorer.core.jobs import Progress


@dataclass(frozen=True)
class Sparsity:
    """One layer's fraction of zero activations and its dead channels (all ≤ 0).

    Dead channels are counted only for outputs without negative values (after a ReLU): a
    convolution's channel that is negative everywhere is not dead, its ReLU may still be.
    """

    zero_fraction: float
    dead: int
    channels: int
    signed: bool

    def texts(self) -> tuple[str, str]:
        return f"{100 * self.zero_fraction:.0f} %", "–" if self.signed else f"{self.dead}/{self.channels}"


def sparsity_job(cache: ActivationCache, handle, image, layers: list[str]):
    """``{layer: Sparsity}`` for the current image, from one (cached) forward pass."""
    yield Progress(0, None, f"measuring activations of {image.name}")
    outputs = cache.get_many(handle, handle.pixels(image), layers, image.sha256)
    result = {}
    for i, (layer, tensors) in enumerate(outputs.items()):
        if tensors:
            stats = channel_stats(tensors[0])
            signed = bool(np.nanmin(stats.min, initial=0.0) < 0)
            result[layer] = Sparsity(stats.layer_zero_fraction, stats.dead_count, int(stats.max.size), signed)
        yield Progress(i + 1, len(outputs), "measuring sparsity")
    return result
