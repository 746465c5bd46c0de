"""Why the model said what it said: a class heatmap (saliency, Grad-CAM and kin) over the image.

The map is computed once (``explain_job``) and drawn (``draw``) as often as the overlay's
opacity or colour map change, so the GUI redraws without recomputing; ``export heatmap`` runs
both. The GUI's extra panels (methods compared, top classes, sanity check, faithfulness curves)
are in ``heatmap_panels``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    from torch import Tensor

    from cnnexplorer.core.attribution import Heatmap


@dataclass(frozen=True)
class HeatmapOptions:
    """The method, the target class (an index or typed text; None: the top class), "why not"
    (evidence against the target), the overlay's opacity and colour map (None: the method's own)."""

    method: str = "gradcam"
    target: int | str | None = None
    why_not: bool = False
    alpha: float = 0.7
    cmap: str | None = None


@dataclass(frozen=True)
class Explained:
    """A computed map and the model input it explains: all a redraw needs."""

    pixels: Tensor
    heatmap: Heatmap


def image_point(preprocessing, size: tuple[int, int], x: int, y: int) -> list[float]:
    """Model-input pixel ``(x, y)``'s centre in the original image's pixels (undoing the resize
    and the centre crop of ``preprocessing``; ``size`` is the original's width, height)."""
    out_h, out_w = preprocessing.size
    left, top, right, bottom = (0, 0, *size) if preprocessing.resize is None else preprocessing.crop_box(size)
    return [left + (x + 0.5) * (right - left) / out_w - 0.5, top + (y + 0.5) * (bottom - top) / out_h - 0.5]


def target_class(handle, options: HeatmapOptions) -> int | None:
    """The class index ``options.target`` names (None: the model's top class)."""
    from cnnexplorer.core.classes import find_class

    return None if options.target is None else find_class(handle.class_names, options.target)


def explain_job(inputs: Inputs, options: HeatmapOptions) -> Job[Explained]:
    """The map of ``options.method`` for the image (at ``inputs.layer`` for the CAM methods)."""
    from cnnexplorer.core.attribution import heatmap_job

    handle, image = inputs.handle, inputs.need_image("heatmap")
    yield Progress(0, None, f"{options.method} heatmap")
    pixels = handle.pixels(image)
    heatmap = yield from heatmap_job(handle, pixels, options.method, target_class(handle, options), inputs.layer,
                                     negative=options.why_not)
    return Explained(pixels, heatmap)


def draw(explained: Explained, alpha: float, cmap: str | None) -> Picture:
    """The overlay of a computed map and the settings that make it again (the resolved target and colour map)."""
    from cnnexplorer.core.attribution import default_cmap, render_heatmap

    heatmap = explained.heatmap
    cmap = cmap or default_cmap(heatmap)
    return Picture(render_heatmap(explained.pixels, heatmap, alpha, cmap),
                   settings=settings_of(HeatmapOptions(heatmap.method, heatmap.target, heatmap.negative, alpha, cmap)),
                   layer=heatmap.layer)


def make_heatmap(inputs: Inputs, options: HeatmapOptions) -> Job[Picture]:
    from cnnexplorer.core.checks import check_number
    from cnnexplorer.core.render import npy_bytes

    check_number("--alpha", options.alpha, 0, 1, why="the overlay's opacity goes from 0, the image only, to 1, the map only")
    explained = yield from explain_job(inputs, options)
    heatmap, handle = explained.heatmap, inputs.handle
    x, y = heatmap.peak()
    return replace(
        draw(explained, options.alpha, options.cmap),
        report={"method": options.method, "target": {"index": heatmap.target, "label": handle.label(heatmap.target)},
                "score": heatmap.score, "peak": [x, y],
                "peak_image": image_point(handle.preprocessing, inputs.image.image.size, x, y),
                "layer": heatmap.layer, "why_not": options.why_not},
        side={"map": npy_bytes(heatmap.map)},
    )


def _add_flags(parser) -> None:
    from cnnexplorer.core.attribution import METHODS
    from cnnexplorer.pictures.flags import suffix

    parser.add_argument("--method", choices=METHODS, default="gradcam", help="heatmap: method (default gradcam)")
    parser.add_argument("--why-not", action="store_true", help="heatmap: show the evidence against --target")
    parser.add_argument("--alpha", type=float, default=0.7, metavar="A",
                        help="heatmap: opacity of the overlay, 0 to 1 (default 0.7)")
    parser.add_argument("--save-map", type=suffix(".npy", "--save-map writes a NumPy file: give a name ending in .npy"), metavar="MAP.npy",
                        help="heatmap: also save the raw map (model-input pixels)")


def _from_flags(args) -> HeatmapOptions:
    return HeatmapOptions(args.method, args.target, args.why_not, args.alpha, args.cmap)


RECIPE = Recipe("heatmap", HeatmapOptions, make_heatmap, _add_flags, _from_flags, side_flags={"map": "save_map"})
