"""Many small pictures tiled into one: the layout of a grid and its coloured, numbered picture.

Activation grids (one tile per channel) and filter pictures (one tile per kernel) share this.
Tiling is one pad, transpose and reshape for all tiles, and the channel numbers are put together
from digits drawn once with the pictures' font (at a size readable at 100 %) for all tiles at
once, so a 2048-channel grid costs no Python loop per tile and the exported pixels are
identical on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from cnnexplorer.core.colormaps import apply_colormap
from cnnexplorer.core.picture_style import SMALL, pil_font


@dataclass(frozen=True)
class GridLayout:
    """Where each tile sits: tile ``k`` (row-major) shows channel ``order[k]``.

    The grid is ``rows × cols`` tiles of ``tile_h × tile_w`` pixels with ``gap`` pixels between
    tiles (none after the last row or column).
    """

    order: np.ndarray
    rows: int
    cols: int
    tile_h: int
    tile_w: int
    gap: int = 1

    @classmethod
    def near_square(cls, order: np.ndarray, tile_h: int, tile_w: int, gap: int = 1) -> "GridLayout":
        """A layout as close to square in pixels as the tile count allows."""
        count = max(len(order), 1)
        cols = max(1, int(np.ceil(np.sqrt(count * (tile_h + gap) / (tile_w + gap)))))
        return cls(np.asarray(order), -(-count // cols), cols, tile_h, tile_w, gap)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows * (self.tile_h + self.gap) - self.gap, self.cols * (self.tile_w + self.gap) - self.gap)

    def scaled(self, factor: int) -> "GridLayout":
        """The same layout after every pixel became ``factor × factor`` pixels."""
        return GridLayout(self.order, self.rows, self.cols, self.tile_h * factor, self.tile_w * factor, self.gap * factor)

    def tile(self, stack: np.ndarray, fill) -> np.ndarray:
        """Tiles ``stack`` (``[n, tile_h, tile_w, …]``, in display order) into one array, ``fill``
        in gaps and empty slots: one pad, one transpose, one reshape, no loop per tile."""
        pitch_h, pitch_w = self.tile_h + self.gap, self.tile_w + self.gap
        extra = stack.shape[3:]
        slots = np.full((self.rows * self.cols, pitch_h, pitch_w, *extra), fill, dtype=stack.dtype)
        slots[: len(stack), : self.tile_h, : self.tile_w] = stack
        grid = slots.reshape(self.rows, self.cols, pitch_h, pitch_w, *extra).swapaxes(1, 2)
        height, width = self.shape
        return np.ascontiguousarray(grid.reshape(self.rows * pitch_h, self.cols * pitch_w, *extra)[:height, :width])

    def tile_index_at(self, x: float, y: float) -> int | None:
        """The channel whose tile covers pixel ``(x, y)``, or None for gaps and empty slots."""
        if x < 0 or y < 0:
            return None
        col, in_x = divmod(int(x), self.tile_w + self.gap)
        row, in_y = divmod(int(y), self.tile_h + self.gap)
        slot = row * self.cols + col
        if in_x >= self.tile_w or in_y >= self.tile_h or col >= self.cols or slot >= len(self.order):
            return None
        return int(self.order[slot])

    def tile_origin(self, channel: int) -> tuple[int, int] | None:
        """Top-left pixel ``(x, y)`` of ``channel``'s tile, or None if it is not shown."""
        slots = np.flatnonzero(self.order == channel)
        if not slots.size:
            return None
        row, col = divmod(int(slots[0]), self.cols)
        return col * (self.tile_w + self.gap), row * (self.tile_h + self.gap)


BACKGROUND = np.array([48, 48, 48], dtype=np.uint8)
LABEL_PAD = 2
"""Pixels of dark box around a tile's number."""


@lru_cache(maxsize=1)
def digit_glyphs() -> np.ndarray:
    """``[11, h, w]`` masks of the digits 0–9 and a blank (index 10), drawn once with the pictures'
    font at the readable ``SMALL`` size (its digits all have one width), so numbers read at 100 %."""
    font = pil_font(SMALL)
    _, top, _, bottom = font.getbbox("0123456789")
    width = int(font.getlength("0"))
    glyphs = np.zeros((11, bottom - top, width), dtype=bool)
    for digit in range(10):
        image = Image.new("L", (width, bottom - top), 0)
        ImageDraw.Draw(image).text((0, -top), str(digit), font=font, fill=255)
        glyphs[digit] = np.asarray(image) >= 128
    return glyphs


def label_stack(numbers: np.ndarray) -> np.ndarray:
    """``[n, h, w]`` uint8 labels: 2 on digit pixels, 1 on the box behind them, for each number.

    Built for all numbers at once (digits by integer division) from ``digit_glyphs``.
    """
    glyphs = digit_glyphs()
    _, glyph_h, glyph_w = glyphs.shape
    numbers = np.asarray(numbers, dtype=np.int64)
    width = len(str(int(numbers.max()))) if numbers.size else 1
    powers = 10 ** np.arange(width - 1, -1, -1)
    digits = (numbers[:, None] // powers) % 10
    digits = np.where((numbers[:, None] < powers) & (powers > 1), 10, digits)
    order = np.argsort(digits == 10, axis=1, kind="stable")
    digits = np.take_along_axis(digits, order, axis=1)
    text = glyphs[digits].transpose(0, 2, 1, 3).reshape(len(numbers), glyph_h, width * glyph_w)
    labels = np.pad(text.astype(np.uint8) + 1, ((0, 0), (LABEL_PAD, LABEL_PAD), (LABEL_PAD, LABEL_PAD)),
                    constant_values=1)
    ndigits = (digits != 10).sum(axis=1)
    labels *= (np.arange(labels.shape[2]) < glyph_w * ndigits[:, None] + 2 * LABEL_PAD)[:, None, :]
    return labels


def grid_picture(values: np.ndarray, layout: GridLayout, cmap: str | None, *, min_tile: int = 32,
                 labels: bool = True) -> tuple[np.ndarray, GridLayout]:
    """Colour a tiled float image (``cmap`` None: values are already RGB in [0,1]), enlarge it
    by a whole factor so tiles are at least ``min_tile`` pixels, and, with ``labels``, so large
    that each tile's channel number, written at the readable size in its top-left corner, takes
    at most half its height. Returns the RGB picture and its layout."""
    if cmap is None:
        rgb = np.round(np.nan_to_num(np.clip(values, 0, 1), nan=0.0) * 255).astype(np.uint8)
    else:
        rgb = apply_colormap(values, cmap)
    count = len(layout.order)
    inside = layout.tile(np.ones((count, layout.tile_h, layout.tile_w), dtype=bool), False)
    rgb[~inside] = BACKGROUND
    marks = label_stack(layout.order) if labels and count else None
    factor = max(1, -(-min_tile // max(layout.tile_h, layout.tile_w)))
    if marks is not None:
        factor = max(factor, -(-marks.shape[2] // layout.tile_w), -(-2 * marks.shape[1] // layout.tile_h))
    rgb = rgb.repeat(factor, axis=0).repeat(factor, axis=1)
    layout = layout.scaled(factor)
    if marks is not None:
        slots = np.zeros((count, layout.tile_h, layout.tile_w), dtype=np.uint8)
        slots[:, : marks.shape[1], : marks.shape[2]] = marks
        code = layout.tile(slots, 0)
        rgb[code == 1] //= 3
        rgb[code == 2] = 255
    return rgb, layout
