"""The picture canvas: shrunk pictures are smoothed so text stays legible; enlarged pixels stay sharp."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QPainter

from cnnexplorer.gui.widgets.canvas import ImageCanvas


def smoothing_as_shown(qtbot) -> tuple[bool, bool, bool]:
    """Whether the canvas smooths a large picture fitted into it, a small one enlarged, and that one zoomed out."""
    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(300, 200)
    canvas.show()
    qtbot.waitExposed(canvas)
    smooth = lambda: bool(canvas.renderHints() & QPainter.RenderHint.SmoothPixmapTransform)  # noqa: E731
    canvas.set_pixels(np.zeros((400, 900, 3), np.uint8))
    shrunk = smooth()
    canvas.set_pixels(np.zeros((20, 30, 3), np.uint8))
    enlarged = smooth()
    canvas.view_box.scaleBy((40, 40))
    return shrunk, enlarged, smooth()


def test_shrunk_pictures_are_smoothed_and_enlarged_ones_stay_sharp(qtbot):
    assert smoothing_as_shown(qtbot) == (True, False, True), "(fitted 900 px picture, enlarged input, zoomed out)"
