"""The "Weights" tab: the current layer's kernels or weight matrix, and a histogram of its weights.

The picture is made in a worker by ``pictures.filters.filter_picture``, the job of
``cnnexplorer export filters``. Clicking a kernel makes its output channel the current unit.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.filters import FilterView
from cnnexplorer.gui.session import Session, Unit
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.widgets.colorbar import ColorBar
from cnnexplorer.gui.widgets.spin_boxes import SpinBox
from cnnexplorer.gui.workers import JobRunner
from cnnexplorer.pictures.base import Inputs
from cnnexplorer.pictures.filters import FilterOptions, FilterPicture, filter_picture

HISTOGRAM_HEIGHT = 170
MEAN = -1
"""The input-channel box's value for "mean over the inputs"."""


def fit_special_text(box: QSpinBox) -> None:
    """Qt sizes a spin box for its numbers with room for the cursor after them, but its special
    value text without: "mean over inputs" filled the box to the last pixel and scrolled out of
    view at its start when the cursor came. Give the text that room too."""
    room = box.fontMetrics().horizontalAdvance(" ")
    box.setMinimumWidth(max(box.sizeHint().width(), box.minimumSizeHint().width()) + room)


def describe(view: FilterView) -> str:
    """What the picture shows and how its colours read."""
    shape = "×".join(map(str, view.weight_shape))
    head = f"{view.layer} ({view.module_type}), weight {shape}: "
    if view.mode == "rgb":
        return head + "each kernel as an RGB image, scaled to its own largest |w| (grey = 0)"
    if view.mode == "kernels":
        source = "mean over its inputs" if view.input_channel is None else f"input channel {view.input_channel}"
        return head + f"each output channel's kernel ({source}); blue < 0 < red, each scaled to its own largest |w|"
    block = f"; each pixel the mean of a {view.block[0]}×{view.block[1]} block" if view.block != (1, 1) else ""
    return head + f"rows are outputs, columns inputs; blue < 0 < red{block}"


class WeightsView(View):
    title = "Weights"
    view_name = "filters"
    waiting_for = "pick a layer with weights (a convolution or a linear layer) in the Model tree"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.result: FilterPicture | None = None
        self._job = None
        self.input_box = SpinBox()
        self.input_box.setRange(MEAN, 0)
        self.input_box.setSpecialValueText("mean over inputs")
        fit_special_text(self.input_box)
        self.input_box.setToolTip("Show one input channel's slice of every kernel instead of the mean over inputs")
        self.input_box.setKeyboardTracking(False)
        self.input_box.valueChanged.connect(self.refresh)
        self.input_label = QLabel("Input channel")
        controls = QHBoxLayout()
        controls.addWidget(self.input_label)
        controls.addWidget(self.input_box)
        controls.addStretch(1)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.canvas = ImageCanvas()
        self.canvas.scene().sigMouseMoved.connect(self._on_hover)
        self.canvas.scene().sigMouseClicked.connect(self._on_click)
        self.colorbar = ColorBar()
        self.histogram = pg.PlotWidget(background="w")
        self.histogram.setFixedHeight(HISTOGRAM_HEIGHT)
        self.histogram.setMouseEnabled(y=False)
        self.histogram.setLabel("bottom", "weight")
        self.histogram.getAxis("bottom").enableAutoSIPrefix(False)
        self.histogram.setLabel("left", "count")
        self.hover = QLabel(" ")
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.message)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.colorbar)
        layout.addWidget(self.histogram)
        layout.addWidget(self.hover)
        session.model_changed.connect(self.refresh)
        session.layer_changed.connect(self._on_layer)
        self._show_message("Load a model to see its weights.")

    @property
    def layer(self) -> str | None:
        return self.result.view.layer if self.result is not None else self.session.layer

    def options(self) -> FilterOptions:
        value = self.input_box.value()
        return FilterOptions(None if value == MEAN else value)

    def _on_layer(self, *_) -> None:
        self.input_box.blockSignals(True)
        self.input_box.setValue(MEAN)
        self.input_box.blockSignals(False)
        self.refresh()

    def compute(self) -> None:
        if self._job is not None:
            self._job.cancel()
        handle, layer, options = self.session.model, self.session.layer, self.options()
        if handle is None:
            return self._show_message("Load a model to see its weights.")
        if layer is None:
            return self._show_message("Select a layer in the Model tree to see its weights.")
        inputs = Inputs(handle, layer=layer)
        self._job = self.jobs.start(lambda: filter_picture(inputs, options), kind="weights-view",
                                    label=f"weights of {layer}", on_result=self._show, on_error=self._failed)

    def _failed(self, exc: BaseException) -> bool:
        if not isinstance(exc, UserError):
            return False
        self._show_message(str(exc))
        return True

    def _show_message(self, text: str) -> None:
        self.result = None
        self.canvas.clear()
        self.histogram.clear()
        self.histogram.hide()
        self.colorbar.hide()
        self.hover.setText(" ")
        self.message.setText(text)

    def _show(self, result: FilterPicture) -> None:
        if result.inputs.handle is not self.session.model or result.inputs.layer != self.session.layer:
            return
        self.result = result
        view = result.view
        self.canvas.set_pixels(result.pixels)
        requested = result.inputs.layer
        block = f"{requested} is a block; its first weighted layer is " if view.layer != requested else ""
        self.message.setText(block + describe(view))
        if view.value_range is not None:
            self.colorbar.set_map(view.cmap, *view.value_range)
        self.colorbar.setVisible(view.value_range is not None)
        inputs = view.weight_shape[1] if view.mode != "matrix" else 0
        self.input_box.blockSignals(True)
        self.input_box.setMaximum(max(inputs - 1, 0))
        self.input_box.blockSignals(False)
        self.input_box.setEnabled(inputs > 0)
        self.histogram.clear()
        self.histogram.show()
        histogram = view.histogram
        self.histogram.plot(histogram.edges, histogram.counts, stepMode="center", fillLevel=0,
                            brush=(70, 120, 180, 120), pen=pg.mkPen((40, 80, 140), width=1))

    def _kernel_at(self, scene_pos) -> tuple[int, str] | None:
        if self.result is None:
            return None
        point = self.canvas.view_box.mapSceneToView(scene_pos)
        return self.result.kernel_at(point.x(), point.y())

    def _on_hover(self, scene_pos) -> None:
        hit = self._kernel_at(scene_pos)
        self.hover.setText(" " if hit is None else hit[1])

    def _on_click(self, event) -> None:
        hit = self._kernel_at(event.scenePos())
        if hit is None or event.button() != Qt.MouseButton.LeftButton or self.result.view.mode == "matrix":
            return
        event.accept()
        self.session.set_unit(Unit(self.result.view.layer, hit[0]))

    def picture(self) -> tuple[np.ndarray, dict] | None:
        return None if self.result is None else (self.result.pixels, self.result.settings)
