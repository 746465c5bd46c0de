"""A picture's title and colour bar, drawn under it, so an exported PNG can be read on its own.

The strip goes below the picture (and the picture is padded on the right when the strip is
wider), so picture pixel ``(x, y)`` stays where it was: clicks on grids still map through their
layout unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from cnnexplorer.core.colormaps import colormap_table
from cnnexplorer.core.picture_style import INK, MARGIN, MUTED, PAPER, SMALL, TITLE, pil_font

BAR_HEIGHT = 14
MIN_WIDTH = 360


@dataclass(frozen=True)
class Scale:
    """What the colours mean: the colour map, the values at its ends (``None``: each part of the
    picture scaled on its own, as ``ends`` says), and the units in words."""

    cmap: str
    low: float | None
    high: float | None
    unit: str
    ends: tuple[str, str] = ("", "")

    def labels(self) -> tuple[str, str, str]:
        if self.low is None or self.high is None:
            return self.ends[0], "", self.ends[1]
        return f"{self.low:.3g}", f"{(self.low + self.high) / 2:.3g}", f"{self.high:.3g}"


def colour_bar(title: str, scale: Scale, width: int) -> np.ndarray:
    """``width``-wide strip: the title, the colour bar, its end and middle values, the units."""
    title_font, label_font = pil_font(TITLE), pil_font(SMALL)
    bar_top = MARGIN + TITLE + MARGIN // 2
    labels_top = bar_top + BAR_HEIGHT + 3
    height = labels_top + 2 * (SMALL + 4) + MARGIN // 2
    strip = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(strip)
    draw.text((MARGIN, MARGIN), title, fill=INK, font=title_font)
    bar_width = width - 2 * MARGIN
    table = colormap_table(scale.cmap)
    ramp = table[np.linspace(0, 255, bar_width).round().astype(int)]
    strip.paste(Image.fromarray(np.ascontiguousarray(np.repeat(ramp[None], BAR_HEIGHT, axis=0))), (MARGIN, bar_top))
    draw.rectangle((MARGIN - 1, bar_top - 1, MARGIN + bar_width, bar_top + BAR_HEIGHT), outline=MUTED)
    low, mid, high = scale.labels()
    draw.text((MARGIN, labels_top), low, fill=INK, font=label_font)
    draw.text((width // 2, labels_top), mid, fill=INK, font=label_font, anchor="ma")
    draw.text((width - MARGIN, labels_top), high, fill=INK, font=label_font, anchor="ra")
    draw.text((width // 2, labels_top + SMALL + 4), scale.unit, fill=MUTED, font=label_font, anchor="ma")
    return np.asarray(strip)


def with_colour_bar(picture: np.ndarray, title: str, scale: Scale) -> np.ndarray:
    """``picture`` with its title and colour bar below it (at least ``MIN_WIDTH`` wide, so the
    text of a small picture stays readable, and as wide as its text)."""
    text = max(pil_font(TITLE).getlength(title), pil_font(SMALL).getlength(scale.unit))
    width = max(picture.shape[1], MIN_WIDTH, int(text) + 2 * MARGIN + 1)
    strip = colour_bar(title, scale, width)
    out = np.full((picture.shape[0] + strip.shape[0], width, 3), PAPER, np.uint8)
    out[:picture.shape[0], :picture.shape[1]] = picture
    out[picture.shape[0]:] = strip
    return out
