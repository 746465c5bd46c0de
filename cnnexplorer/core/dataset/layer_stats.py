"""One layer's running record over a probe set: each channel's top-k images and its distribution.

A batch's maps are summarised where they are (on the model's device, inside the forward hook,
before an in-place ReLU can change them): each image's and channel's peak, the channel's sum, and
a fixed sample of its values, and the few peaks that may enter the top-k with their positions.
``LayerAccumulator`` holds the layer's record in arrays of fixed size, so memory never grows with the
set; every layer's batch is merged into them at once (``layer_group.LayerGroup``), the samples a few
batches at a time.

On a GPU nothing in the hook waits for the device: a size that depends on the values (which peaks
pass a threshold) or a copy to the host would make the host wait for the forward pass at every
layer. There the summary is made of fixed-size tensors, copied to the host after the pass
(``LayerGroup.add``), and the host keeps the candidates that can enter the top-k.

* Top-k: each image counts once per channel, by its spatial maximum, at the first position in
  row-major order that holds it. Equal values rank by image number, lower first, whatever the batch
  size: a batch's candidates and the running top-k are merged by a stable sort.
* The mean uses every value (per-batch float32 sums accumulated in float64). The maximum is the
  top-k's first value: the strongest image's peak is the channel's strongest value, so it needs no
  record of its own.
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
SAMPLE_CHUNK = 1 << 17  # sampled values a layer holds before counting them: a few large counts cost less than many small
DEVICE_SAMPLE_CHUNK = 1 << 20  # the same on a GPU, where each count also waits for the device to copy it back
TOP_FIELDS = ("top_values", "top_images", "top_y", "top_x")
SAVED_FIELDS = (*TOP_FIELDS, "sums", "zeros", "elements", "sampled", "hist_counts")  # every saved record holds these
_STATE = (*SAVED_FIELDS, "hist_edges")  # (the edges: none before a layer's first batch)


@dataclass(frozen=True)
class BatchSummary:
    """What one batch adds to a layer's record (``LayerGroup.add``), where the maps were.

    Only the batch's candidates for the top-k are kept (see ``summarise``), unit by unit; within a
    unit, equal values come in image order.
    """

    units: torch.Tensor  # int64 [M]: each candidate's channel, ascending
    images: torch.Tensor  # int64 [M]: its image within the batch
    values: torch.Tensor  # float32 [M]: its spatial maximum
    positions: torch.Tensor  # int64 [M]: the maximum's flat position, the first in row-major order
    sums: torch.Tensor  # float32 [C]: the batch's sum of each channel (the record adds them up in float64)
    elements: int  # values per channel in the batch
    sample: torch.Tensor  # float32 [N, C, S]: the sampled values, counted where they are, later


def sample_positions(size: int) -> torch.Tensor:
    """The sampled rows (or columns) of a map side of ``size``: the centres of ``min(size, SAMPLE)`` equal strips."""
    strips = min(size, SAMPLE)
    return (torch.arange(strips) * 2 + 1) * size // (2 * strips)


def sampled_values(flat: torch.Tensor, map_size: tuple[int, int] | None) -> torch.Tensor:
    """``[N, C, S]`` float32 where ``flat`` [N, C, H·W] is: the sampled values of maps of ``map_size``
    (of a vector [N, C, 1], the whole vector)."""
    n, channels = flat.shape[:2]
    if map_size is None:
        return flat.to(torch.float32, copy=True)  # a copy: an in-place ReLU may overwrite the layer's output
    rows = flat.reshape(n * channels, -1)  # a row per map: gathering columns of it is the cheapest copy
    return rows.index_select(1, _positions(*map_size, flat.device)).reshape(n, channels, -1).float()


@functools.lru_cache(maxsize=64)
def _positions(height: int, width: int, device: torch.device) -> torch.Tensor:
    """The flat positions of a map's samples, row by row; made once per size, not per batch."""
    return (sample_positions(height)[:, None] * width + sample_positions(width)).ravel().to(device)


def histogram_counts(sample: torch.Tensor, edges: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``[C, BINS]`` int64 counts and ``[C]`` zeros of the float32 sampled values [N, C, S] (see the module notes),
    where they are: every channel's bins counted by one ``bincount``."""
    channels = sample.shape[1]
    low, scale = (float(np.float32(v)) for v in (edges[0], BINS / (edges[-1] - edges[0])))
    zeros = (sample == 0).sum((0, 2))
    bins = sample.sub(low).mul_(scale).clamp_(0, BINS - 1).to(torch.int32)  # truncated at ≥ 0: the floor
    bins += torch.arange(0, channels * BINS, BINS, dtype=torch.int32, device=bins.device).reshape(1, -1, 1)
    return torch.bincount(bins.ravel(), minlength=channels * BINS).reshape(channels, BINS), zeros


def histogram_edges(sample: torch.Tensor) -> np.ndarray:
    """The layer's bin edges from its first batch's sampled values (see the module notes)."""
    low, high = float(sample.min()), float(sample.max())
    margin = MARGIN * (high - low) if high > low else 0.5
    return np.linspace(low - margin, high + margin, BINS + 1)


def summarise(maps: torch.Tensor, accumulator: "LayerAccumulator", fixed_size: bool = False) -> BatchSummary:
    """``maps`` [N,C,H,W] or [N,C] (on any device) reduced to a ``BatchSummary`` where they are; the layer's
    first batch fixes its histogram's edges.

    The candidates are the peaks that may enter a channel's top-k. On the CPU (unless ``fixed_size``)
    they are chosen here: those above the record's k-th value (``accumulator.threshold``: a later image
    that ties with it ranks below the images holding it) and, when that leaves more than the top-k could
    take (k per channel: the first batch, or a batch far stronger than those before), not below the
    batch's own k-th value (ties at it all stay). This is done in numpy: between the model's layers each
    call starts with cold caches, and numpy's small calls cost less than torch's (on the shapes model
    0.04 s less over a 1.5 s pass). Elsewhere (``fixed_size``, always on a GPU) they
    are each channel's k strongest images of the batch, by a stable sort (equal peaks, lower image
    first), and ``LayerGroup.add`` drops those not above the k-th value.
    """
    maps = maps.detach()
    fixed_size = maps.device.type != "cpu" or bool(fixed_size)
    n, channels = maps.shape[:2]
    flat = maps.reshape(n, channels, -1)
    peaks, sums = flat.amax(2), flat.sum((0, 2), dtype=torch.float32)  # the passes over every value, threaded
    with one_thread(n * channels * SAMPLE ** 2):  # the rest: operations on a few values per map
        peaks = peaks.float()
        if fixed_size:
            units, images, values, positions = _batch_top_k(flat, peaks, accumulator.top_k)
        else:  # the peaks above the record's k-th value, by unit then image
            found, k = peaks.numpy(), accumulator.top_k
            candidates = found > accumulator.threshold.numpy()
            units, images = np.nonzero(candidates.T)
            if len(units) > k * channels:
                candidates &= found >= -np.partition(-found, k - 1, axis=0)[k - 1]
                units, images = np.nonzero(candidates.T)
            rows = flat.reshape(n * channels, -1).index_select(0, torch.from_numpy(images * channels + units))
            values = torch.from_numpy(found[images, units])  # each row's maximum is its peak
            positions = torch.from_numpy(rows.float().numpy().argmax(1))  # the first maximum
            units, images = torch.from_numpy(units), torch.from_numpy(images)
        sample = sampled_values(flat, accumulator.map_size)
        if accumulator.hist_edges is None:
            accumulator.hist_edges = histogram_edges(sample)
        return BatchSummary(units, images, values.float(), positions, sums, flat.shape[0] * flat.shape[2],
                            sample)  # float32: MPS has no float64


def _batch_top_k(flat: torch.Tensor, peaks: torch.Tensor, top_k: int):
    """A GPU's candidates (``summarise``): each channel's k strongest images with their values and first
    positions, in fixed-size tensors made by a few operations (each one a launch the host pays for), their
    units made on the host."""
    channels, k = peaks.shape[1], min(len(peaks), top_k)
    chosen = peaks.sort(dim=0, descending=True, stable=True).indices[:k].T  # [C, k]: equal peaks, lower image first
    rows = torch.gather(flat.transpose(0, 1), 1, chosen[:, :, None].expand(-1, -1, flat.shape[2]))  # [C, k, H·W]
    values, positions = rows.max(2)  # the first maximum
    return _units(channels, k), chosen.reshape(-1), values.reshape(-1), positions.reshape(-1)


@functools.lru_cache(maxsize=256)
def _units(channels: int, k: int) -> torch.Tensor:
    """``[0]*k + [1]*k + …`` on the CPU: the units of ``_batch_top_k``'s candidates, made once per layer shape."""
    return torch.arange(channels).repeat_interleave(k)


class LayerAccumulator:
    """The running top-k and statistics of one layer; ``state()`` / ``from_state`` save and resume it.

    Each batch is merged as it comes, by the ``LayerGroup`` that holds the layer (its top-k table is a view of the
    group's, and ``threshold`` always the record's exact k-th value); its sampled values are held until
    ``SAMPLE_CHUNK`` of them are counted at once (on the shapes model a layer's batch holds some 50,000:
    counted one batch at a time, the operations' fixed costs came to more than the counting), on a GPU
    ``DEVICE_SAMPLE_CHUNK`` (a few MB of its memory per layer).
    """

    def __init__(self, name: str, channels: int, map_size: tuple[int, int] | None, top_k: int):
        self.name, self.map_size, self.top_k = name, map_size, top_k
        self.top_values = np.full((channels, top_k), -np.inf, np.float32)
        self.top_images = np.full((channels, top_k), -1, np.int64)
        self.top_y = np.zeros((channels, top_k), np.int32)
        self.top_x = np.zeros((channels, top_k), np.int32)
        self.sums = np.zeros(channels, np.float64)
        self.zeros = np.zeros(channels, np.int64)
        self.elements = np.zeros((), np.int64)
        self.sampled = np.zeros((), np.int64)
        self.hist_edges: np.ndarray | None = None
        self.hist_counts = np.zeros((channels, BINS), np.int64)
        self.threshold = torch.full((channels,), -torch.inf)  # the record's k-th value (``summarise``)
        self._samples: list[torch.Tensor] = []  # batches' sampled values not counted yet
        self._sample_values = 0
        self._counted: tuple[torch.Tensor, torch.Tensor] | None = None  # counts made and not yet added (``_settle``)

    def take_sample(self, sample: torch.Tensor) -> None:
        """Hold a batch's sampled values [N, C, S] (where they were made), counting them once enough wait."""
        self._samples.append(sample)
        self._sample_values += sample.numel()
        if self._sample_values >= (SAMPLE_CHUNK if sample.device.type == "cpu" else DEVICE_SAMPLE_CHUNK):
            self._count_samples()

    def _count_samples(self) -> None:
        """Count the samples held so far, where they are: the counts wait there too (``_settle``), so that a GPU's
        are not copied back at every count."""
        if not self._samples:
            return
        sample = torch.cat(self._samples) if len(self._samples) > 1 else self._samples[0]
        self._samples, self._sample_values = [], 0
        with one_thread(sample.numel()):
            counts, zeros = histogram_counts(sample, self.hist_edges)
            if self._counted is not None:
                counts, zeros = counts + self._counted[0], zeros + self._counted[1]
        self._counted = counts, zeros
        self.sampled += sample.shape[0] * sample.shape[2]

    def _settle(self) -> None:
        """Count every sample held and add the counts to the histogram and the zeros, on the host."""
        self._count_samples()
        if self._counted is not None:
            self.hist_counts += self._counted[0].cpu().numpy()
            self.zeros += self._counted[1].cpu().numpy()
            self._counted = None

    def merge(self, later: "LayerAccumulator") -> None:
        """Fold in the record of images that all come after this record's (the next rank's contiguous part):
        the merged record equals one pass over both parts in order."""
        self._settle()
        later._settle()
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
        for key in ("zeros", "elements", "sampled", "hist_counts"):
            setattr(self, key, getattr(self, key) + getattr(later, key))

    def result(self) -> LayerIndex:
        self._settle()
        elements, sampled = max(int(self.elements), 1), max(int(self.sampled), 1)
        edges = self.hist_edges if self.hist_edges is not None else np.linspace(-0.5, 0.5, BINS + 1)
        return LayerIndex(self.name, self.map_size, self.top_values.copy(), self.top_images.copy(), self.top_y.copy(),
                          self.top_x.copy(), self.sums / elements, self.top_values[:, 0].copy(), self.zeros / sampled,
                          edges.copy(), self.hist_counts.copy())

    def state(self) -> dict[str, np.ndarray]:
        self._settle()
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
