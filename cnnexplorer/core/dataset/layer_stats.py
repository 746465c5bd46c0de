"""One layer's running record over a probe set: each channel's top-k images and its distribution.

A batch's maps are summarised where they are (on the model's device, inside the forward hook,
before an in-place ReLU can change them): each image's and channel's peak, the channel's sum, and
its sampled values counted into the histogram. ``LayerAccumulator`` adds the counts and sums at once
and merges the peaks a few batches at a time (``FLUSH_BYTES``) into arrays of fixed size, so memory
never grows with the set.

* Top-k: each image counts once per channel, by its spatial maximum, at the first position in
  row-major order that holds it. Equal values rank by image number, lower first, whatever the batch
  size: a batch's candidates and the running top-k are merged by a stable sort.
* Mean and maximum use every value (per-batch float32 sums accumulated in float64).
* The fraction of zeros and the histogram are measured on a fixed sample of each map: the values
  at the centres of a ``SAMPLE``×``SAMPLE`` grid of equal strips (``sample_positions``; every
  position of a smaller map, the whole vector of a Linear layer), 9 values per map and image, which
  over a set gives a smooth histogram (9,000 values per channel from 1,000 images); counting every
  value would cost more than the forward pass itself on a CPU. The histogram has ``BINS`` equal
  bins from ``edges[0]``, over the first batch's sampled range widened by ``MARGIN`` of that range
  on each side (±0.5 when it is constant), shared by the layer's channels: a value ``v`` counts in bin ``floor((v - e) * r)``
  clamped to the first and last bin, with ``e = edges[0]`` and ``r = BINS / (edges[-1] - edges[0])``
  rounded to float32 and the arithmetic in float32 (exact IEEE operations, so every CPU and GPU
  counts alike).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from cnnexplorer.core.dataset.index_types import LayerIndex
from cnnexplorer.core.threads import one_thread

BINS = 64
MARGIN = 0.25
SAMPLE = 3
FLUSH_BYTES = 64 << 10  # a merge keeps the top-k threshold exact: more often, fewer positions to look up
_STATE = ("top_values", "top_images", "top_y", "top_x", "sums", "maximum", "zeros", "elements", "sampled",
          "hist_edges", "hist_counts")


@dataclass(frozen=True)
class BatchSummary:
    """What one batch adds to a layer's record, on the CPU (``LayerAccumulator.add``)."""

    peaks: torch.Tensor  # float32 [N, C]: each image's and channel's spatial maximum
    where: torch.Tensor  # int64 [N, C]: its flat position, where looked up (a candidate for the top-k), else -1
    sums: torch.Tensor  # float64 [C]
    elements: int  # values per channel in the batch
    counts: torch.Tensor  # int64 [C, BINS]: the sampled values' histogram
    zeros: torch.Tensor  # int64 [C]: sampled values that are zero
    sampled: int  # sampled values per channel

    @property
    def nbytes(self) -> int:
        """What waits to be merged: the peaks and their positions."""
        return sum(t.numel() * t.element_size() for t in (self.peaks, self.where))


def sample_positions(size: int) -> torch.Tensor:
    """The sampled rows (or columns) of a map side of ``size``: the centres of ``min(size, SAMPLE)`` equal strips."""
    strips = min(size, SAMPLE)
    return (torch.arange(strips) * 2 + 1) * size // (2 * strips)


def sampled_values(maps: torch.Tensor) -> torch.Tensor:
    """``[N, C, S]`` float32 where ``maps`` are: the sampled values of ``maps`` [N,C,H,W] (a vector [N,C] whole)."""
    if maps.ndim == 2:
        sample = maps[:, :, None]
    else:
        rows, cols = (_indexer(side, maps.device) for side in maps.shape[2:])
        sample = maps[:, :, rows, cols] if isinstance(rows, slice) else maps[:, :, rows[:, None], cols]
    return sample.reshape(maps.shape[0], maps.shape[1], -1).float()


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


def histogram_counts(sample: torch.Tensor, edges: np.ndarray) -> torch.Tensor:
    """``[C, BINS]`` int64 counts of the float32 sampled values [N, C, S] (see the module notes), where they are."""
    channels = sample.shape[1]
    low, scale = (float(np.float32(v)) for v in (edges[0], BINS / (edges[-1] - edges[0])))
    bins = sample.sub(low).mul_(scale).clamp_(0, BINS - 1).to(torch.int32)  # truncated at ≥ 0: the floor
    bins += torch.arange(0, channels * BINS, BINS, dtype=torch.int32, device=bins.device).reshape(1, -1, 1)
    return torch.bincount(bins.ravel(), minlength=channels * BINS).reshape(channels, BINS)


def histogram_edges(sample: torch.Tensor) -> np.ndarray:
    """The layer's bin edges from its first batch's sampled values (see the module notes)."""
    low, high = float(sample.min()), float(sample.max())
    margin = MARGIN * (high - low) if high > low else 0.5
    return np.linspace(low - margin, high + margin, BINS + 1)


def summarise(maps: torch.Tensor, accumulator: "LayerAccumulator") -> BatchSummary:
    """``maps`` [N,C,H,W] or [N,C] (on any device) reduced to a ``BatchSummary``; the layer's first batch fixes
    its histogram's edges, and each batch of at least k images raises ``accumulator.threshold``.

    A peak's position is looked up only where it may enter the channel's top-k: above
    ``accumulator.threshold`` and among the batch's k strongest. The threshold is a value the record's
    k-th value has reached (the k-th value as of the last merge, or a batch's k-th value since: the
    k-th value of the record with that batch merged can only be higher); a later image that ties with
    it ranks below the images already holding it, so nothing that can enter is missed.
    """
    maps = maps.detach()
    n, channels = maps.shape[:2]
    flat = maps.reshape(n, channels, -1)
    peaks, image_sums = flat.amax(2), flat.sum(2, dtype=torch.float32)  # the passes over every value, threaded
    with one_thread(n * channels * SAMPLE ** 2):  # the rest: operations on a few values per map
        peaks = peaks.float()
        threshold = accumulator.threshold.to(peaks.device)
        candidates = peaks > threshold
        if n >= accumulator.top_k:
            kth = peaks.topk(accumulator.top_k, 0).values[-1]  # ties at the k-th value all stay candidates
            candidates &= peaks >= kth
            accumulator.threshold = torch.maximum(threshold, kth)  # the record's k-th value can only be higher
        where = torch.full((n, channels), -1, dtype=torch.int64)
        images, units = candidates.nonzero(as_tuple=True)
        if len(images):  # the candidates' rows copied whole (twice the speed of indexing by image and unit)
            rows = flat.reshape(n * channels, -1).index_select(0, images * channels + units)
            where[images.cpu(), units.cpu()] = rows.max(1).indices.cpu()  # the first: 2-3× argmax's speed
        sample = sampled_values(maps)
        if accumulator.hist_edges is None:
            accumulator.hist_edges = histogram_edges(sample)
        sampled = sample.shape[0] * sample.shape[2]
        return BatchSummary(peaks.cpu(), where, image_sums.sum(0, dtype=torch.float64).cpu(), flat.shape[0] * flat.shape[2],
                            histogram_counts(sample, accumulator.hist_edges).cpu(),
                            sampled - torch.count_nonzero(sample, (0, 2)).cpu(), sampled)


class LayerAccumulator:
    """The running top-k and statistics of one layer; ``state()`` / ``from_state`` save and resume it.

    A batch's counts and sums are added at once; its peaks wait in ``pending`` until they hold
    ``FLUSH_BYTES`` (or the record is read): merging several at once costs a few array operations
    instead of a few per batch, and merging often keeps the candidates' threshold close to the k-th
    value (on the shapes model, merging every batch or two instead of every 4 to 55 took the index
    from 0.65–0.67 to 0.68–0.70 of a plain forward pass, two runs side by side).
    """

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
        self.threshold = torch.full((channels,), -torch.inf)  # a value the k-th value has reached (``summarise``)
        self.pending: list[tuple[int, BatchSummary]] = []
        self._pending_bytes = 0

    def add(self, first: int, batch: BatchSummary) -> None:
        """Take the summary of the batch of images ``first …``; its peaks merged now or with the next ones."""
        self.sums += batch.sums.numpy()
        self.elements += batch.elements
        self.zeros += batch.zeros.numpy()
        self.hist_counts += batch.counts.numpy()
        self.sampled += batch.sampled
        self.pending.append((first, batch))
        self._pending_bytes += batch.nbytes
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Merge the pending batches' peaks into the record."""
        if not self.pending:
            return
        batches, self.pending, self._pending_bytes = self.pending, [], 0
        peaks = torch.cat([b.peaks for _, b in batches]).numpy().T  # [C, M]
        where = torch.cat([b.where for _, b in batches]).numpy().T
        images = np.concatenate([np.arange(first, first + len(b.peaks)) for first, b in batches])
        width = self.map_size[1] if self.map_size else 1
        values = np.concatenate([self.top_values, peaks], axis=1)
        order = np.argsort(-values, axis=1, kind="stable")[:, : self.top_k]
        merged = {"top_values": values,
                  "top_images": np.concatenate([self.top_images, np.broadcast_to(images, peaks.shape)], axis=1),
                  "top_y": np.concatenate([self.top_y, (where // width).astype(np.int32)], axis=1),
                  "top_x": np.concatenate([self.top_x, (where % width).astype(np.int32)], axis=1)}
        for key, value in merged.items():
            setattr(self, key, np.take_along_axis(value, order, 1))
        assert ((self.top_images < 0) | (self.top_y >= 0)).all(), "a top-k entry was merged without its position"
        self.threshold = torch.from_numpy(self.top_values[:, -1].copy())
        self.maximum = np.maximum(self.maximum, peaks.max(1))

    def merge(self, later: "LayerAccumulator") -> None:
        """Fold in the record of images that all come after this record's (the next rank's contiguous part):
        the merged record equals one pass over both parts in order."""
        self.flush()
        later.flush()
        if self.hist_edges is None:
            self.hist_edges = later.hist_edges
        elif later.hist_edges is not None and not np.array_equal(self.hist_edges, later.hist_edges):
            raise RuntimeError(f"{self.name}: parts with different histogram edges cannot be merged")
        values = np.concatenate([self.top_values, later.top_values], axis=1)
        order = np.argsort(-values, axis=1, kind="stable")[:, : self.top_k]
        for key in ("top_values", "top_images", "top_y", "top_x"):
            joined = values if key == "top_values" else np.concatenate([getattr(self, key), getattr(later, key)], axis=1)
            setattr(self, key, np.take_along_axis(joined, order, 1))
        self.threshold = torch.from_numpy(self.top_values[:, -1].copy())
        self.sums = self.sums + later.sums
        self.maximum = np.maximum(self.maximum, later.maximum)
        for key in ("zeros", "elements", "sampled", "hist_counts"):
            setattr(self, key, getattr(self, key) + getattr(later, key))

    def result(self) -> LayerIndex:
        self.flush()
        elements, sampled = max(int(self.elements), 1), max(int(self.sampled), 1)
        edges = self.hist_edges if self.hist_edges is not None else np.linspace(-0.5, 0.5, BINS + 1)
        return LayerIndex(self.name, self.map_size, self.top_values.copy(), self.top_images.copy(), self.top_y.copy(),
                          self.top_x.copy(), self.sums / elements, self.maximum.copy(), self.zeros / sampled,
                          edges.copy(), self.hist_counts.copy())

    def state(self) -> dict[str, np.ndarray]:
        self.flush()
        return {key: getattr(self, key) for key in _STATE if getattr(self, key) is not None}

    @classmethod
    def from_state(cls, name: str, map_size: tuple[int, int] | None, top_k: int,
                   state: dict[str, np.ndarray]) -> "LayerAccumulator":
        accumulator = cls(name, state["top_values"].shape[0], map_size, top_k)
        for key in _STATE:
            if key in state:
                setattr(accumulator, key, np.array(state[key]))
        accumulator.threshold = torch.from_numpy(accumulator.top_values[:, -1].copy())
        return accumulator
