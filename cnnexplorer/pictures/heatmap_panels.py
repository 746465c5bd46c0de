"""The Heatmaps tab's extra panels: maps of one image side by side, each set one job (the
chosen methods, the top classes, the model-randomisation sanity check), drawn with the main
picture's overlay so a new opacity or colour map redraws them too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cnnexplorer.core.jobs import Job
from cnnexplorer.pictures.base import Inputs
from cnnexplorer.pictures.heatmap import HeatmapOptions, target_class

if TYPE_CHECKING:
    from torch import Tensor

    from cnnexplorer.core.attribution import Heatmap, SanityResult

SPACER = 4


@dataclass(frozen=True)
class Panels:
    """Maps of one model input with their names, left to right; ``caption`` says what they show."""

    pixels: Tensor
    maps: tuple[tuple[str, Heatmap], ...]
    caption: str


def _pixels(inputs: Inputs) -> Tensor:
    return inputs.handle.pixels(inputs.need_image("heatmap"))


def compare_job(inputs: Inputs, options: HeatmapOptions, methods: list[str]) -> Job[Panels]:
    """``methods`` for the options' target ("why not" included); ``inputs.layer`` for the CAM ones."""
    from cnnexplorer.core.attribution import METHODS, comparison_job

    handle, pixels = inputs.handle, _pixels(inputs)
    maps = yield from comparison_job(handle, pixels, methods, target_class(handle, options), inputs.layer,
                                     options.why_not)
    return Panels(pixels, tuple(maps.items()), "left to right: " + " · ".join(METHODS[n].title for n in maps))


def top_classes_job(inputs: Inputs, options: HeatmapOptions, k: int = 3) -> Job[Panels]:
    """The options' method for each of the ``k`` most probable classes."""
    from cnnexplorer.core.attribution import top_classes_job as maps_job

    handle, pixels = inputs.handle, _pixels(inputs)
    maps = yield from maps_job(handle, pixels, options.method, k, inputs.layer)
    return Panels(pixels, tuple((handle.label(m.target), m) for m in maps),
                  "left to right: " + " · ".join(f"{handle.label(m.target)} (p = {m.score:.3f})" for m in maps))


def sanity_job(inputs: Inputs, options: HeatmapOptions) -> Job[tuple[Panels, SanityResult]]:
    """Cascading randomisation from the top (Adebayo et al. 2018) of the options' method: the
    original map, then each stage's, with its rank correlation to the original."""
    from cnnexplorer.core.attribution import sanity_job as check_job

    handle, pixels = inputs.handle, _pixels(inputs)
    result = yield from check_job(handle, pixels, options.method, target_class(handle, options), inputs.layer)
    steps = " · ".join(f"down to {s.layer}: ρ = {s.correlation:.2f}" for s in result.stages)
    maps = (("original", result.original), *((s.layer, s.heatmap) for s in result.stages))
    return Panels(pixels, maps, f"original, then randomised from the top — rank correlation {steps}"), result


def side_by_side(pictures: list[np.ndarray]) -> np.ndarray:
    """Pictures of equal height in one row, with white spacers."""
    parts = []
    for picture in pictures:
        if parts:
            parts.append(np.full((picture.shape[0], SPACER, 3), 255, np.uint8))
        parts.append(picture)
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def draw_panels(panels: Panels, alpha: float, cmap: str | None) -> np.ndarray:
    """Every map over the image (``cmap`` None: each method's own), side by side."""
    from cnnexplorer.core.attribution import default_cmap, render_heatmap

    return side_by_side([render_heatmap(panels.pixels, h, alpha, cmap or default_cmap(h)) for _, h in panels.maps])
