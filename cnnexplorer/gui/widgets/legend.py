"""A plot legend that stays readable over what the plot draws.

pyqtgraph's default legend has no background and sits beneath the plot's items: points or curves
under it hide its names. Every legend in the app is made here, framed on white, above the data.
"""

from __future__ import annotations

import pyqtgraph as pg

BACKGROUND = (255, 255, 255, 225)
FRAME = (190, 190, 190)
TEXT = (40, 40, 40)
ABOVE_DATA = 1e7  # z value: over every plot item, under the hover labels (1e8)


def readable_legend(plot: pg.PlotWidget | pg.PlotItem, offset: tuple[float, float] = (5, 5)) -> pg.LegendItem:
    """Add ``plot``'s legend at ``offset`` (negative: from the right or bottom edge)."""
    legend = plot.addLegend(offset=offset, brush=pg.mkBrush(*BACKGROUND), pen=pg.mkPen(*FRAME), labelTextColor=TEXT)
    legend.setZValue(ABOVE_DATA)
    return legend
