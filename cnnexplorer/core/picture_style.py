"""The look every rendered picture shares: paper, ink and muted colours, margins and the font.

PIL's bundled FreeType font (``ImageFont.load_default(size=...)``) draws text identically on every
machine, which a Qt painter with system fonts would not; it has no "×" or en dash, so pictures
write "x" and "-".

Text sizes are defined here once, in pixels, so that every picture is readable at 100 % zoom on
screen and in its exported PNG: a capital letter or digit is at least ``MIN_CAP_HEIGHT`` pixels
tall at ``SMALL`` and above. Pictures too small for text at these sizes lay it out beside or
below themselves, or are enlarged, rather than shrinking the text.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import ImageFont

PAPER = (255, 255, 255)
INK = (25, 28, 33)
MUTED = (95, 102, 112)
RULE = (170, 178, 190)
MARGIN = 12

SMALL = 14
"""Secondary text: axis numbers, tile labels, channel numbers."""
BODY = 15
"""Table cells, captions, predictions."""
TITLE = 18
"""A picture's title line."""
MIN_CAP_HEIGHT = 10
"""The height in pixels of a capital letter or digit at ``SMALL``, the smallest size pictures use."""


@lru_cache(maxsize=8)
def pil_font(size: int) -> ImageFont.FreeTypeFont:
    """The pictures' font at ``size`` pixels (cached: loading it takes milliseconds)."""
    return ImageFont.load_default(size=size)


def fit_text(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """``text``, cut and ended with ".." where needed, so that it is at most ``width`` pixels wide."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "..") > width:
        text = text[:-1]
    return text + ".."
