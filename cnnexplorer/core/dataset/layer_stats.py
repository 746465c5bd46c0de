"""One layer's running record over a probe set: each channel's top-k images and its distribution.

A batch's maps are summarised where they are (on the model's device, inside the forward hook,
before an in-place ReLU can change them) into small per-channel tensors; ``LayerAccumulator.add``
merges those into arrays of fixed size, so memory never grows with the set.

* Top-k: each image counts once per channel, by its spatial maximum, at the first position in
  row-major order that holds it. Equal values rank by image number, lower first, whatever the batch
  size: a batch's candidates and the running top-k are merged by a stable sort.
* Mean and maximum use every value (per-batch float32 sums accumulated in float64).
* The fraction of zeros and the histogram are measured on a fixed sample of each map: the values
  at the centres of a ``SAMPLE``×``SAMPLE`` grid of equal strips (``sample_positions``; every
  position of a smaller map, the whole vector of a Linear layer), 16 values per map and image, which
  over a set gives a smooth histogram; counting every value would cost more than the forward pass
  itself on a CPU. The histogram has ``BINS`` equal bins of width ``w`` from ``edges[0]``, over the
  first batch's sampled range widened by ``MARGIN`` of that range on each side (±0.5 when it is
  constant), shared by the layer's channels: a value ``v`` counts (in float64) in bin
  ``floor((v - edges[0]) / w)`` clamped to the first and last bin.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from cnnexplorer.core.dataset.index_types import LayerIndex

BINS = 64
MARGIN = 0.25
SAMPLE = 4
BLOCK_BYTES = 2 << 20
_STATE = ("top_values", "top_images", "top_y", "top_x", "sums", "maximum", "zeros", "elements", "sampled",
          "hist_edges", "hist_counts")


@dataclass(frozen=True)
class BatchSummary:
    """What one batch adds to a layer's record, on the CPU."""

    values: np.ndarray  # float32 [C, m]: per channel the batch's m = min(N, k) strongest images' peaks
    images: np.ndarray  # int64 [C, m]: their positions in the batch
    y: np.ndarray  # int32 [C, m]
    x: np.ndarray  # int32 [C, m]
    sums: np.ndarray  # float64 [C]
    maximum: np.ndarray  # float32 [C]
    elements: int  # values per channel in the batch
    zeros: np.ndarray  # int64 [C], among the sampled values
    counts: np.ndarray  # int64 [C, BINS], of the sampled values
    sampled: int  # sampled values per channel in the batch


def sample_positions(size: int) -> torch.Tensor:
    """The sampled rows (or columns) of a map side of ``size``: the centres of ``min(size, SAMPLE)`` equal strips."""
    strips = min(size, SAMPLE)
    return (torch.arange(strips) * 2 + 1) * size // (2 * strips)


def sampled_values(maps: torch.Tensor) -> torch.Tensor:
    """``[N, C, S]`` float64 on the CPU: the sampled values of ``maps`` [N,C,H,W] (a vector [N,C] whole)."""
    if maps.ndim == 2:
        sample = maps[:, :, None]
    else:
        rows, cols = (_indexer(side, maps.device) for side in maps.shape[2:])
        sample = maps[:, :, rows, cols] if isinstance(rows, slice) else maps[:, :, rows[:, None], cols]
    return sample.reshape(maps.shape[0], maps.shape[1], -1).float().cpu().double()


@functools.lru_cache(maxsize=64)
def _indexer(size: int, device: torch.device) -> slice | torch.Tensor:
    """The sampled positions of a side of ``size``: a slice when evenly spaced (a view, far cheaper to
    gather), else an index tensor on ``device``; made once per size, not per batch."""
    positions = sample_positions(size)
    steps = positions.diff().unique()
    if len(steps) <= 1:
        step = int(steps[0]) if len(steps) else 1
        return slice(int(positions[0]), int(positions[-1]) + 1, step)
    return positions.to(device)


def histogram_counts(sample: torch.Tensor, edges: np.ndarray) -> np.ndarray:
    """``[C, BINS]`` counts of the sampled values [N, C, S] float64 (see the module notes), in place on one copy."""
    channels = sample.shape[1]
    bins = sample.sub(float(edges[0])).div_(float((edges[-1] - edges[0]) / BINS)).floor_().clamp_(0, BINS - 1).long()
    bins += torch.arange(0, channels * BINS, BINS).reshape(1, -1, 1)
    return torch.bincount(bins.ravel(), minlength=channels * BINS).reshape(channels, BINS).numpy()


def histogram_edges(sample: torch.Tensor) -> np.ndarray:
    """The layer's bin edges from its first batch's sampled values (see the module notes)."""
    low, high = float(sample.min()), float(sample.max())
    margin = MARGIN * (high - low) if high > low else 0.5
    return np.linspace(low - margin, high + margin, BINS + 1)


def peaks_and_sums(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's and channel's maximum and float32 sum of ``flat`` [N,C,L], both [N,C].

    On the CPU a few images at a time (about ``BLOCK_BYTES``), so the second reduction reads the
    block from cache: over a whole batch both would stream every map from memory.
    """
    step = max(1, BLOCK_BYTES // max(1, flat[0].numel() * flat.element_size()))
    if flat.device.type != "cpu" or step >= flat.shape[0]:
        return flat.amax(2), flat.sum(2, dtype=torch.float32)
    peaks = flat.new_empty(flat.shape[:2])
    sums = flat.new_empty(flat.shape[:2], dtype=torch.float32)
    for start in range(0, flat.shape[0], step):
        block = flat[start:start + step]
        torch.amax(block, 2, out=peaks[start:start + step])
        torch.sum(block, 2, dtype=torch.float32, out=sums[start:start + step])
    return peaks, sums


def summarise(maps: torch.Tensor, accumulator: "LayerAccumulator") -> BatchSummary:
    """``maps`` [N,C,H,W] or [N,C] (on any device) reduced to a ``BatchSummary``.

    Only the full-size reductions (peak, sum) run where the maps are; the small sample is counted
    on the CPU. Peak positions are looked up only for the batch's images that enter a channel's
    running top-k (a value above its k-th); the others keep (0, 0) and are dropped by the merge.
    """
    maps = maps.detach()
    n, channels = maps.shape[:2]
    flat = maps.reshape(n, channels, -1)
    peaks, image_sums = peaks_and_sums(flat)
    peak = peaks.float().cpu().numpy().T  # [C, N]
    sums = image_sums.cpu().numpy().astype(np.float64).sum(0)
    chosen = np.argsort(-peak, axis=1, kind="stable")[:, : min(n, accumulator.top_k)]  # [C, m]
    values = np.take_along_axis(peak, chosen, 1)
    where = np.zeros(chosen.shape, np.int64)
    entering = np.nonzero(values > accumulator.top_values[:, -1:])
    if len(entering[0]):
        rows = flat[torch.from_numpy(chosen[entering]).to(maps.device), torch.from_numpy(entering[0]).to(maps.device)]
        where[entering] = rows.argmax(1).cpu().numpy()
    width = maps.shape[3] if maps.ndim == 4 else 1
    sample = sampled_values(maps)
    counts = histogram_counts(sample, accumulator.edges(sample))
    return BatchSummary(values, chosen, (where // width).astype(np.int32), (where % width).astype(np.int32), sums,
                        peak.max(1), flat.shape[0] * flat.shape[2], (sample == 0).sum((0, 2)).numpy(), counts,
                        sample.shape[0] * sample.shape[2])


class LayerAccumulator:
    """The running top-k and statistics of one layer; ``state()`` / ``from_state`` save and resume it."""

    def __init__(self, name: str, channels: int, map_size: tuple[int, int] | None, top_k: int):
        self.name, self.map_size, self.top_k = name, map_size, top_k
        self.top_values = np.full((channels, top_k), -np.inf, np.float32)
        self.top_images = np.full((channels, top_k), -1, np.int64)
        self.top_y = np.zeros((channels, top_k), np.int32)
        self.top_x = np.zeros((channels, top_k), np.int32)
        self.sums = np.zeros(channels, np.float64)
        self.maximum = np.full(channels, -np.inf, np.float32)
        self.zeros = np.zeros(channels, np.int64)
        self.elements = np.zeros((), np.int64)
        self.sampled = np.zeros((), np.int64)
        self.hist_edges: np.ndarray | None = None
        self.hist_counts = np.zeros((channels, BINS), np.int64)

    def edges(self, sample: torch.Tensor) -> np.ndarray:
        """The histogram edges, fixed by the first batch this is asked for."""
        if self.hist_edges is None:
            self.hist_edges = histogram_edges(sample)
        return self.hist_edges

    def add(self, first: int, batch: BatchSummary) -> None:
        """Merge the summary of the batch of images ``first …`` into the record."""
        values = np.concatenate([self.top_values, batch.values], axis=1)
        order = np.argsort(-values, axis=1, kind="stable")[:, : self.top_k]
        merged = {"top_values": values, "top_images": np.concatenate([self.top_images, batch.images + first], axis=1),
                  "top_y": np.concatenate([self.top_y, batch.y], axis=1),
                  "top_x": np.concatenate([self.top_x, batch.x], axis=1)}
        for key, value in merged.items():
            setattr(self, key, np.take_along_axis(value, order, 1))
        self.sums += batch.sums
        self.maximum = np.maximum(self.maximum, batch.maximum)
        self.elements += batch.elements
        self.zeros += batch.zeros
        self.hist_counts += batch.counts
        self.sampled += batch.sampled

    def result(self) -> LayerIndex:
        elements, sampled = max(int(self.elements), 1), max(int(self.sampled), 1)
        edges = self.hist_edges if self.hist_edges is not None else np.linspace(-0.5, 0.5, BINS + 1)
        return LayerIndex(self.name, self.map_size, self.top_values.copy(), self.top_images.copy(), self.top_y.copy(),
                          self.top_x.copy(), self.sums / elements, self.maximum.copy(), self.zeros / sampled,
                          edges.copy(), self.hist_counts.copy())

    def state(self) -> dict[str, np.ndarray]:
        return {key: getattr(self, key) for key in _STATE if getattr(self, key) is not None}

    @classmethod
    def from_state(cls, name: str, map_size: tuple[int, int] | None, top_k: int,
                   state: dict[str, np.ndarray]) -> "LayerAccumulator":
        accumulator = cls(name, state["top_values"].shape[0], map_size, top_k)
        for key in _STATE:
            if key in state:
                setattr(accumulator, key, np.array(state[key]))
        return accumulator
