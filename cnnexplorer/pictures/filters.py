"""A layer's filter weights: first-layer kernels as colour images, deeper ones per output channel,
linear layers as a matrix, with a histogram of the weights."""

from __future__ import annotations

from dataclasses import dataclass

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of


@dataclass(frozen=True)
class FilterOptions:
    """``input_channel``: show that input channel of each kernel (None: the mean over inputs)."""

    input_channel: int | None = None


def make_filters(inputs: Inputs, options: FilterOptions) -> Job[Picture]:
    from cnnexplorer.core.filters import filter_view, render_filter_picture

    layer = inputs.need_layer("filters")
    yield Progress(0, None, f"weights of {layer}")
    view = filter_view(inputs.handle.module, layer, input_channel=options.input_channel)
    value_range = list(view.value_range) if view.value_range else None
    return Picture(
        render_filter_picture(view),
        settings={**settings_of(options), "mode": view.mode},
        report={"layer": view.layer, "shape": list(view.weight_shape), "type": view.module_type, "mode": view.mode,
                "range": value_range, "block": list(view.block), "histogram": view.histogram.to_json()},
        layer=view.layer,
    )


def _add_flags(parser) -> None:
    parser.add_argument("--input-channel", type=int, metavar="K",
                        help="filters: show input channel K of each kernel instead of the mean over inputs")


RECIPE = Recipe("filters", FilterOptions, make_filters, _add_flags,
                lambda args: FilterOptions(args.input_channel))
