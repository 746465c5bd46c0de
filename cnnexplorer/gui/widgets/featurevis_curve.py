"""The objective curve of one visualised image: its value at every optimisation step."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

COLOUR = (31, 119, 180)


class ObjectiveCurve(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background="w")
        self.setMinimumSize(220, 160)
        self.setLabel("bottom", "step")
        self.setLabel("left", "objective")
        self.getAxis("left").enableAutoSIPrefix(False)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.getPlotItem().setMenuEnabled(False)
        self.curve = self.plot([], [], pen=pg.mkPen(COLOUR, width=2))
        self.curve.setDownsampling(auto=True, method="peak")

    def set_values(self, values: np.ndarray, title: str = "") -> None:
        """Show ``values[s]`` (the value after step ``s + 1``)."""
        values = np.asarray(values, dtype=np.float64)
        self.curve.setData(np.arange(1, len(values) + 1), values)
        self.setTitle(title, size="9pt")

    def clear_values(self) -> None:
        self.set_values(np.zeros(0))
