"""The side panel of the Activations view: one channel enlarged over the input image.

The channel's map is upsampled to the model's input size and drawn over the input as a
second image item whose opacity the slider sets, so moving the slider recomputes nothing.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from cnnexplorer.gui.remembered import remember

DEFAULT_OPACITY = 60
HINT = "Click a tile to see that channel over the input image."


class UnitPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.view = pg.GraphicsView(background="w")
        self.view_box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setCentralItem(self.view_box)
        self.base_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item = pg.ImageItem(axisOrder="row-major")
        for item in (self.base_item, self.heat_item):
            self.view_box.addItem(item)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(DEFAULT_OPACITY)
        self.opacity.setToolTip("Opacity of the channel over the input image")
        self.opacity.valueChanged.connect(lambda value: self.heat_item.setOpacity(value / 100))
        self.heat_item.setOpacity(DEFAULT_OPACITY / 100)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.slider_row = QWidget()
        slider_row = QHBoxLayout(self.slider_row)
        slider_row.setContentsMargins(0, 0, 0, 0)
        slider_row.addWidget(QLabel("Opacity"))
        slider_row.addWidget(self.opacity, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.slider_row)
        layout.addWidget(self.details)
        self.clear()
        remember(self, "opacity")

    def clear(self, text: str = HINT) -> None:
        """Show no channel, and ``text`` (by default how to choose one)."""
        self.title.setText(text)
        self.details.clear()
        self.slider_row.setEnabled(False)
        self.base_item.clear()
        self.heat_item.clear()

    def show_unit(self, title: str, details: str, base: np.ndarray | None, heat: np.ndarray | None) -> None:
        """``base``: the input image's pixels; ``heat``: the channel's RGB map at the same size
        (None for units without a spatial map, which get text only)."""
        self.title.setText(title)
        self.details.setText(details)
        self.base_item.clear()
        self.heat_item.clear()
        self.slider_row.setEnabled(base is not None and heat is not None)
        if base is None or heat is None:
            return
        self.base_item.setImage(base, autoLevels=False, levels=(0, 255))
        self.heat_item.setImage(heat, autoLevels=False, levels=(0, 255))
        height, width = base.shape[:2]
        self.view_box.setRange(xRange=(0, width), yRange=(0, height), padding=0.02)
