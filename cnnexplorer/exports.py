"""The pictures ``cnnexplorer export VIEW`` can write, each made by a core render function.

Each view adds its own CLI options and turns (model, image, options) into pixels, the settings
that go into the sidecar and the keys of the ``--json`` report. The GUI's views call the same
core render functions, so both front ends write the same pixels.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cnnexplorer.core.errors import UserError


@dataclass(frozen=True)
class Picture:
    pixels: np.ndarray
    settings: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    layer: str | None = None


@dataclass(frozen=True)
class ExportView:
    name: str
    make: Callable[..., Picture]  # (handle, image | None, args) -> Picture
    add_options: Callable[[argparse.ArgumentParser], None] = lambda parser: None


def _summary(handle, image, args) -> Picture:
    from cnnexplorer.core.architecture import summarize
    from cnnexplorer.core.charts import render_summary_table

    summary = summarize(handle.module, args.input_size or handle.input_size, handle.device, model_name=handle.spec)
    return Picture(
        render_summary_table(summary),
        settings={"input_size": list(summary.input_size)},
        report={"total_params": summary.total_params, "macs": summary.macs},
    )


def _predictions(handle, image, args) -> Picture:
    from cnnexplorer.core.charts import render_predictions_chart
    from cnnexplorer.core.predict import predict_images

    if image is None:
        raise UserError("export predictions needs an image: pass --image IMG")
    scores = predict_images(handle, [image.image], top=args.top)[0]
    return Picture(
        render_predictions_chart(scores, title=image.name),
        settings={"top": args.top, "target": None},
        report={"top": [s.to_json() for s in scores]},
    )


def _add_top(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top", type=int, default=5, help="predictions: number of classes (default: 5)")


def _need_layer(args, view: str) -> str:
    if not args.layer:
        raise UserError(f"export {view} needs a layer: pass --layer NAME (`cnnexplorer summary` lists them)")
    return args.layer


def _activations(handle, image, args) -> Picture:
    from cnnexplorer.core.activations import activation_grid, capture, render_activation_picture

    layer = _need_layer(args, "activations")
    if image is None:
        raise UserError("export activations needs an image: pass --image IMG")
    output = capture(handle, handle.preprocessing.to_tensor(image.image), [layer]).output(layer)
    norm = args.norm or ("fixed" if args.range else "channel")
    grid = activation_grid(output, norm=norm, value_range=args.range, sort=args.sort,
                           hide_dead=args.hide_dead, cmap=args.cmap)
    value_range = list(grid.value_range) if grid.value_range else None
    stats = grid.stats
    return Picture(
        render_activation_picture(grid),
        settings={"norm": grid.norm, "range": value_range, "cmap": grid.cmap, "sort": args.sort,
                  "hide_dead": args.hide_dead},
        report={"layer": layer, "shape": list(grid.shape),
                "channels": [{k: v for k, v in stats.channel(i).items() if k in ("index", "mean", "max")}
                             for i in range(grid.shape[0])],
                "norm": grid.norm, "range": value_range, "cmap": grid.cmap,
                "zero_fraction": stats.layer_zero_fraction, "dead_channels": stats.dead_count,
                "warning": grid.warning},
        layer=layer,
    )


def _add_activation_options(parser: argparse.ArgumentParser) -> None:
    from cnnexplorer.core.activations import NORMS, SORTS

    parser.add_argument("--norm", choices=NORMS,
                        help="activations: scale per channel (default), per layer, or to --range")
    parser.add_argument("--range", type=_pair, metavar="LO,HI", help="activations: fixed value range, implies --norm fixed (write --range=-1,1 when LO is negative)")
    parser.add_argument("--sort", choices=SORTS, default="index",
                        help="activations: channel order (mean and max descending; default: index)")
    parser.add_argument("--hide-dead", action="store_true", help="activations: leave out channels that are all <= 0")


def _pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two comma-separated numbers LO,HI, got '{text}'") from None
    return low, high


def _filters(handle, image, args) -> Picture:
    from cnnexplorer.core.filters import filter_view, render_filter_picture

    layer = _need_layer(args, "filters")
    view = filter_view(handle.module, layer, input_channel=args.input_channel)
    value_range = list(view.value_range) if view.value_range else None
    return Picture(
        render_filter_picture(view),
        settings={"input_channel": args.input_channel, "mode": view.mode},
        report={"layer": layer, "shape": list(view.weight_shape), "type": view.module_type, "mode": view.mode,
                "range": value_range, "block": list(view.block), "histogram": view.histogram.to_json()},
        layer=layer,
    )


def _add_filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-channel", type=int, metavar="K",
                        help="filters: show input channel K of each kernel instead of the mean over inputs")


def add_shared_options(parser: argparse.ArgumentParser) -> None:
    """Options several views read; each view documents its own default."""
    from cnnexplorer.core.colormaps import COLORMAPS

    parser.add_argument("--cmap", choices=COLORMAPS,
                        help="colour map (activations default: diverging for signed outputs, else viridis)")
    parser.add_argument("--target", metavar="CLASS", help="target class, as an index or a class name")
    parser.add_argument("--steps", type=int, metavar="N", help="iterations of an optimisation or attack")


EXPORT_VIEWS: dict[str, ExportView] = {
    v.name: v
    for v in (
        ExportView("summary", _summary),
        ExportView("predictions", _predictions, _add_top),
        ExportView("activations", _activations, _add_activation_options),
        ExportView("filters", _filters, _add_filter_options),
    )
}
