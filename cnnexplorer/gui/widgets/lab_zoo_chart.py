"""The zoo as Canziani et al. (2017) drew it: top-1 accuracy against GMACs (log scale), each model a
bubble whose area grows with its parameter count, so the cost of a point of accuracy shows at a glance.

Only models with both figures appear (timm's record neither). A click on a bubble chooses it
(``chosen``, its spec), a double click opens it (``opened``), as the table does.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget

from cnnexplorer.core.zoo import ZooEntry

SIZE_RANGE = (6.0, 46.0)
"""Bubble diameters in pixels, smallest and largest model; the area is proportional to the parameters."""
FILL = QColor(70, 120, 180, 110)
CACHED_FILL = QColor(230, 140, 30, 150)
CHOSEN_PEN = pg.mkPen(QColor(200, 30, 30), width=2.5)


def charted(entries: list[ZooEntry]) -> list[ZooEntry]:
    """The entries the chart can place: those with both GMACs and top-1 accuracy."""
    return [e for e in entries if e.gmacs and e.acc1 is not None]


def bubble_sizes(params: np.ndarray) -> np.ndarray:
    """Diameters whose squares are proportional to ``params``, clipped to ``SIZE_RANGE``."""
    if not len(params):
        return params
    diameters = SIZE_RANGE[1] * np.sqrt(params / params.max())
    return np.clip(diameters, *SIZE_RANGE)


class ZooChart(QWidget):
    chosen = Signal(str)
    opened = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "GMACs (multiply-adds per 224×224 image, log scale)")
        self.plot.setLabel("left", "ImageNet top-1 accuracy (%)")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.scatter = pg.ScatterPlotItem(hoverable=True, tip=None)
        self.scatter.sigClicked.connect(self._on_click)
        self.scatter.sigHovered.connect(self._on_hover)
        self.plot.addItem(self.scatter)
        self.label = pg.TextItem(color="k", anchor=(0, 1))
        self.plot.addItem(self.label)
        self.caption = QLabel(" ")
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.caption)
        self.given: list[ZooEntry] = []
        self.entries: list[ZooEntry] = []
        self.spec: str | None = None
        self._last_click: tuple[str, float] | None = None

    def set_entries(self, entries: list[ZooEntry]) -> None:
        """Show ``entries`` that have both figures; the chosen one stays marked if it is among them."""
        self.given, self.entries = entries, charted(entries)
        sizes = bubble_sizes(np.array([e.params for e in self.entries], dtype=float))
        spots = [dict(pos=(math.log10(e.gmacs), e.acc1), size=float(size), data=e.spec,
                      brush=CACHED_FILL if e.cached else FILL,
                      pen=CHOSEN_PEN if e.spec == self.spec else pg.mkPen(QColor(40, 40, 40, 160)))
                 for e, size in zip(self.entries, sizes)]
        self.scatter.setData(spots)
        hidden = len(entries) - len(self.entries)
        self.caption.setText(f"{len(self.entries)} models · bubble area ∝ parameters · orange: weights cached"
                             + (f" · {hidden} without accuracy or GMACs not drawn" if hidden else "")
                             + " · click a bubble to choose it, double-click to open")
        self._label(self.spec)

    def choose(self, spec: str | None) -> None:
        """Mark ``spec``'s bubble (the table's current row) and name it."""
        if spec != self.spec:
            self.spec = spec
            self.set_entries(self.given)  # redraw the pens
        self._label(spec)

    def _entry(self, spec: str | None) -> ZooEntry | None:
        return next((e for e in self.entries if e.spec == spec), None)

    def _label(self, spec: str | None) -> None:
        entry = self._entry(spec)
        if entry is None:
            self.label.setText("")
            return
        self.label.setText(f"{entry.arch}: {entry.acc1:.1f} %, {entry.gmacs:.2f} GMACs, {entry.params / 1e6:.1f} M")
        self.label.setPos(math.log10(entry.gmacs), entry.acc1)

    def _on_click(self, _item, points, event) -> None:
        """A second click on the same bubble within the double-click interval opens it (pyqtgraph reports
        a double click as a plain click or as a double one, depending on who grabbed the first press)."""
        if not len(points):
            return
        spec, now = points[0].data(), time.monotonic()
        last, self._last_click = self._last_click, (spec, now)
        if event.double() or (last is not None and last[0] == spec
                              and now - last[1] < QApplication.doubleClickInterval() / 1000):
            self._last_click = None
            self.opened.emit(spec)
        else:
            self.chosen.emit(spec)
            self.choose(spec)

    def _on_hover(self, _item, points, _event) -> None:
        entry = self._entry(points[0].data()) if len(points) else None
        self.plot.setToolTip("" if entry is None else
                             f"{entry.arch} ({entry.library})\ntop-1 {entry.acc1:.2f} % · {entry.gmacs:.2f} GMACs · "
                             f"{entry.params / 1e6:.1f} M parameters"
                             + ("" if entry.depth is None else f" · {entry.depth} weight layers deep"))
