"""The Heatmaps tab's extra panels: maps of one image in a grid of large, labelled tiles, each
set one job (the chosen methods, the top classes, the model-randomisation sanity check), drawn
with the main picture's opacity, clipping and colours so changing them redraws the tiles too.

Each tile is the original image (scaled to ``TILE`` pixels on its long side) with its map over
it; ``TileGrid.tile_at`` maps a click on the picture back to its map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cnnexplorer.core.jobs import Job
from cnnexplorer.pictures.base import Inputs
from cnnexplorer.pictures.heatmap import HeatmapOptions, method_options, model_box, target_class

if TYPE_CHECKING:
    from torch import Tensor

    from cnnexplorer.core.attribution import Heatmap, SanityResult

TILE = 256
"""Pixels on a tile's long side."""
COLUMNS = 4
SPACER = 8
LABEL_HEIGHT = 26
"""Above each tile: its label at the pictures' ``BODY`` size."""


@dataclass(frozen=True)
class Panels:
    """Maps of one model input with their tiles' labels, in reading order; the original image
    and the part of it the model saw; ``caption`` says what they show."""

    pixels: Tensor
    maps: tuple[tuple[str, Heatmap], ...]
    labels: tuple[str, ...]
    caption: str
    image: np.ndarray
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class TileGrid:
    """The drawn panels: ``pixels``, and where each tile (with its label above it) lies."""

    pixels: np.ndarray
    count: int
    cell: tuple[int, int]  # width, height of one tile with its label

    def tile_at(self, x: float, y: float) -> int | None:
        """The index of the tile (or its label) under picture pixel ``(x, y)``, or None."""
        width, height = self.cell
        column, row = int(x // (width + SPACER)), int(y // (height + SPACER))
        inside = 0 <= x and 0 <= y and x - column * (width + SPACER) < width and y - row * (height + SPACER) < height
        index = row * COLUMNS + column
        return index if inside and column < COLUMNS and index < self.count else None


def _model_view(inputs: Inputs) -> tuple[Tensor, np.ndarray, tuple[float, float, float, float]]:
    """The model input, the original image and the part of it the model saw."""
    image = inputs.need_image("heatmap")
    return (inputs.handle.pixels(image), np.asarray(image.image.convert("RGB")),
            model_box(inputs.handle.preprocessing, image.image.size))


def compare_job(inputs: Inputs, options: HeatmapOptions, methods: list[str]) -> Job[Panels]:
    """``methods`` for the options' target ("why not" included); ``inputs.layer`` for the CAM ones."""
    from cnnexplorer.core.attribution import METHODS, comparison_job

    handle, (pixels, image, box) = inputs.handle, _model_view(inputs)
    maps = yield from comparison_job(handle, pixels, methods, target_class(handle, options), inputs.layer,
                                     options.why_not)
    labels = tuple(METHODS[n].title for n in maps)
    return Panels(pixels, tuple(maps.items()), labels, "methods compared: click a tile to show it above",
                  image, box)


def top_classes_job(inputs: Inputs, options: HeatmapOptions, k: int = 3) -> Job[Panels]:
    """The options' method for each of the ``k`` most probable classes."""
    from cnnexplorer.core.attribution import top_classes_job as maps_job

    handle, (pixels, image, box) = inputs.handle, _model_view(inputs)
    maps = yield from maps_job(handle, pixels, options.method, k, inputs.layer, **method_options(options.method, options))
    labels = tuple(f"{handle.label(m.target)} (p = {m.score:.3f})" for m in maps)
    return Panels(pixels, tuple((handle.label(m.target), m) for m in maps), labels,
                  f"the top {len(maps)} classes: click a tile to make it the target", image, box)


def sanity_job(inputs: Inputs, options: HeatmapOptions) -> Job[tuple[Panels, SanityResult]]:
    """Cascading randomisation from the top (Adebayo et al. 2018) of the options' method: the
    original map, then each stage's, with its rank correlation to the original."""
    from cnnexplorer.core.attribution import sanity_job as check_job

    handle, (pixels, image, box) = inputs.handle, _model_view(inputs)
    result = yield from check_job(handle, pixels, options.method, target_class(handle, options), inputs.layer,
                                  **method_options(options.method, options))
    maps = (("original", result.original), *((s.layer, s.heatmap) for s in result.stages))
    labels = ("original", *(f"down to {s.layer}: rho = {s.correlation:.2f}" for s in result.stages))
    steps = " · ".join(f"down to {s.layer}: ρ = {s.correlation:.2f}" for s in result.stages)
    return Panels(pixels, maps, labels, f"original, then randomised from the top — rank correlation {steps}",
                  image, box), result


def _tile_background(panels: Panels) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The original image scaled to ``TILE`` on its long side, and the model's box in it."""
    from PIL import Image

    height, width = panels.image.shape[:2]
    factor = TILE / max(width, height)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    scaled = np.asarray(Image.fromarray(panels.image).resize(size, Image.Resampling.BILINEAR))
    fx, fy = size[0] / width, size[1] / height
    left, top, right, bottom = panels.box
    return scaled, (left * fx, top * fy, right * fx, bottom * fy)


def draw_panels(panels: Panels, options: HeatmapOptions) -> TileGrid:
    """Every map over the image (or alone), as the main picture is drawn, in labelled tiles."""
    from PIL import Image, ImageDraw

    from cnnexplorer.core.attribution import default_cmap, render_heatmap
    from cnnexplorer.core.picture_style import BODY, INK, PAPER, fit_text, pil_font

    background, box = _tile_background(panels)
    tile_h, tile_w = background.shape[:2]
    cell = (max(tile_w, TILE), LABEL_HEIGHT + tile_h)
    count = len(panels.maps)
    columns, rows = min(count, COLUMNS), -(-count // COLUMNS)
    sheet = Image.new("RGB", (columns * cell[0] + (columns - 1) * SPACER, rows * cell[1] + (rows - 1) * SPACER), PAPER)
    draw, font = ImageDraw.Draw(sheet), pil_font(BODY)
    for index, ((_, heatmap), label) in enumerate(zip(panels.maps, panels.labels)):
        left, top = (index % COLUMNS) * (cell[0] + SPACER), (index // COLUMNS) * (cell[1] + SPACER)
        tile = render_heatmap(panels.pixels, heatmap, options.alpha, options.cmap or default_cmap(heatmap),
                              options.clip, background=background, box=box, overlay=options.overlay)
        draw.text((left + 2, top + 4), fit_text(label.replace("×", "x"), font, cell[0] - 4), fill=INK, font=font)
        sheet.paste(Image.fromarray(tile), (left, top + LABEL_HEIGHT))
    return TileGrid(np.asarray(sheet), count, cell)
