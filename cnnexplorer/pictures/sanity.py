"""The model-randomisation sanity check (Adebayo et al. 2018) as a picture: the map of one image,
then its maps as the model's layers are re-initialised from the top (on a copy of the model),
each with its Spearman rank correlation to the original. A map that explains the model changes.

The options are the heatmap's (``--method``, ``--target``, ``--alpha``, ``--clip``, ``--cmap``,
``--map-only``): ``export sanity --image IMG --method gradcam``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of
from cnnexplorer.pictures.heatmap import HeatmapOptions

if TYPE_CHECKING:
    import numpy as np


def make_sanity(inputs: Inputs, options: HeatmapOptions) -> Job[Picture]:
    from cnnexplorer.pictures.heatmap_panels import draw_panels, sanity_job

    panels, result = yield from sanity_job(inputs, options)
    grid = draw_panels(panels, options)
    original = result.original
    report = {"method": original.method, "target": original.target, "layer": original.layer,
              "stages": [{"layer": s.layer, "randomised": s.randomised, "correlation": s.correlation}
                         for s in result.stages]}
    shown = replace(options, method=original.method, target=original.target)
    caption = (f"{original.method} of '{inputs.handle.label(original.target)}', then with the layers re-initialised "
               "from the top; rho: rank correlation with the original map")
    return Picture(with_caption(grid.pixels, caption), settings=settings_of(shown),
                   report=report, layer=original.layer)


def with_caption(pixels: np.ndarray, caption: str) -> np.ndarray:
    """``pixels`` with one line of text below them."""
    import numpy as np
    from PIL import Image, ImageDraw

    from cnnexplorer.core.picture_style import BODY, INK, MARGIN, PAPER, fit_text, pil_font

    font = pil_font(BODY)
    height, width = pixels.shape[:2]
    sheet = Image.new("RGB", (width, height + 2 * MARGIN + BODY), PAPER)
    sheet.paste(Image.fromarray(pixels), (0, 0))
    ImageDraw.Draw(sheet).text((MARGIN // 2, height + MARGIN), fit_text(caption, font, width - MARGIN), fill=INK,
                               font=font)
    return np.asarray(sheet)


def _from_flags(args) -> HeatmapOptions:
    return HeatmapOptions(args.method, args.target, args.why_not, args.alpha, args.cmap, args.clip, not args.map_only)


RECIPE = Recipe("sanity", HeatmapOptions, make_sanity, from_flags=_from_flags)
