"""The look every rendered picture shares: paper, ink and muted colours, margins and the font.

PIL's bundled FreeType font (``ImageFont.load_default(size=...)``) draws text identically on every
machine, which a Qt painter with system fonts would not; it has no "×" or en dash, so pictures
write "x" and "-".
"""

from __future__ import annotations

from functools import lru_cache

from PIL import ImageFont

PAPER = (255, 255, 255)
INK = (25, 28, 33)
MUTED = (95, 102, 112)
RULE = (170, 178, 190)
MARGIN = 12


@lru_cache(maxsize=8)
def pil_font(size: int) -> ImageFont.FreeTypeFont:
    """The pictures' font at ``size`` pixels (cached: loading it takes milliseconds)."""
    return ImageFont.load_default(size=size)
