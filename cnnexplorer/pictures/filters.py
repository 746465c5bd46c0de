"""A layer's filter weights: first-layer kernels as colour images, deeper ones per output channel,
linear layers as a matrix, with a histogram of the weights.

The Weights tab and ``cnnexplorer export filters`` run the same job (``filter_picture``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    import numpy as np

    from cnnexplorer.core.filters import FilterView
    from cnnexplorer.core.grids import GridLayout


@dataclass(frozen=True)
class FilterOptions:
    """``input_channel``: show that input channel of each kernel (None: the mean over inputs)."""

    input_channel: int | None = None


@dataclass(frozen=True)
class FilterPicture:
    """What the job made: the weights of ``view.layer`` (``inputs.layer``'s first weighted layer
    when that is a block), enlarged ``factor`` times into ``pixels``, with the tiles' ``layout``."""

    inputs: Inputs
    options: FilterOptions
    view: FilterView
    pixels: np.ndarray
    layout: GridLayout
    factor: int

    @property
    def settings(self) -> dict:
        return {**settings_of(self.options), "mode": self.view.mode}

    def kernel_at(self, x: float, y: float) -> tuple[int, str] | None:
        """The output channel at picture pixel ``(x, y)`` and a line about it (the weight, for a matrix)."""
        view, factor = self.view, self.factor
        if view.mode != "matrix":
            channel = self.layout.tile_index_at(x, y)
            return None if channel is None else (channel, f"output channel {channel}")
        row, col = int(y // factor), int(x // factor)
        height, width = view.values.shape
        if not (0 <= row < height and 0 <= col < width and x >= 0 and y >= 0):
            return None
        weight = (float(view.values[row, col]) - 0.5) * 2 * view.value_range[1]
        block_rows, block_cols = view.block
        where = (f"output {row}, input {col}" if view.block == (1, 1) else
                 f"outputs {row * block_rows}…, inputs {col * block_cols}… (block mean)")
        return row * block_rows, f"{where}: {weight:.4g}"

    def picture(self) -> Picture:
        view = self.view
        value_range = list(view.value_range) if view.value_range else None
        return Picture(
            self.pixels, settings=self.settings,
            report={"layer": view.layer, "shape": list(view.weight_shape), "type": view.module_type, "mode": view.mode,
                    "range": value_range, "block": list(view.block), "histogram": view.histogram.to_json()},
            layer=view.layer,
        )


def filter_picture(inputs: Inputs, options: FilterOptions) -> Job[FilterPicture]:
    from cnnexplorer.core.filters import filter_view, render_filter_picture

    layer = inputs.need_layer("filters")
    yield Progress(0, None, f"weights of {layer}")
    view = filter_view(inputs.handle.module, layer, input_channel=options.input_channel)
    pixels = render_filter_picture(view)
    factor = pixels.shape[1] // view.values.shape[1]
    return FilterPicture(inputs, options, view, pixels, view.layout.scaled(factor), factor)


def make_filters(inputs: Inputs, options: FilterOptions) -> Job[Picture]:
    shown = yield from filter_picture(inputs, options)
    return shown.picture()


def _add_flags(parser) -> None:
    parser.add_argument("--input-channel", type=int, metavar="K",
                        help="filters: show input channel K of each kernel instead of the mean over inputs")


RECIPE = Recipe("filters", FilterOptions, make_filters, _add_flags,
                lambda args: FilterOptions(args.input_channel))
