"""What one indexing pass over a probe set records, shared by the atlas, the neighbours, the map and the
evaluation.

Image numbers are positions in the probe set's fixed order. Everything a view reads is here, so a
cached index answers a click without touching the model or the images again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

THUMBNAIL = 32  # side of the thumbnails kept per image (the map's hover, pixel-space neighbours)


@dataclass
class LayerIndex:
    """One layer's record: per channel the top-k images by their strongest activation (one entry per image)
    and the channel's distribution over the set.

    ``top_*`` arrays are [channels, k], sorted by value, descending; unused slots have image -1 and value -inf.
    ``y``/``x`` is the peak's position in the layer's map (0, 0 for a vector output). ``mean`` and ``maximum``
    are over every activation value of the channel; ``zeros`` and ``hist_counts`` [channels, bins] over a fixed
    sample of each map (the centres of a 3×3 grid; every position of a smaller map, every unit of a vector),
    binned in ``hist_edges`` (values outside the edges fall in the first or last bin; ``layer_stats`` gives the
    exact rule): counting every value cost more than the forward pass itself.
    """

    name: str
    map_size: tuple[int, int] | None  # (H, W) of a map; None for a vector (a Linear layer's units)
    top_values: np.ndarray  # float32 [C, k]
    top_images: np.ndarray  # int64 [C, k]
    top_y: np.ndarray  # int32 [C, k]
    top_x: np.ndarray  # int32 [C, k]
    mean: np.ndarray  # float64 [C], over every activation value of the channel
    maximum: np.ndarray  # float32 [C]
    zeros: np.ndarray  # float64 [C], fraction of the sampled activation values that are exactly 0
    hist_edges: np.ndarray  # float64 [bins + 1]
    hist_counts: np.ndarray  # int64 [C, bins]

    @property
    def channels(self) -> int:
        return int(self.top_values.shape[0])


@dataclass
class DatasetIndex:
    """The record of one (model weights, probe set, layers, k) pass; ``key`` names it in the cache."""

    key: str
    model_spec: str
    data_spec: str
    count: int  # images indexed
    top_k: int
    layers: dict[str, LayerIndex]
    features: dict[str, np.ndarray]  # layer -> float32 [count, D]: each image's globally averaged output
    labels: np.ndarray  # int64 [count]; -1 where the probe set has no label
    top5: np.ndarray  # int64 [count, min(5, classes)]: predicted classes, most probable first
    top5_probs: np.ndarray  # float32 [count, min(5, classes)]
    thumbnails: np.ndarray  # uint8 [count, THUMBNAIL, THUMBNAIL, 3]: the model's input, downsampled
    class_names: list[str] = field(default_factory=list)  # the model's classes
    label_names: list[str] | None = None  # the probe set's classes (None: unlabelled)
    sources: list[str] = field(default_factory=list)  # per image: its file path, or "SPEC#i" for data specs
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable file -> why
