"""A picture's title and colour bar go below it: the picture keeps its pixels' places, a small
picture's strip is widened to its text, and the bar runs through the colour map end to end."""

from __future__ import annotations

import numpy as np

from cnnexplorer.core.colormaps import colormap_table
from cnnexplorer.core.colour_bar import MIN_WIDTH, Scale, colour_bar, with_colour_bar
from cnnexplorer.core.picture_style import MARGIN, PAPER, TITLE, pil_font


def test_the_strip_goes_below_and_widens_a_small_picture_to_its_title():
    picture = np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    title = "a title much wider than the small picture it belongs to, still readable"
    scale = Scale("jet", -2.0, 2.0, "units")
    out = with_colour_bar(picture, title, scale)
    assert out.shape[1] >= max(MIN_WIDTH, pil_font(TITLE).getlength(title) + 2 * MARGIN)
    np.testing.assert_array_equal(out[:40, :30], picture)  # picture pixel (x, y) stays at (x, y)
    assert (out[:40, 30:] == PAPER).all()
    np.testing.assert_array_equal(out[40:], colour_bar(title, scale, out.shape[1]))
    assert scale.labels() == ("-2", "0", "2")
    assert Scale("viridis", None, None, "per tile", ("lo", "hi")).labels() == ("lo", "", "hi")


def test_the_bar_runs_through_the_colour_map():
    strip = colour_bar("t", Scale("jet", 0.0, 1.0, "u"), 400)
    table = colormap_table("jet")
    row = strip[MARGIN + TITLE + MARGIN // 2 + 5, MARGIN:400 - MARGIN]
    assert row[0].tolist() == table[0].tolist() and row[-1].tolist() == table[255].tolist()
