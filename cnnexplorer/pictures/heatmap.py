"""Why the model said what it said: a class heatmap (saliency, Grad-CAM and kin) over the image.

The map is computed once (``explain_job``) and drawn (``draw``) as often as the overlay's
opacity, clipping or colour map change, so the GUI redraws without recomputing; ``export
heatmap`` runs both. It is drawn at the original image's resolution (the map upsampled over the
part the model saw), with its title and colour bar below, so the PNG reads on its own. The GUI's extra panels (methods compared, top classes, sanity check, faithfulness curves)
are in ``heatmap_panels``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

    from cnnexplorer.core.attribution import Heatmap


@dataclass(frozen=True)
class HeatmapOptions:
    """The method, the target class (an index or typed text; None: the top class), "why not"
    (evidence against the target), the overlay's opacity and colour map (None: the method's own),
    the percentage of largest magnitudes that saturate the colours (the core's ``DEFAULT_CLIP``),
    whether the map is drawn over the image or alone, and two method options: the reduction over
    colour channels of the gradient methods that take one (``REDUCTIONS``) and LRP's composite."""

    method: str = "gradcam"
    target: int | str | None = None
    why_not: bool = False
    alpha: float = 0.7
    cmap: str | None = None
    clip: float = 1.0
    overlay: bool = True
    reduce: str = "max"
    composite: str = "epsilon-plus-flat"


REDUCTIONS = {"max": "max-abs", "mean": "mean", "rgb": "rgb"}
"""``--reduce``'s choices and the core's names: the largest magnitude over the colour channels
(Simonyan et al.'s saliency), their signed average, or all three as an RGB picture."""


def method_options(method: str, options: HeatmapOptions) -> dict:
    """The options ``method`` takes among those the heatmap options hold."""
    from cnnexplorer.core.attribution import METHODS
    from cnnexplorer.core.checks import check_choice

    check_choice("--reduce", options.reduce, tuple(REDUCTIONS))
    takes = METHODS[method].options if method in METHODS else ()
    given = {"reduce": REDUCTIONS[options.reduce], "composite": options.composite}
    return {name: value for name, value in given.items() if name in takes}


@dataclass(frozen=True)
class Explained:
    """A computed map, the model input it explains, the original image (``H×W×3``), the part of
    it the model saw and the target's name: all a redraw needs."""

    pixels: Tensor
    heatmap: Heatmap
    image: np.ndarray
    box: tuple[float, float, float, float]
    label: str


def model_box(preprocessing, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The part of an image of ``size`` (width, height) the model sees, in its pixels."""
    return (0.0, 0.0, float(size[0]), float(size[1])) if preprocessing.resize is None else preprocessing.crop_box(size)


def image_point(preprocessing, size: tuple[int, int], x: int, y: int) -> list[float]:
    """Model-input pixel ``(x, y)``'s centre in the original image's pixels (undoing the resize
    and the centre crop of ``preprocessing``; ``size`` is the original's width, height)."""
    out_h, out_w = preprocessing.size
    left, top, right, bottom = model_box(preprocessing, size)
    return [left + (x + 0.5) * (right - left) / out_w - 0.5, top + (y + 0.5) * (bottom - top) / out_h - 0.5]


def target_class(handle, options: HeatmapOptions) -> int | None:
    """The class index ``options.target`` names (None: the model's top class)."""
    from cnnexplorer.core.classes import find_class

    return None if options.target is None else find_class(handle.class_names, options.target)


def explain_job(inputs: Inputs, options: HeatmapOptions) -> Job[Explained]:
    """The map of ``options.method`` for the image (at ``inputs.layer`` for the CAM methods)."""
    import numpy as np

    from cnnexplorer.core.attribution import heatmap_job

    handle, image = inputs.handle, inputs.need_image("heatmap")
    yield Progress(0, None, f"{options.method} heatmap")
    pixels = handle.pixels(image)
    heatmap = yield from heatmap_job(handle, pixels, options.method, target_class(handle, options), inputs.layer,
                                     negative=options.why_not, **method_options(options.method, options))
    label = handle.label(heatmap.target) if heatmap.target is not None else "custom score"
    return Explained(pixels, heatmap, np.asarray(image.image.convert("RGB")),
                     model_box(handle.preprocessing, image.image.size), str(label))


def title(heatmap: Heatmap, label: str) -> str:
    """What a map shows, in words the pictures' font can draw."""
    from cnnexplorer.core.attribution import METHODS

    where = f" at {heatmap.layer}" if heatmap.layer else ""
    against = "against" if heatmap.negative else "for"
    text = f"{METHODS[heatmap.method].title}{where}: evidence {against} '{label}' (p = {heatmap.score:.3f})"
    if "relevance_sum" in heatmap.info:
        text += f", relevance {heatmap.info['relevance_sum']:.3g} of logit {heatmap.info['logit']:.3g}"
    return text.replace("×", "x")


def draw(explained: Explained, options: HeatmapOptions) -> Picture:
    """The map over the original image (or alone) with its title and colour bar, and the
    settings that make it again (the resolved method, target, "why not" and colour map)."""
    from cnnexplorer.core.attribution import default_cmap, render_heatmap
    from cnnexplorer.core.attribution.overlay import heatmap_scale
    from cnnexplorer.core.colour_bar import with_colour_bar

    heatmap = explained.heatmap
    cmap = options.cmap or default_cmap(heatmap)
    pixels = render_heatmap(explained.pixels, heatmap, options.alpha, cmap, options.clip, background=explained.image,
                            box=explained.box, overlay=options.overlay)
    shown = replace(options, method=heatmap.method, target=heatmap.target, why_not=heatmap.negative, cmap=cmap)
    return Picture(with_colour_bar(pixels, title(heatmap, explained.label), heatmap_scale(heatmap, cmap, options.clip)),
                   settings=settings_of(shown), layer=heatmap.layer)


def make_heatmap(inputs: Inputs, options: HeatmapOptions) -> Job[Picture]:
    from cnnexplorer.core.checks import check_number
    from cnnexplorer.core.render import npy_bytes

    check_number("--alpha", options.alpha, 0, 1, why="the overlay's opacity goes from 0, the image only, to 1, the map only")
    check_number("--clip", options.clip, 0, 100, open_high=True,
                 why="the percentage of the largest values that saturate the colours (1 or 2 is usual)")
    explained = yield from explain_job(inputs, options)
    heatmap, handle = explained.heatmap, inputs.handle
    x, y = heatmap.peak()
    return replace(
        draw(explained, options),
        report={"method": options.method, "target": {"index": heatmap.target, "label": handle.label(heatmap.target)},
                "score": heatmap.score, "peak": [x, y], "saturates_at": heatmap.scale(options.clip),
                "peak_image": image_point(handle.preprocessing, inputs.image.image.size, x, y),
                "layer": heatmap.layer, "why_not": options.why_not,
                **{name: getattr(options, name) for name in method_options(options.method, options)}, **_info(heatmap)},
        side={"map": npy_bytes(heatmap.map)},
    )


def _info(heatmap: Heatmap) -> dict:
    """What the method reports besides the map (LRP: the relevance sum and the logit it conserves)."""
    return {key: heatmap.info[key] for key in ("relevance_sum", "logit") if key in heatmap.info}


def _add_flags(parser) -> None:
    from cnnexplorer.core.attribution import METHODS
    from cnnexplorer.core.attribution.lrp import COMPOSITES
    from cnnexplorer.pictures.flags import suffix

    parser.add_argument("--method", choices=METHODS, default="gradcam", help="heatmap: method (default gradcam)")
    parser.add_argument("--why-not", action="store_true", help="heatmap, concepts: show the evidence against --target")
    parser.add_argument("--reduce", choices=list(REDUCTIONS), default="max",
                        help="heatmap: saliency, smoothgrad, guided, deconvnet: the colour channels' largest magnitude "
                             "(max, the default), signed average (mean), or all three as colours (rgb)")
    parser.add_argument("--composite", choices=COMPOSITES, default="epsilon-plus-flat",
                        help="heatmap --method lrp, concepts: LRP's rules (default epsilon-plus-flat; epsilon-gamma-box, "
                             "alpha2-beta1, or epsilon everywhere)")
    parser.add_argument("--alpha", type=float, default=0.7, metavar="A",
                        help="heatmap: opacity of the overlay, 0 to 1 (default 0.7)")
    parser.add_argument("--clip", type=float, default=1.0, metavar="P",
                        help="heatmap: the largest P %% of values saturate the colours (default 1; 0: scale to the maximum)")
    parser.add_argument("--map-only", action="store_true", help="heatmap: draw the map alone, not over the image")
    parser.add_argument("--save-map", type=suffix(".npy", "--save-map writes a NumPy file: give a name ending in .npy"), metavar="MAP.npy",
                        help="heatmap: also save the raw map (model-input pixels)")


def _from_flags(args) -> HeatmapOptions:
    return HeatmapOptions(args.method, args.target, args.why_not, args.alpha, args.cmap, args.clip, not args.map_only,
                          args.reduce, args.composite)


RECIPE = Recipe("heatmap", HeatmapOptions, make_heatmap, _add_flags, _from_flags, side_flags={"map": "save_map"})
