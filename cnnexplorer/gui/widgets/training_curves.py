"""Live training curves: loss, accuracy and learning rate for several runs, each toggled on and off.

Metrics arrive much faster than a screen needs them, so they are only appended to each run's
``History`` and the plots are redrawn by a timer (10 Hz) and only when something changed. Each
redraw converts and smooths only the new points; curves use peak downsampling and clip-to-view,
so 100,000 points per run stay smooth, and each axis (which draws its grid across the plot) is
cached, so a new point repaints only the axes whose ticks moved. The legend says which line is
which (training per batch, smoothed, validation per epoch) in neutral colours, in a line above the
plots; the run list says which colour is which run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QGraphicsItem, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QSlider,
                               QSplitter, QVBoxLayout, QWidget)

from cnnexplorer.core.training.curves import CURVE_PANELS, CurvesOptions, History, Smoother
from cnnexplorer.gui.remembered import remember

X_AXES = {"step": ("step", "val_step"), "epoch": ("epoch", "val_epoch"), "time": ("time", "val_time")}
COLOURS = ("#2e68b0", "#d66028", "#2a9d5c", "#8e44ad", "#c0392b", "#16a0a0")


LEGEND = ("<span style='color:#b0b0b0'>━━</span> train, per batch &nbsp; <span style='color:#444'>━━</span> "
          "train, smoothed &nbsp; <span style='color:#444'>╺ ● ╸</span> validation, per epoch")


@dataclass
class Run:
    """One run's data and its curve items (raw, smoothed and validation, per panel)."""

    name: str
    colour: str
    history: History = field(default_factory=History)
    items: list = field(default_factory=list)
    dirty: bool = True
    visible: bool = True
    arrays: dict = field(default_factory=dict)  # column name → numpy copy of the history so far
    smoothers: dict = field(default_factory=dict)

    def sync(self, smoothing: float) -> None:
        """Bring ``arrays`` up to date with ``history``, converting and smoothing only new points."""
        for names in (("step", "epoch", "time", "loss", "acc", "lr"), ("val_step", "val_epoch", "val_time",
                                                                       "val_loss", "val_acc")):
            done = len(self.arrays.get(names[0], ()))
            count = len(getattr(self.history, names[0]))
            for name in names:
                new = np.asarray(getattr(self.history, name)[done:count], dtype=np.float64)
                self.arrays[name] = np.concatenate([self.arrays.get(name, np.empty(0)), new])
                if name in ("loss", "acc"):
                    smoother = self.smoothers.setdefault(name, Smoother(smoothing))
                    smoothed = self.arrays.get(f"{name}_smooth", np.empty(0))
                    self.arrays[f"{name}_smooth"] = np.concatenate([smoothed, smoother.extend(new)])

    def resmooth(self, smoothing: float) -> None:
        for name in ("loss", "acc"):
            self.smoothers[name] = Smoother(smoothing)
            self.arrays[f"{name}_smooth"] = self.smoothers[name].extend(self.arrays.get(name, np.empty(0)))


class CurvesPanel(QWidget):
    runs_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.runs: list[Run] = []
        self._options = CurvesOptions()
        self.x_axis = "step"
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.graphics.setToolTip("faint: per batch · bold: smoothed · dashed with dots: validation per epoch")
        self.plots = []
        for index, (_, _, title) in enumerate(CURVE_PANELS):  # two side by side, the next ones full width below
            row, column = (0, index) if index < 2 else (index - 1, 0)
            plot = self.graphics.addPlot(row=row, col=column, colspan=1 if index < 2 else 2, title=title)
            plot.showGrid(x=True, y=True, alpha=0.25)
            for side in ("left", "bottom"):  # the third, faintest grid level cost 60 % of every repaint
                axis = plot.getAxis(side)
                axis.setStyle(maxTickLevel=1)
                # An axis draws its grid across the plot, so every new point repainted all six axes, text and
                # lines, most of a repaint; cached, an axis whose ticks did not move is copied instead.
                axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
            self.plots.append(plot)
        self.graphics.ci.layout.setRowStretchFactor(0, 3)  # loss and accuracy matter more than the rate
        self.graphics.ci.layout.setRowStretchFactor(1, 2)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 99)
        self.slider.setValue(round(self._options.smoothing * 100))
        self.slider.setToolTip("Smoothing: TensorBoard's debiased exponential moving average of the batch curves")
        self.slider_label = QLabel()
        self.slider.valueChanged.connect(self._on_smoothing)
        self.axis_combo = QComboBox()
        self.axis_combo.addItems(list(X_AXES))
        self.axis_combo.setToolTip("x axis: optimisation step, epoch or wall time (seconds)")
        self.axis_combo.currentTextChanged.connect(self._on_axis)
        self.run_list = QListWidget()
        self.run_list.setMaximumHeight(90)
        self.run_list.itemChanged.connect(self._on_toggled)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Smoothing"))
        self.slider.setMinimumWidth(60)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.slider_label)
        controls.addSpacing(12)
        controls.addWidget(QLabel("x axis"))
        controls.addWidget(self.axis_combo)
        self.legend = QLabel(LEGEND)  # above the plots, wrapping when narrow: it covers no curve
        self.legend.setWordWrap(True)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.graphics)
        splitter.addWidget(self.run_list)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 0)
        splitter.setSizes([1000, 60])  # the plots take the height the run list does not need
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.legend)
        layout.addWidget(splitter, 1)
        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.redraw)
        self._on_smoothing(self.slider.value())
        remember(self, "slider", "axis_combo")

    def options(self) -> CurvesOptions:
        """How the curves are drawn, for an exported picture of them."""
        return self._options

    def add_run(self, name: str, history: History | None = None) -> Run:
        run = Run(name, COLOURS[len(self.runs) % len(COLOURS)], history or History())
        for plot, (key, val_key, _) in zip(self.plots, CURVE_PANELS):
            # per-batch curves are dense: antialiasing them costs ten times the paint time for no visible gain
            raw = plot.plot(pen=pg.mkPen(run.colour, width=1), antialias=False)
            raw.setOpacity(0.25 if key != "lr" else 1.0)
            smooth_item = plot.plot(pen=pg.mkPen(run.colour, width=2), antialias=False) if key != "lr" else None
            val = plot.plot(pen=pg.mkPen(run.colour, width=2, style=Qt.PenStyle.DashLine), symbol="o", symbolSize=6,
                            antialias=False,
                            symbolBrush=run.colour) if val_key else None
            run.items.append((raw, smooth_item, val))
            for item in (raw, smooth_item):
                if item is not None:
                    item.setDownsampling(auto=True, method="peak")
                    item.setClipToView(True)
        self.runs.append(run)
        self.timer.start()  # idle until the first run
        item = QListWidgetItem(name)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked)
        item.setForeground(pg.mkColor(run.colour))
        self.run_list.addItem(item)
        self.runs_changed.emit()
        return run

    def mark_dirty(self, run: Run) -> None:
        run.dirty = True

    def redraw(self, force: bool = False) -> None:
        for run in self.runs:
            if run.dirty or force:
                self._draw(run)
                run.dirty = False

    def _draw(self, run: Run) -> None:
        run.sync(self._options.smoothing)
        a = run.arrays
        x_key, val_x_key = X_AXES[self.x_axis]
        for (raw, smooth_item, val), (key, val_key, _) in zip(run.items, CURVE_PANELS):
            raw.setData(a[x_key], a[key])
            if smooth_item is not None:
                smooth_item.setData(a[x_key], a[f"{key}_smooth"])
            if val is not None:
                val.setData(a[val_x_key], a[val_key])
            for item in (raw, smooth_item, val):
                if item is not None:
                    item.setVisible(run.visible)

    def _on_smoothing(self, value: int) -> None:
        self._options = CurvesOptions(smoothing=value / 100)
        self.slider_label.setText(f"{self._options.smoothing:.2f}")
        for run in self.runs:
            run.resmooth(self._options.smoothing)
        self.redraw(force=True)

    def _on_axis(self, name: str) -> None:
        self.x_axis = name
        for plot in self.plots:
            plot.setLabel("bottom", {"time": "seconds"}.get(name, name))
        self.redraw(force=True)
        for plot in self.plots:
            plot.enableAutoRange()

    def _on_toggled(self, item: QListWidgetItem) -> None:
        run = self.runs[self.run_list.row(item)]
        run.visible = item.checkState() == Qt.CheckState.Checked
        self._draw(run)
