"""Gradient flow live: a layer × step heat strip of log10 gradient norms (or update/weight ratios).

Rows are the model's trainable layers, input at the top; columns are the recorded steps, newest on
the right. The colour is log10 of the value on a fixed-width scale around the values seen, so a
layer whose gradient vanishes (a deep plain net's first layers) is a dark band and the course's
‖Δw‖/‖w‖ ≈ 1e-3 rule reads off the colour bar. The strip keeps the last ``MAX_COLUMNS`` steps (the
CSV export keeps them all) and redraws on a timer, so per-step records cost nothing on the GUI thread.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from cnnexplorer.core.colormaps import apply_colormap
from cnnexplorer.core.training.gradient_flow import GradientFlow

MAX_COLUMNS = 1000
QUANTITIES = {"gradient norm": "grad_norms", "update / weight": "update_ratios"}
TICKS_SHOWN = 24  # layer names on the axis; more layers show every k-th name


class GradientStrip(QWidget):
    """The heat strip, a choice of quantity and a line saying the range the colours span."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.layers: tuple[str, ...] = ()
        self.steps: list[int] = []
        self.columns: dict[str, list[np.ndarray]] = {name: [] for name in QUANTITIES.values()}
        self.dirty = False
        self.quantity = QComboBox()
        self.quantity.addItems(list(QUANTITIES))
        self.quantity.setToolTip("Gradient norm ‖∇w‖ of each layer's weights, or the size of the optimiser's step "
                                 "relative to the weights, ‖Δw‖/‖w‖ (healthy: about 1e-3)")
        self.quantity.currentTextChanged.connect(lambda *_: self.redraw())
        self.scale = QLabel("Start a run: each step's per-layer figures appear here.")
        self.scale.setWordWrap(True)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.plot = self.graphics.addPlot()
        self.plot.setLabel("bottom", "step")
        self.plot.invertY(True)  # the input's layer on top
        self.plot.setMouseEnabled(x=True, y=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.bar = pg.GraphicsLayoutWidget()
        self.bar.setBackground("w")
        self.bar.setFixedHeight(64)
        self.bar_plot = self.bar.addPlot()
        self.bar_plot.hideAxis("left")
        self.bar_plot.setMouseEnabled(x=False, y=False)
        self.bar_image = pg.ImageItem(axisOrder="row-major")
        self.bar_plot.addItem(self.bar_image)
        self.bar_plot.setLabel("bottom", "log10 of the value")
        top = QHBoxLayout()
        top.addWidget(QLabel("show"))
        top.addWidget(self.quantity)
        top.addWidget(self.scale, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.bar)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.timer.start(250)

    def clear(self) -> None:
        self.layers, self.steps = (), []
        self.columns = {name: [] for name in QUANTITIES.values()}
        self.image.clear()
        self.scale.setText("Start a run: each step's per-layer figures appear here.")

    def add(self, flow: GradientFlow) -> None:
        """A step's record; a record of other layers (another model's run) starts the strip again."""
        if flow.layers != self.layers:
            self.clear()
            self.layers = flow.layers
            self._set_ticks()
        self.steps.append(flow.step)
        for name in QUANTITIES.values():
            self.columns[name].append(np.asarray(getattr(flow, name), dtype=np.float64))
        if len(self.steps) > MAX_COLUMNS:
            del self.steps[0]
            for column in self.columns.values():
                del column[0]
        self.dirty = True

    def _set_ticks(self) -> None:
        every = max(1, -(-len(self.layers) // TICKS_SHOWN))
        ticks = [(i + 0.5, name) for i, name in enumerate(self.layers) if i % every == 0]
        self.plot.getAxis("left").setTicks([ticks, []])

    def _tick(self) -> None:
        if self.dirty:
            self.redraw()

    def values(self) -> np.ndarray:
        """log10 of the shown quantity, [layers, steps] (nan where a value is 0 or missing)."""
        columns = self.columns[QUANTITIES[self.quantity.currentText()]]
        if not columns:
            return np.zeros((len(self.layers), 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(np.stack(columns, axis=1))
        return np.where(np.isfinite(logs), logs, np.nan)

    def redraw(self) -> None:
        self.dirty = False
        logs = self.values()
        if logs.size == 0 or np.isnan(logs).all():
            return
        low, high = np.nanpercentile(logs, 1), np.nanpercentile(logs, 99)
        high = max(high, low + 1e-6)
        scaled = np.clip((logs - low) / (high - low), 0, 1)
        pixels = apply_colormap(scaled, "viridis")  # no value (a layer without a gradient this step): NaN's colour
        first, last = self.steps[0], self.steps[-1]
        spacing = (last - first) / max(len(self.steps) - 1, 1) or 1
        self.image.setImage(pixels)
        self.image.setRect(first - spacing / 2, 0, spacing * len(self.steps), len(self.layers))
        self.plot.setLimits(yMin=0, yMax=len(self.layers))
        self.plot.setXRange(first - spacing / 2, last + spacing / 2, padding=0)
        self.plot.setYRange(0, len(self.layers), padding=0)
        self.bar_image.setImage(apply_colormap(np.linspace(0, 1, 256)[None, :].repeat(2, 0), "viridis"))
        self.bar_image.setRect(low, 0, high - low, 1)
        self.bar_plot.setXRange(low, high, padding=0)
        self.bar_plot.setYRange(0, 1, padding=0)
        newest = logs[:, -1]
        weakest = int(np.nanargmin(newest)) if not np.isnan(newest).all() else 0
        self.scale.setText(f"{self.quantity.currentText()}: 10^{low:.1f} (dark) … 10^{high:.1f} (bright) over "
                           f"{len(self.steps)} steps; at step {last} the smallest is {self.layers[weakest]}'s "
                           f"(10^{newest[weakest]:.1f})")
