"""One layer's output as one float image of tiles, one per channel, and its exported picture.

``activation_grid`` scales every channel (no Python loop per channel) and lays the tiles out with
``core.grids``; ``compare_grids`` puts a second image's channels in the same places (or shows the
difference of the two); ``render_activation_picture`` colours a grid and numbers its channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnnexplorer.core.activations.stats import (CLIP_STD, LayerStats, as_channels, channel_range, channel_stats,
                                                layer_range, layer_stats, sort_order)
from cnnexplorer.core.colormaps import colormap_table
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.grids import GridLayout, grid_picture

NORMS = ("channel", "layer", "fixed")


def _scale_rows(rows: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(rows - low) / (high - low)`` per row, clipped to [0,1], in place; a flat row → 0."""
    span = high - low
    scale = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0).astype(np.float32)
    rows -= low.astype(np.float32)[:, None]
    with np.errstate(invalid="ignore"):
        rows *= scale[:, None]
    return np.clip(rows, 0.0, 1.0, out=rows)


@dataclass(frozen=True)
class ActivationGrid:
    """One layer's output as a single float image, ready for a colour map.

    ``values`` is ``layout.shape`` float32 in [0,1], NaN in gaps, empty slots and at NaN
    activations (±inf are clipped to 0 and 1). ``value_range`` is the range mapped to [0,1]
    (for a colour bar); None with per-channel normalisation, where each tile has its own.
    ``units`` is True for outputs that are not feature maps, shown as one 1×1 tile per unit.
    """

    values: np.ndarray
    layout: GridLayout
    stats: LayerStats
    shape: tuple[int, int, int]
    units: bool
    norm: str
    value_range: tuple[float, float] | None
    cmap: str
    signed: bool
    warning: str = ""


def _nonfinite_warning(values: np.ndarray) -> str:
    nan = int(np.isnan(values).sum())
    inf = int(np.isinf(values).sum())
    parts = ([f"{nan} NaN value(s) shown in magenta"] if nan else []) + (
        [f"{inf} infinite value(s) clipped to the ends of the colour map"] if inf else [])
    return "this output has " + " and ".join(parts) if parts else ""


def activation_grid(output: torch.Tensor, *, norm: str = "channel", value_range: tuple[float, float] | None = None,
                    sort: str = "index", hide_dead: bool = False, cmap: str | None = None, gap: int = 1,
                    clip_std: float = CLIP_STD, order: np.ndarray | None = None) -> ActivationGrid:
    """Tile every channel of ``output`` (a captured tensor, first sample used) into one image.

    ``norm``: ``channel`` (default; each channel's mean ± ``clip_std`` std, see
    ``channel_range``; falls back to ``layer`` for units), ``layer`` (one range for the layer),
    or ``fixed`` (``value_range``). ``cmap`` None picks ``diverging`` for signed outputs
    (any value < 0) and ``viridis`` otherwise. Per channel, the diverging map's centre is the
    middle of each channel's window; ``layer`` (symmetric when signed) centres it on zero.
    ``order`` (channel indices) replaces ``sort`` and ``hide_dead``, so that a second image's
    grid can put each channel where the first one has it.
    """
    if norm not in NORMS:
        raise UserError(f"unknown normalisation '{norm}'; choose one of {', '.join(NORMS)}")
    if (norm == "fixed") != (value_range is not None):
        raise UserError("a fixed normalisation needs a range LO,HI, and a range needs the fixed normalisation")
    if value_range is not None and not value_range[0] < value_range[1]:
        raise UserError(f"the range {value_range[0]:g},{value_range[1]:g} is empty; give LO < HI")
    values, shape, units = as_channels(output)
    finite = bool(np.isfinite(values).all())
    stats = layer_stats(values)
    signed = bool(np.nanmin(stats.min, initial=0.0) < 0) if stats.min.size else False
    cmap = cmap or ("diverging" if signed else "viridis")
    colormap_table(cmap)
    order = sort_order(stats, sort, hide_dead) if order is None else np.asarray(order, dtype=np.int64)
    if norm == "channel" and units:
        norm = "layer"
    if norm == "channel":
        low, high = (r[order] for r in channel_range(stats, clip_std))
        value_range = None
    else:
        value_range = value_range or layer_range(stats, signed)
        low, high = np.full(len(order), value_range[0]), np.full(len(order), value_range[1])
    shown = _scale_rows(values[order], low, high)
    _, height, width = shape
    layout = GridLayout.near_square(order, height, width, 0 if units else gap)
    grid = layout.tile(shown.reshape(len(order), height, width), np.nan)
    warning = "" if finite else _nonfinite_warning(values)
    if hide_dead and not len(order):
        warning = f"all {shape[0]} channels are dead (≤ 0); turn off hiding dead channels to see them"
    return ActivationGrid(grid, layout, stats, shape, units, norm, value_range, cmap, signed, warning)


def compare_grids(a: torch.Tensor, b: torch.Tensor, *, difference: bool = False, **kwargs) -> list[ActivationGrid]:
    """Grids of two images' outputs of one layer, each channel in the same place in both.

    ``kwargs`` (``activation_grid``'s) make the first grid; the second takes its order and colour
    map, and a layer-wide range becomes one range for both, so equal colours mean equal values.
    ``difference`` gives one grid of ``a − b`` on a symmetric range with the diverging map.
    """
    if a.shape != b.shape:
        raise UserError(f"the two images give outputs of different shapes ({tuple(a.shape)} and {tuple(b.shape)}); "
                        "compare images that the model sees at the same size")
    first = activation_grid(a, **kwargs)
    order = first.layout.order
    if difference:
        diff = a.float() - b.float()
        finite = diff[torch.isfinite(diff)]
        peak = (float(finite.abs().max()) if finite.numel() else 0.0) or 1.0
        return [activation_grid(diff, norm="fixed", value_range=(-peak, peak), cmap="diverging", order=order)]
    kwargs = {**kwargs, "cmap": first.cmap, "order": order}
    if first.norm == "layer":
        other = layer_range(channel_stats(b), first.signed)
        low, high = min(first.value_range[0], other[0]), max(first.value_range[1], other[1])
        if low < 0:
            low, high = -max(-low, high), max(-low, high)
        kwargs.update(norm="fixed", value_range=(low, high))
        first = activation_grid(a, **kwargs)
    return [first, activation_grid(b, **kwargs)]


def render_activation_picture(grid: ActivationGrid, labels: bool = True) -> np.ndarray:
    """The exported picture of an ``ActivationGrid``: coloured, enlarged, channels numbered."""
    rgb, _ = grid_picture(grid.values, grid.layout, grid.cmap, min_tile=12 if grid.units else 32,
                          labels=labels and not grid.units)
    return rgb
