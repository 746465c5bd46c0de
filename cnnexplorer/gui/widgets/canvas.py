"""A zoomable picture: a pyqtgraph ImageItem in a ViewBox with locked aspect, y down."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QWidget


class ImageCanvas(pg.GraphicsView):
    """Shows uint8 pixels (row-major, H×W or H×W×3) as they are: fixed levels 0–255.

    ``fit="all"`` shows the whole picture (for small model inputs and activations).
    ``fit="width"`` is for pictures of text such as tables: at most 1:1, top first. Pixels are
    sharp squares when enlarged and smoothed when shrunk, by the fit or by zooming, so that the
    thin strokes of text and tile numbers blend instead of dropping out.
    """

    def __init__(self, parent: QWidget | None = None, fit: str = "all"):
        super().__init__(parent, background="w")
        self.fit = fit
        self.view_box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.setCentralItem(self.view_box)
        self.view_box.sigRangeChanged.connect(self._smooth_when_shrunk)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)

    def set_pixels(self, pixels: np.ndarray) -> None:
        self.image_item.setImage(pixels, autoLevels=False, levels=(0, 255))
        self.fit_view()

    def clear(self) -> None:
        self.image_item.clear()

    def left_click_point(self, event) -> QPointF | None:
        """The picture pixel (x right, y down) under a left click on the scene (``sigMouseClicked``); None for
        another button."""
        if event.button() != Qt.MouseButton.LeftButton:
            return None
        return self.view_box.mapSceneToView(event.scenePos())

    def fit_view(self) -> None:
        image = getattr(self, "image_item", None)  # pyqtgraph resizes during its own __init__
        if image is None or image.image is None:
            return
        height, width = image.image.shape[:2]
        if self.fit == "width":
            view_width, view_height = max(1.0, self.view_box.width()), max(1.0, self.view_box.height())
            shown = max(width, view_width)
            left = (width - shown) / 2
            self.view_box.setRange(xRange=(left, left + shown), yRange=(0, shown * view_height / view_width),
                                   padding=0)
        else:
            self.view_box.setRange(xRange=(0, width), yRange=(0, height), padding=0.02)

    def _smooth_when_shrunk(self) -> None:
        (left, right), _ = self.view_box.viewRange()
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, right - left > self.view_box.width() + 0.5)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.fit_view()
