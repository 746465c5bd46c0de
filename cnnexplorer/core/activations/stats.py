"""Per-channel statistics of a layer's output, and what the grid derives from them: the order
of the tiles and the value windows of the normalisations."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.layouts import unknown_layout

CLIP_STD = 3.0
"""Per-channel normalisation maps mean ± CLIP_STD standard deviations to [0,1] (see ``channel_range``)."""
SORTS = ("index", "mean", "max")


@dataclass(frozen=True)
class LayerStats:
    """Per-channel statistics over finite values (NaN for a channel without any)."""

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    zero_fraction: np.ndarray

    @property
    def dead(self) -> np.ndarray:
        """Channels that are all ≤ 0, i.e. all zero after a ReLU."""
        return self.max <= 0

    @property
    def dead_count(self) -> int:
        return int(self.dead.sum())

    @property
    def layer_zero_fraction(self) -> float:
        return float(self.zero_fraction.mean()) if self.zero_fraction.size else 0.0

    def channel(self, index: int) -> dict:
        """One channel's numbers, for hover text and JSON (NaN becomes None)."""
        values = {"index": int(index), "min": self.min[index], "max": self.max[index],
                  "mean": self.mean[index], "zero_fraction": self.zero_fraction[index]}
        return {k: (v if k == "index" else _json_float(v)) for k, v in values.items()}


def _json_float(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def layer_stats(values: np.ndarray) -> LayerStats:
    """Statistics of a ``[C, M]`` float32 array, one row per channel."""
    zero_fraction = np.count_nonzero(values == 0, axis=1) / max(values.shape[1], 1)
    finite = np.isfinite(values)
    if finite.all():
        mean = values.mean(axis=1, dtype=np.float64)
        square = np.einsum("ij,ij->i", values, values, dtype=np.float64) / values.shape[1]
        return LayerStats(values.min(axis=1).astype(np.float64), values.max(axis=1).astype(np.float64),
                          mean, np.sqrt(np.maximum(square - mean**2, 0.0)), zero_fraction)
    masked = np.where(finite, values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return LayerStats(np.nanmin(masked, axis=1).astype(np.float64), np.nanmax(masked, axis=1).astype(np.float64),
                          np.nanmean(masked, axis=1, dtype=np.float64), np.nanstd(masked, axis=1, dtype=np.float64),
                          zero_fraction)


def as_channels(output: torch.Tensor, strict: bool = True) -> tuple[np.ndarray, tuple[int, int, int], bool]:
    """First sample of ``output`` as ``[C, H·W]`` float32: ``[N,C,H,W]`` feature maps, or one
    value per unit for vectors (and ``[N,C,1,1]``). Other shapes have no known channel axis
    (``core.layouts`` reads the torchvision transformers'): ``strict`` refuses them, else
    they are flattened to units, which is enough for statistics."""
    if strict and output.ndim not in (1, 2, 4):
        raise unknown_layout(output)
    sample = output.detach()[0] if output.ndim >= 2 else output.detach().reshape(-1)
    values = sample.to("cpu", torch.float32).numpy()
    if values.ndim == 3 and values.shape[1:] != (1, 1):
        channels, height, width = values.shape
        return values.reshape(channels, height * width), (channels, height, width), False
    return values.reshape(-1, 1), (values.size, 1, 1), True


def channel_stats(output: torch.Tensor) -> LayerStats:
    """Per-channel statistics of a captured tensor (first sample), as ``activation_grid`` has them;
    an output without a known channel axis counts each value as a unit."""
    return layer_stats(as_channels(output, strict=False)[0])


def sort_order(stats: LayerStats, sort: str = "index", hide_dead: bool = False) -> np.ndarray:
    """Channel indices in display order: by index, or by mean or max activation (descending,
    ties by index, NaN last); ``hide_dead`` leaves out channels that are all ≤ 0."""
    if sort not in SORTS:
        raise UserError(f"unknown sort order '{sort}'; choose one of {', '.join(SORTS)}")
    count = stats.max.size
    if sort == "index":
        order = np.arange(count)
    else:
        key = np.nan_to_num(stats.mean if sort == "mean" else stats.max, nan=-np.inf)
        order = np.argsort(-key, kind="stable")
    return order[~stats.dead[order]] if hide_dead else order


def channel_range(stats: LayerStats, clip_std: float = CLIP_STD) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel window mapped to [0,1]: mean ± ``clip_std`` std, narrowed to the channel's
    own min and max, so a ReLU channel's zeros stay at the dark end of the map."""
    low = np.maximum(stats.min, stats.mean - clip_std * stats.std)
    high = np.minimum(stats.max, stats.mean + clip_std * stats.std)
    return low, high


def layer_range(stats: LayerStats, signed: bool) -> tuple[float, float]:
    """The finite min and max of the whole layer; symmetric around 0 when signed, so that zero
    sits at the centre of the diverging map."""
    finite_min, finite_max = stats.min[np.isfinite(stats.min)], stats.max[np.isfinite(stats.max)]
    low = float(finite_min.min()) if finite_min.size else 0.0
    high = float(finite_max.max()) if finite_max.size else 1.0
    if signed:
        high = max(abs(low), abs(high))
        low = -high
    return low, high
