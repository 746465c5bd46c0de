"""Every channel of one layer for an image, tiled into one grid, numbered and coloured; beside it
the same layer for a second image (each channel in the same place), or the difference of the two;
below them the title and the colour bar, so the PNG reads on its own (below, so that picture
pixels of the grids keep their place and clicks still map through each panel's layout).

The Activations tab and ``cnnexplorer export activations`` run the same job
(``activation_picture``): the tab passes the session's activation cache, so switching layer for
the same image runs no model, and the comparison image it already has open.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    import numpy as np

    from cnnexplorer.core.activations import ActivationCache, ActivationGrid
    from cnnexplorer.core.grids import GridLayout
    from cnnexplorer.core.images import LoadedImage

SPACER = 16
"""White pixels between two compared grids."""


@dataclass(frozen=True)
class Comparison:
    """A second image (its path and SHA-256, as the sidecar records it) shown beside the first,
    or subtracted from it (``difference``)."""

    image: str
    sha256: str | None = None
    difference: bool = False


@dataclass(frozen=True)
class ActivationOptions:
    """How the grid is drawn: ``norm`` channel | layer | fixed (to ``range``), the colour map
    (None: diverging for signed outputs, else viridis), channel order, dead channels hidden,
    which tensor of a layer that returns several, and a second image to compare with."""

    norm: str = "channel"
    range: tuple[float, float] | None = None
    cmap: str | None = None
    sort: str = "index"
    hide_dead: bool = False
    output_index: int = 0
    compare: Comparison | None = None

    def __post_init__(self):
        if isinstance(self.compare, dict):  # as a sidecar's settings hold it
            object.__setattr__(self, "compare", Comparison(**self.compare))

    def grid_kwargs(self) -> dict:
        """``activation_grid``'s arguments. ``range`` counts only for the fixed normalisation: the
        settings also record a layer-wide range, so that the colours can be read back."""
        return dict(norm=self.norm, value_range=self.range if self.norm == "fixed" else None, cmap=self.cmap,
                    sort=self.sort, hide_dead=self.hide_dead)


@dataclass(frozen=True)
class Panel:
    """One grid of the picture, starting ``left`` pixels from its left edge and ``width`` wide;
    ``layout`` is the grid's layout in the (enlarged) picture."""

    name: str
    grid: ActivationGrid
    layout: GridLayout
    left: int
    width: int


@dataclass(frozen=True)
class ActivationPicture:
    """What the job made: its panels side by side as ``pixels``; the options that make it again
    (the first grid's normalisation, range and colour map resolved); how many tensors the layer
    returns; the model's input as ``H×W×3`` pixels, for a channel drawn over it."""

    inputs: Inputs
    options: ActivationOptions
    panels: tuple[Panel, ...]
    pixels: np.ndarray
    outputs: int
    input_pixels: np.ndarray
    asked_norm: str = "channel"  # the normalisation asked for (a comparison draws "layer" as one fixed range)

    @property
    def layer(self) -> str:
        return self.inputs.layer

    @property
    def image(self) -> LoadedImage:
        return self.inputs.image

    @property
    def grid(self) -> ActivationGrid:
        return self.panels[0].grid

    @property
    def settings(self) -> dict:
        return settings_of(self.options)

    def hit(self, x: float, y: float) -> tuple[Panel, int] | None:
        """The panel and channel under picture pixel ``(x, y)``, or None."""
        for panel in self.panels:
            channel = panel.layout.tile_index_at(x - panel.left, y)
            if channel is not None:
                return panel, channel
        return None

    def picture(self) -> Picture:
        grid = self.grid
        stats, value_range = grid.stats, self.options.range
        return Picture(
            self.pixels, settings=self.settings,
            report={"layer": self.layer, "shape": list(grid.shape),
                    "channels": [{k: v for k, v in stats.channel(i).items() if k in ("index", "mean", "max")}
                                 for i in range(grid.shape[0])],
                    "norm": grid.norm, "range": list(value_range) if value_range else None, "cmap": grid.cmap,
                    "zero_fraction": stats.layer_zero_fraction, "dead_channels": stats.dead_count,
                    "warning": grid.warning},
            layer=self.layer,
        )


def activation_picture(inputs: Inputs, options: ActivationOptions, cache: ActivationCache | None = None,
                       compared: LoadedImage | None = None) -> Job[ActivationPicture]:
    """The grid of ``inputs.layer`` (``name#k``: its k-th call) for the image, and for the compared one.

    ``cache`` (the GUI session's) saves the model run of an image already recorded; without one
    only this layer is recorded. ``compared`` is ``options.compare``'s image when it is open
    already; else it is loaded from its path and checked against its SHA-256.
    """
    from cnnexplorer.core.activations import ActivationCache, activation_grid, compare_grids, pick_output
    from cnnexplorer.core.attribution.overlay import image_pixels

    layer, image, handle = inputs.need_layer("activations"), inputs.need_image("activations"), inputs.handle
    cache = cache if cache is not None else ActivationCache(layers=[])
    yield Progress(0, None, f"activations of {layer}")
    pixels = handle.pixels(image)
    outputs = cache.get_outputs(handle, pixels, layer, image.sha256)
    output = pick_output(layer, outputs, options.output_index)
    comparison = options.compare
    if comparison is None:
        named = [(image.name, activation_grid(output, **options.grid_kwargs()))]
    else:
        other = compared if compared is not None else _open(comparison)
        yield Progress(0, None, f"activations of {layer} for {other.name}")
        second = cache.get_or_capture(handle, handle.pixels(other), layer, other.sha256, options.output_index)
        grids = compare_grids(output, second, difference=comparison.difference, **options.grid_kwargs())
        names = [f"{image.name} − {other.name}"] if comparison.difference else [image.name, other.name]
        named = list(zip(names, grids))
        comparison = Comparison(other.source, other.sha256, comparison.difference)
    panels, picture = _side_by_side(named)
    grid = panels[0].grid
    picture = _with_colour_bar(picture, layer, panels)
    shown = replace(options, norm=grid.norm, range=grid.value_range, cmap=grid.cmap, compare=comparison)
    return ActivationPicture(inputs, shown, panels, picture, len(outputs), image_pixels(pixels), options.norm)


def _open(comparison: Comparison) -> LoadedImage:
    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.images import load_image

    image = load_image(comparison.image)
    if comparison.sha256 is not None and image.sha256 != comparison.sha256:
        raise UserError(f"{comparison.image}, the image compared with, has changed since the picture was made "
                        "(its SHA-256 differs); restore the original image to reproduce it")
    return image


def _side_by_side(named: list[tuple[str, ActivationGrid]]) -> tuple[tuple[Panel, ...], np.ndarray]:
    """The grids' pictures side by side, with a white spacer between them."""
    import numpy as np

    from cnnexplorer.core.activations import render_activation_picture

    panels, pictures, left = [], [], 0
    for name, grid in named:
        rgb = render_activation_picture(grid)
        layout = grid.layout.scaled(rgb.shape[1] // grid.values.shape[1])
        panels.append(Panel(name, grid, layout, left, rgb.shape[1]))
        if pictures:
            pictures.append(np.full((rgb.shape[0], SPACER, 3), 255, np.uint8))
        pictures.append(rgb)
        left += rgb.shape[1] + SPACER
    return tuple(panels), np.ascontiguousarray(np.concatenate(pictures, axis=1))


def _with_colour_bar(picture: np.ndarray, layer: str, panels: tuple[Panel, ...]) -> np.ndarray:
    """The grids with their title (the layer, the images) and the colour bar of the first grid
    (the others share its colours) below."""
    from cnnexplorer.core.activations.stats import CLIP_STD
    from cnnexplorer.core.colour_bar import Scale, with_colour_bar

    grid = panels[0].grid
    what = "units" if grid.units else "channels"
    title = f"{layer}: {grid.shape[0]} {what} of " + " | ".join(p.name for p in panels)
    if grid.value_range is None:
        scale = Scale(grid.cmap, None, None, f"each channel on its own: its mean -/+ {CLIP_STD:g} standard deviations",
                      (f"mean - {CLIP_STD:g} sd", f"mean + {CLIP_STD:g} sd"))
    else:
        kind = {"layer": "one range for the whole layer", "fixed": "a fixed range"}.get(grid.norm, grid.norm)
        scale = Scale(grid.cmap, *grid.value_range, f"activation value ({kind})")
    return with_colour_bar(picture, title.replace("−", "-"), scale)


def channel_overlay(shown: ActivationPicture, channel: int) -> Job[np.ndarray | None]:
    """``channel``'s tile of the first grid, coloured as there and upsampled to the model input's
    size, to draw over the input (None for units and for a channel the grid hides)."""
    import torch

    from cnnexplorer.core.colormaps import apply_colormap

    yield Progress(0, None, f"channel {channel}")
    grid = shown.grid
    origin = grid.layout.tile_origin(channel)
    if grid.units or origin is None:
        return None
    x, y = origin
    tile = torch.from_numpy(grid.values[y:y + grid.layout.tile_h, x:x + grid.layout.tile_w].copy())
    size = shown.input_pixels.shape[:2]
    upsampled = torch.nn.functional.interpolate(tile[None, None], size=size, mode="bilinear", align_corners=False)
    return apply_colormap(upsampled[0, 0].numpy(), grid.cmap)


def make_activations(inputs: Inputs, options: ActivationOptions) -> Job[Picture]:
    shown = yield from activation_picture(inputs, options)
    return shown.picture()


def _add_flags(parser) -> None:
    from cnnexplorer.core.activations import NORMS, SORTS
    from cnnexplorer.pictures.flags import bounded_int, numbers

    parser.add_argument("--norm", choices=NORMS,
                        help="activations: scale per channel (default), per layer, or to --range")
    parser.add_argument("--range", type=numbers(float, 2), metavar="LO,HI",
                        help="activations: fixed value range, implies --norm fixed (write --range=-1,1 when LO is negative)")
    parser.add_argument("--sort", choices=SORTS, default="index",
                        help="activations: channel order (mean and max descending; default: index)")
    parser.add_argument("--hide-dead", action="store_true", help="activations: leave out channels that are all <= 0")
    parser.add_argument("--output-index", type=bounded_int(0), default=0, metavar="K",
                        help="activations: show tensor K of a layer that returns several (default: 0)")


def _from_flags(args) -> ActivationOptions:
    from cnnexplorer.core.errors import UserError

    if args.range and args.norm not in (None, "fixed"):
        raise UserError(f"--range goes with the fixed normalisation, not --norm {args.norm}; leave out one of them")
    return ActivationOptions(norm=args.norm or ("fixed" if args.range else "channel"), range=args.range,
                             cmap=args.cmap, sort=args.sort, hide_dead=args.hide_dead, output_index=args.output_index)


RECIPE = Recipe("activations", ActivationOptions, make_activations, _add_flags, _from_flags)
