"""Every channel of one layer for an image, tiled into one grid, numbered and coloured."""

from __future__ import annotations

from dataclasses import dataclass

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of


@dataclass(frozen=True)
class ActivationOptions:
    """How the grid is drawn: ``norm`` channel | layer | fixed (to ``range``), the colour map
    (None: diverging for signed outputs, else viridis), channel order, dead channels hidden."""

    norm: str = "channel"
    range: tuple[float, float] | None = None
    cmap: str | None = None
    sort: str = "index"
    hide_dead: bool = False


def make_activations(inputs: Inputs, options: ActivationOptions) -> Job[Picture]:
    from cnnexplorer.core.activations import activation_grid, capture, render_activation_picture

    layer = inputs.need_layer("activations")
    image = inputs.need_image("activations")
    yield Progress(0, None, f"activations of {layer}")
    output = capture(inputs.handle, inputs.handle.pixels(image), [layer]).output(layer)
    grid = activation_grid(output, norm=options.norm, value_range=options.range, sort=options.sort,
                           hide_dead=options.hide_dead, cmap=options.cmap)
    value_range = tuple(grid.value_range) if grid.value_range else None
    stats = grid.stats
    return Picture(
        render_activation_picture(grid),
        settings=settings_of(ActivationOptions(grid.norm, value_range, grid.cmap, options.sort, options.hide_dead)),
        report={"layer": layer, "shape": list(grid.shape),
                "channels": [{k: v for k, v in stats.channel(i).items() if k in ("index", "mean", "max")}
                             for i in range(grid.shape[0])],
                "norm": grid.norm, "range": list(value_range) if value_range else None, "cmap": grid.cmap,
                "zero_fraction": stats.layer_zero_fraction, "dead_channels": stats.dead_count,
                "warning": grid.warning},
        layer=layer,
    )


def _add_flags(parser) -> None:
    from cnnexplorer.core.activations import NORMS, SORTS
    from cnnexplorer.pictures.flags import numbers

    parser.add_argument("--norm", choices=NORMS,
                        help="activations: scale per channel (default), per layer, or to --range")
    parser.add_argument("--range", type=numbers(float, 2), metavar="LO,HI",
                        help="activations: fixed value range, implies --norm fixed (write --range=-1,1 when LO is negative)")
    parser.add_argument("--sort", choices=SORTS, default="index",
                        help="activations: channel order (mean and max descending; default: index)")
    parser.add_argument("--hide-dead", action="store_true", help="activations: leave out channels that are all <= 0")


def _from_flags(args) -> ActivationOptions:
    return ActivationOptions(norm=args.norm or ("fixed" if args.range else "channel"), range=args.range,
                             cmap=args.cmap, sort=args.sort, hide_dead=args.hide_dead)


RECIPE = Recipe("activations", ActivationOptions, make_activations, _add_flags, _from_flags)
