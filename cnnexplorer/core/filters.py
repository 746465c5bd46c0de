"""Pictures of a layer's weights, as in the CS231n notes' AlexNet figure, and their histogram.

Three modes, by the weight's shape (dimension 0 is the output, dimension 1 the input):
``rgb`` for convolutions reading 3 channels (each kernel an RGB image), ``kernels`` for other
convolutions (one tile per output: the mean over inputs, or one chosen input, diverging
colours), ``matrix`` for Linear layers and 1-D weights (block-averaged when a side exceeds
``MAX_SIDE``). Every kernel is scaled symmetrically around 0 by its own largest magnitude,
so 0 is mid-grey (rgb) or white (diverging) and each kernel's pattern is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnnexplorer.core.grids import GridLayout, grid_picture
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import find_layer

MAX_SIDE = 2048
HISTOGRAM_BINS = 64


@dataclass(frozen=True)
class WeightHistogram:
    """``counts[i]`` weights fall in ``[edges[i], edges[i+1])`` (the last bin is closed)."""

    counts: np.ndarray
    edges: np.ndarray

    def to_json(self) -> dict:
        return {"counts": self.counts.astype(int).tolist(), "edges": self.edges.tolist()}


@dataclass(frozen=True)
class FilterView:
    """A layer's weights as a float image in [0,1] (``H×W×3`` for rgb), NaN in gaps.

    ``value_range`` is the weight range mapped to [0,1] for ``matrix`` (a colour bar); None for
    the per-kernel modes. ``block`` is the block-mean factor (rows, columns) of a huge matrix.
    """

    layer: str
    module_type: str
    weight_shape: tuple[int, ...]
    mode: str
    values: np.ndarray
    layout: GridLayout
    cmap: str | None
    value_range: tuple[float, float] | None
    histogram: WeightHistogram
    input_channel: int | None = None
    block: tuple[int, int] = (1, 1)


def weighted_layer(root: torch.nn.Module, layer: str) -> str:
    """``layer`` if it has a ``weight``, else its first sub-layer with a convolution or linear
    weight (a block shows its first convolution); ``UserError`` if it holds none."""
    module = find_layer(root, layer)
    if isinstance(getattr(module, "weight", None), torch.Tensor):
        return layer
    for name, sub in module.named_modules():
        weight = getattr(sub, "weight", None)
        if name and isinstance(weight, torch.Tensor) and weight.dim() >= 2:
            return f"{layer}.{name}" if layer else name
    raise UserError(f"layer {layer} ({type(module).__name__}) has no weights; pick a Conv2d or Linear layer")


def weight_histogram(weight: torch.Tensor, bins: int = HISTOGRAM_BINS) -> WeightHistogram:
    """Histogram of the finite weights over their own range."""
    values = weight.detach().float().flatten()
    values = values[torch.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if values.numel() else (0.0, 0.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    counts = torch.histc(values, bins, low, high).cpu().numpy()
    return WeightHistogram(counts, np.linspace(low, high, bins + 1))


def _symmetric(kernels: np.ndarray) -> np.ndarray:
    """Each kernel (dimension 0) mapped to [0,1] with 0 at 0.5 and its largest |w| at 0 or 1."""
    flat = np.nan_to_num(np.abs(kernels.reshape(len(kernels), -1)), nan=0.0, posinf=0.0)
    peak = flat.max(axis=1) if flat.size else np.zeros(len(kernels))
    scale = np.divide(0.5, peak, out=np.zeros_like(peak), where=peak > 0)
    return 0.5 + kernels * scale.reshape(-1, *([1] * (kernels.ndim - 1)))


def block_mean(matrix: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, tuple[int, int]]:
    """Average ``matrix`` over blocks so that no side exceeds ``max_side``; the last block of a
    row or column may be smaller. Returns the result and the block size (rows, columns).

    Reduces the axis with the larger block first, so the intermediate array stays small.
    """
    blocks = tuple(-(-side // max_side) for side in matrix.shape)
    for axis in sorted((0, 1), key=lambda a: -blocks[a]):
        if blocks[axis] > 1:
            starts = np.arange(0, matrix.shape[axis], blocks[axis])
            sizes = np.diff(np.append(starts, matrix.shape[axis]))
            matrix = np.add.reduceat(matrix, starts, axis=axis) / np.expand_dims(sizes, 1 - axis).astype(np.float32)
    return matrix.astype(np.float32, copy=False), blocks


def filter_view(root: torch.nn.Module, layer: str, input_channel: int | None = None, gap: int = 1) -> FilterView:
    """The weights of ``layer`` (of its first weighted sub-layer, for a block) as a picture-ready
    float image (see the module notes for modes).

    ``input_channel`` shows that input's slice of each convolution kernel instead of the
    mean over inputs (and turns a 3-input layer's RGB view into single-channel kernels).
    """
    layer = weighted_layer(root, layer)
    module = find_layer(root, layer)
    weight = module.weight
    name = type(module).__name__
    array = weight.detach().to("cpu", torch.float32).numpy()
    common = dict(layer=layer, module_type=name, weight_shape=tuple(array.shape), histogram=weight_histogram(weight))
    if array.ndim <= 2:
        if input_channel is not None:
            raise UserError(f"layer {layer} ({name}) has no input channels to choose; leave out the input channel")
        matrix, block = block_mean(array.reshape(1, -1) if array.ndim < 2 else array)
        peak = float(np.nanmax(np.abs(np.nan_to_num(matrix, posinf=0.0, neginf=0.0)), initial=0.0)) or 1.0
        layout = GridLayout(np.array([0]), 1, 1, *matrix.shape, gap=0)
        return FilterView(**common, mode="matrix", values=(0.5 + matrix / (2 * peak)).astype(np.float32),
                          layout=layout, cmap="diverging", value_range=(-peak, peak), block=block)
    if input_channel is not None and not 0 <= input_channel < array.shape[1]:
        raise UserError(f"layer {layer} ({name}) has {array.shape[1]} input channels per kernel; "
                        f"choose an input channel from 0 to {array.shape[1] - 1}")
    if array.ndim == 4 and array.shape[1] == 3 and input_channel is None:
        kernels = _symmetric(array).transpose(0, 2, 3, 1)
        layout = GridLayout.near_square(np.arange(len(kernels)), *kernels.shape[1:3], gap)
        return FilterView(**common, mode="rgb", values=layout.tile(kernels.astype(np.float32), np.nan),
                          layout=layout, cmap=None, value_range=None)
    kernels = array.mean(axis=1) if input_channel is None else array[:, input_channel]
    kernels = kernels.reshape(len(kernels), -1, kernels.shape[-1])
    layout = GridLayout.near_square(np.arange(len(kernels)), *kernels.shape[1:], gap)
    return FilterView(**common, mode="kernels", values=layout.tile(_symmetric(kernels).astype(np.float32), np.nan),
                      layout=layout, cmap="diverging", value_range=None, input_channel=input_channel)


def render_filter_picture(view: FilterView, labels: bool = True) -> np.ndarray:
    """The exported picture of a ``FilterView``: enlarged with nearest neighbour so small kernels
    are visible (a matrix to at least 256 pixels), kernels numbered."""
    matrix = view.mode == "matrix"
    rgb, _ = grid_picture(view.values, view.layout, view.cmap, min_tile=256 if matrix else 32,
                          labels=labels and not matrix)
    return rgb
