"""A plot legend that stays readable over what the plot draws.

pyqtgraph's default legend has no background and sits beneath the plot's items: points or curves
under it hide its names. Every legend in the app is made here, framed on white: above the data in a
corner of the plot (``readable_legend``), or, for a plot whose data may fill every corner (the
dataset map), in a column of its own beside it (``legend_beside``).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSizePolicy

BACKGROUND = (255, 255, 255, 225)
FRAME = (190, 190, 190)
TEXT = (40, 40, 40)
ABOVE_DATA = 1e7  # z value: over every plot item, under the hover labels (1e8)


def readable_legend(plot: pg.PlotWidget | pg.PlotItem, offset: tuple[float, float] = (5, 5)) -> pg.LegendItem:
    """Add ``plot``'s legend at ``offset`` (negative: from the right or bottom edge)."""
    legend = plot.addLegend(offset=offset, brush=pg.mkBrush(*BACKGROUND), pen=pg.mkPen(*FRAME), labelTextColor=TEXT)
    legend.setZValue(ABOVE_DATA)
    return legend


def legend_beside(plot: pg.PlotWidget) -> pg.LegendItem:
    """A legend in a column of its own right of ``plot``'s view and axes, where it never covers the data."""
    legend = pg.LegendItem(brush=pg.mkBrush(*BACKGROUND), pen=pg.mkPen(*FRAME), labelTextColor=TEXT)
    legend.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)  # its own size, not the row's height
    layout = plot.getPlotItem().layout
    layout.addItem(legend, 2, 3)
    layout.setAlignment(legend, Qt.AlignmentFlag.AlignTop)
    return legend
