"""Export views of one layer: its activation grid for an image, and its filter weights."""

from __future__ import annotations

import argparse

from cnnexplorer.exports.base import ExportView, Picture, need_image, need_layer, pair


def _activations(handle, image, args) -> Picture:
    from cnnexplorer.core.activations import activation_grid, capture, render_activation_picture

    layer = need_layer(args, "activations")
    need_image(image, "activations")
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
    parser.add_argument("--range", type=pair, metavar="LO,HI", help="activations: fixed value range, implies --norm fixed (write --range=-1,1 when LO is negative)")
    parser.add_argument("--sort", choices=SORTS, default="index",
                        help="activations: channel order (mean and max descending; default: index)")
    parser.add_argument("--hide-dead", action="store_true", help="activations: leave out channels that are all <= 0")


def _filters(handle, image, args) -> Picture:
    from cnnexplorer.core.filters import filter_view, render_filter_picture

    layer = need_layer(args, "filters")
    view = filter_view(handle.module, layer, input_channel=args.input_channel)
    value_range = list(view.value_range) if view.value_range else None
    return Picture(
        render_filter_picture(view),
        settings={"input_channel": args.input_channel, "mode": view.mode},
        report={"layer": view.layer, "shape": list(view.weight_shape), "type": view.module_type, "mode": view.mode,
                "range": value_range, "block": list(view.block), "histogram": view.histogram.to_json()},
        layer=view.layer,
    )


def _add_filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-channel", type=int, metavar="K",
                        help="filters: show input channel K of each kernel instead of the mean over inputs")


VIEWS = (ExportView("activations", _activations, _add_activation_options),
         ExportView("filters", _filters, _add_filter_options))
