"""Many small pictures tiled into one: the layout of a grid and its coloured, numbered picture.

Activation grids (one tile per channel) and filter pictures (one tile per kernel) share this.
Tiling is one pad, transpose and reshape for all tiles, and the channel numbers are drawn from
built-in bitmaps for all tiles at once, so a 2048-channel grid costs no Python loop per tile
and the exported pixels are identical on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnexplorer.core.colormaps import apply_colormap


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
_GLYPHS = np.array(
    [[[c == "1" for c in row] for row in glyph.split()] for glyph in (
        "111 101 101 101 111", "010 110 010 010 111", "111 001 111 100 111", "111 001 111 001 111",
        "101 101 111 001 001", "111 100 111 001 111", "111 100 111 101 111", "111 001 001 001 001",
        "111 101 111 101 111", "111 101 111 001 111", "000 000 000 000 000")],
    dtype=bool,
)
"""3×5 bitmaps of the digits 0–9 and a blank (index 10): identical text on every machine."""


def label_stack(numbers: np.ndarray, size: int = 1) -> np.ndarray:
    """``[n, h, w]`` uint8 labels: 2 on digit pixels, 1 on the box behind them, for each number.

    Built for all numbers at once (digits by integer division), scaled ``size`` times.
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    width = len(str(int(numbers.max()))) if numbers.size else 1
    powers = 10 ** np.arange(width - 1, -1, -1)
    digits = (numbers[:, None] // powers) % 10
    digits = np.where((numbers[:, None] < powers) & (powers > 1), 10, digits)
    order = np.argsort(digits == 10, axis=1, kind="stable")
    digits = np.take_along_axis(digits, order, axis=1)
    glyphs = np.pad(_GLYPHS[digits], ((0, 0), (0, 0), (0, 0), (0, 1)))
    text = glyphs.transpose(0, 2, 1, 3).reshape(len(numbers), 5, width * 4)[:, :, :-1]
    labels = np.pad(text.astype(np.uint8) + 1, ((0, 0), (1, 1), (1, 1)), constant_values=1)
    ndigits = (digits != 10).sum(axis=1)
    labels *= (np.arange(labels.shape[2]) < 4 * ndigits[:, None] + 1)[:, None, :]
    return labels.repeat(size, axis=1).repeat(size, axis=2)


def grid_picture(values: np.ndarray, layout: GridLayout, cmap: str | None, *, min_tile: int = 32,
                 labels: bool = True) -> tuple[np.ndarray, GridLayout]:
    """Colour a tiled float image (``cmap`` None: values are already RGB in [0,1]), enlarge it
    by a whole factor so tiles are at least ``min_tile`` pixels, and write each tile's channel
    number in its top-left corner where it fits. Returns the RGB picture and its layout."""
    if cmap is None:
        rgb = np.round(np.nan_to_num(np.clip(values, 0, 1), nan=0.0) * 255).astype(np.uint8)
    else:
        rgb = apply_colormap(values, cmap)
    count = len(layout.order)
    inside = layout.tile(np.ones((count, layout.tile_h, layout.tile_w), dtype=bool), False)
    rgb[~inside] = BACKGROUND
    factor = max(1, -(-min_tile // max(layout.tile_h, layout.tile_w)))
    rgb = rgb.repeat(factor, axis=0).repeat(factor, axis=1)
    layout = layout.scaled(factor)
    if labels and count:
        marks = label_stack(layout.order, 2 if layout.tile_w >= 48 else 1)
        if marks.shape[1] <= layout.tile_h // 2 and marks.shape[2] <= layout.tile_w:
            slots = np.zeros((count, layout.tile_h, layout.tile_w), dtype=np.uint8)
            slots[:, : marks.shape[1], : marks.shape[2]] = marks
            code = layout.tile(slots, 0)
            rgb[code == 1] //= 3
            rgb[code == 2] = 255
    return rgb, layout
