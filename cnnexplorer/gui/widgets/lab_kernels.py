"""The Lab's "Kernels" page: what a kernel answers, and why, three ways.

- On the current image: a named kernel (Sobel, sharpen, blur, edge, the course's curve detector) or
  a typed one slides over the grey image; clicking a pixel of the response shows the patch × kernel
  products and their sum, as CNN Explainer does.
- On a typed matrix: the same with numbers small enough to check by hand; the course's worked
  examples (sharpen: 320; curve detector: 6,600) are one click away.
- On a layer of the model: click a pixel of the current unit's activation map to see the input
  pixels it can see (its receptive field, boxed on the input) and the input channels that most
  raised it (``core.lab.kernels.top_input_channels``).

The numbers are ``core.lab.kernels``'s, the same as the CLI's.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QGraphicsRectItem, QGridLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QPushButton, QRadioButton, QSplitter, QStackedWidget,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)
from torch import nn

from cnnexplorer.core.colormaps import apply_colormap
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import find_layer
from cnnexplorer.core.lab import kernels
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.widgets.spin_boxes import SpinBox
from cnnexplorer.gui.workers import JobRunner

IMAGE_SIDE = 192
"""The grey image's longest side: large enough to see edges, small enough that a pixel can be clicked."""
TYPED = "typed…"
BOX_PEN = QColor(255, 200, 0)
WARNING_STYLE = "color: #b3261e"
TOP_CHANNELS = 8


def matrix_text(matrix: np.ndarray) -> str:
    """A matrix as the typed form ``1 2; 3 4`` (numbers as short as they go)."""
    return "; ".join(" ".join(f"{v:g}" for v in row) for row in matrix)


def explanation_html(explanation: kernels.Explanation) -> str:
    """The patch, the kernel and their products side by side as tables, and the sum."""
    def table(values: np.ndarray, title: str) -> str:
        rows = "".join("<tr>" + "".join(f"<td align=right>{v + 0.0:g}</td>" for v in row) + "</tr>"  # no "-0"
                       for row in values)
        return f"<td valign=top><b>{title}</b><table border=1 cellspacing=0 cellpadding=3>{rows}</table></td>"

    return (f"<p>Output ({explanation.row}, {explanation.col}): the patch under the kernel times the kernel, "
            f"summed</p><table cellspacing=8><tr>{table(explanation.patch, 'patch')}<td valign=middle>×</td>"
            f"{table(explanation.kernel, 'kernel')}<td valign=middle>=</td>"
            f"{table(explanation.products, 'products')}</tr></table>"
            f"<p>{explanation.text()}</p>")


def signed_pixels(values: np.ndarray) -> np.ndarray:
    """A response as RGB on the diverging map, zero in the middle (white), ± the largest |value| at the ends."""
    peak = float(np.abs(values).max()) or 1.0
    return apply_colormap(0.5 + 0.5 * values / peak, "diverging")


def grey_image(image: Image.Image) -> np.ndarray:
    """The image in grey levels 0–255, its longest side at most ``IMAGE_SIDE``."""
    grey = image.convert("L")
    grey.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
    return np.asarray(grey, dtype=np.float64)


def titled_side_by_side(pictures) -> QSplitter:
    """``(title, widget)`` pairs side by side, each under its title."""
    splitter = QSplitter(Qt.Orientation.Horizontal)
    for title, widget in pictures:
        box = QWidget()
        box_layout = QVBoxLayout(box)
        box_layout.setContentsMargins(0, 0, 0, 0)
        box_layout.addWidget(QLabel(title))
        box_layout.addWidget(widget, 1)
        splitter.addWidget(box)
    return splitter


class KernelChooser(QWidget):
    """A named kernel, or a typed one (``0 -1 0; -1 5 -1; 0 -1 0``)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.names = QComboBox()
        self.names.addItems([*kernels.NAMED_KERNELS, TYPED])
        self.names.setToolTip("A kernel by name (curve: the course's 7×7 curve detector), or type one")
        self.typed = QLineEdit(matrix_text(kernels.kernel_named(self.names.currentText())))
        self.typed.setToolTip("Rows separated by ';', values by spaces; fractions such as 1/9 work")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Kernel"))
        layout.addWidget(self.names)
        layout.addWidget(self.typed, 1)
        self.names.currentTextChanged.connect(self._on_name)

    def _on_name(self, name: str) -> None:
        if name != TYPED:
            self.typed.setText(matrix_text(kernels.kernel_named(name)))

    def kernel(self) -> np.ndarray:
        return kernels.parse_matrix(self.typed.text())


class ImageKernel(QWidget):
    """The chosen kernel on the current image's grey levels; a click on the response explains a pixel."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.chooser = KernelChooser()
        self.input_canvas, self.response_canvas = ImageCanvas(), ImageCanvas()
        self.response_canvas.scene().sigMouseClicked.connect(self._on_click)
        self.response_canvas.setToolTip("Click a pixel to see the sum that made it")
        self.caption = QLabel(" ")
        self.caption.setWordWrap(True)
        self.explanation = QLabel("Click a pixel of the response to see the patch × kernel sum that made it.")
        self.explanation.setWordWrap(True)
        self.explanation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        pictures = titled_side_by_side((("grey image", self.input_canvas),
                                        ("response (blue −, red +)", self.response_canvas)))
        layout = QVBoxLayout(self)
        layout.addWidget(self.chooser)
        layout.addWidget(self.caption)
        layout.addWidget(pictures, 3)
        layout.addWidget(self.explanation, 2)
        self.chooser.typed.textChanged.connect(self.refresh)
        self.grey: np.ndarray | None = None
        self.kernel: np.ndarray | None = None
        self.response: np.ndarray | None = None

    def refresh(self, *_) -> None:
        image = self.session.image
        if image is None:
            self.caption.setText("Open an image to apply kernels to it.")
            return
        try:
            kernel = self.chooser.kernel()
        except UserError as exc:
            self.caption.setStyleSheet(WARNING_STYLE)
            self.caption.setText(str(exc))
            return
        self.caption.setStyleSheet("")
        self.grey, self.kernel = grey_image(image.image), kernel
        self.response = kernels.apply_to_image(self.grey, kernel)[0]
        self.input_canvas.set_pixels(self.grey.astype(np.uint8))
        self.response_canvas.set_pixels(signed_pixels(self.response))
        self.caption.setText(f"{image.name} in grey levels 0–255 ({self.grey.shape[1]}×{self.grey.shape[0]}), a "
                             f"{kernel.shape[0]}×{kernel.shape[1]} kernel, zero padding that keeps the size (so "
                             f"edges answer at the border) · response from {self.response.min():.4g} to "
                             f"{self.response.max():.4g}")

    def explain(self, row: int, col: int) -> kernels.Explanation:
        """The sum behind response pixel (row, col), on the grey image padded as ``apply_to_image`` pads it."""
        kh, kw = self.kernel.shape
        top, left = (kh - 1) // 2, (kw - 1) // 2
        padded = np.pad(self.grey, ((top, kh - 1 - top), (left, kw - 1 - left)))
        return kernels.explain(padded, self.kernel, row, col)

    def _on_click(self, event) -> None:
        if self.response is None:
            return
        point = self.response_canvas.view_box.mapSceneToView(event.scenePos())
        row, col = int(point.y()), int(point.x())
        if 0 <= row < self.response.shape[0] and 0 <= col < self.response.shape[1]:
            event.accept()
            self.explanation.setText(explanation_html(self.explain(row, col)))


class MatrixKernel(QWidget):
    """The chosen kernel on a typed matrix; the response as numbers, a click on one explains it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.chooser = KernelChooser()
        self.matrix = QPlainTextEdit(matrix_text(kernels.SHARPEN_PATCH).replace("; ", "\n"))
        self.matrix.setToolTip("The input: one row per line (or rows separated by ';')")
        self.matrix.setMaximumHeight(150)
        self.padding = SpinBox()
        self.padding.setRange(0, 8)
        self.padding.setValue(1)
        self.padding.setToolTip("Zeros around the matrix")
        self.stride = SpinBox()
        self.stride.setRange(1, 8)
        self.stride.setToolTip("How far the kernel moves per step")
        examples = QHBoxLayout()
        examples.addWidget(QLabel("The course:"))
        for name, label, tip in (("sharpen", "sharpen (320)", "Its sharpen kernel on a zero-padded 5×5 patch"),
                                 ("curve", "curve detector (6,600)", "Its 7×7 curve detector on a curve's patch")):
            button = QPushButton(label)
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, name=name: self.load_example(name))
            examples.addWidget(button)
        examples.addStretch(1)
        numbers = QHBoxLayout()
        numbers.addWidget(QLabel("padding"))
        numbers.addWidget(self.padding)
        numbers.addWidget(QLabel("stride"))
        numbers.addWidget(self.stride)
        numbers.addStretch(1)
        self.response = QTableWidget()
        self.response.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.response.cellClicked.connect(self._on_cell)
        self.caption = QLabel(" ")
        self.caption.setWordWrap(True)
        self.explanation = QLabel("Click a value of the response to see the sum that made it.")
        self.explanation.setWordWrap(True)
        self.explanation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid = QGridLayout()
        grid.addWidget(QLabel("Input matrix"), 0, 0)
        grid.addWidget(QLabel("Response (click a value)"), 0, 1)
        grid.addWidget(self.matrix, 1, 0, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.response, 1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(examples)
        layout.addWidget(self.chooser)
        layout.addLayout(numbers)
        layout.addLayout(grid, 2)
        layout.addWidget(self.caption)
        layout.addWidget(self.explanation, 2)
        for signal in (self.chooser.typed.textChanged, self.matrix.textChanged, self.padding.valueChanged,
                       self.stride.valueChanged):
            signal.connect(self.refresh)
        self.values: np.ndarray | None = None
        self.chooser.names.setCurrentText("sharpen")
        self.refresh()

    def load_example(self, name: str) -> None:
        """One of the course's worked examples, with its value explained."""
        matrix, padding, (row, col), _ = kernels.WORKED_EXAMPLES[name]
        self.chooser.names.setCurrentText(name)
        self.matrix.setPlainText(matrix_text(matrix).replace("; ", "\n"))
        self.padding.setValue(padding)
        self.stride.setValue(1)
        self.refresh()
        self._on_cell(row, col)

    def refresh(self, *_) -> None:
        try:
            self.input = kernels.parse_matrix(self.matrix.toPlainText(), "matrix")
            self.kernel = self.chooser.kernel()
            self.values = kernels.correlate(self.input, self.kernel, self.padding.value(), self.stride.value())
        except UserError as exc:
            self.values = None
            self.response.clear()
            self.caption.setStyleSheet(WARNING_STYLE)
            self.caption.setText(str(exc))
            return
        self.caption.setStyleSheet("")
        rows, cols = self.values.shape
        self.caption.setText(f"{self.input.shape[0]}×{self.input.shape[1]} input, {self.kernel.shape[0]}×"
                             f"{self.kernel.shape[1]} kernel, padding {self.padding.value()}, stride "
                             f"{self.stride.value()} → {rows}×{cols} response")
        self.response.setRowCount(rows)
        self.response.setColumnCount(cols)
        for r in range(rows):
            for c in range(cols):
                item = QTableWidgetItem(f"{self.values[r, c]:g}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.response.setItem(r, c, item)
        self.response.resizeColumnsToContents()

    def explain(self, row: int, col: int) -> kernels.Explanation:
        return kernels.explain(self.input, self.kernel, row, col, self.padding.value(), self.stride.value())

    def _on_cell(self, row: int, col: int) -> None:
        if self.values is not None:
            self.response.setCurrentCell(row, col)
            self.explanation.setText(explanation_html(self.explain(row, col)))


class LayerKernel(QWidget):
    """The current unit's map in a conv layer: a click shows the pixel's receptive field on the
    model's input and its top input channels."""

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.session, self.jobs = session, jobs
        self.message = QLabel(" ")
        self.message.setWordWrap(True)
        self.input_canvas, self.map_canvas = ImageCanvas(), ImageCanvas()
        self.map_canvas.scene().sigMouseClicked.connect(self._on_click)
        self.map_canvas.setToolTip("Click a pixel: its receptive field is boxed on the input")
        pen = QPen(BOX_PEN, 2)
        pen.setCosmetic(True)
        self.box, self.marker = QGraphicsRectItem(), QGraphicsRectItem()  # the field on the input, the pixel on the map
        for item, canvas in ((self.box, self.input_canvas), (self.marker, self.map_canvas)):
            item.setPen(pen)
            item.hide()
            canvas.view_box.addItem(item)
        self.details = QLabel("Click a pixel of the map.")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        pictures = titled_side_by_side((("the model's input (the receptive field boxed)", self.input_canvas),
                                        ("the unit's map (click a pixel)", self.map_canvas)))
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(pictures, 3)
        layout.addWidget(self.details, 1)
        self.recorded = None
        self._job = None

    def channel(self) -> int:
        unit = self.session.unit
        return unit.channel if unit is not None and unit.layer == self.session.layer else 0

    def refresh(self, *_) -> None:
        handle, image, layer = self.session.model, self.session.image, self.session.layer
        self.recorded = None
        self.box.hide()
        self.marker.hide()
        if handle is None or image is None:
            return self.message.setText("Load a model and open an image.")
        if layer is None or not isinstance(find_layer(handle.module, layer), nn.Conv2d):
            return self.message.setText("Select a convolution layer in the Model tree (and a channel in the "
                                        "Activations tab) to trace one of its pixels back to the input.")
        if self._job is not None:
            self._job.cancel()
        self.message.setText(f"Recording {layer} …")
        self._job = self.jobs.start(lambda: kernels.conv_recording_job(handle, image, layer), kind="lab-layer",
                                    label=f"recording {layer}",
                                    on_result=lambda result: self._show(handle, image, layer, result))

    def _show(self, handle, image, layer: str, result) -> None:
        if (handle, image, layer) != (self.session.model, self.session.image, self.session.layer):
            return
        pixels, layer_input, output = result
        channel = min(self.channel(), output.shape[1] - 1)
        self.recorded = (handle, layer, channel, layer_input, output[0, channel].float().numpy())
        self.input_canvas.set_pixels((pixels.permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8))
        values = self.recorded[4]
        span = float(values.max() - values.min()) or 1.0
        self.map_canvas.set_pixels(apply_colormap((values - values.min()) / span, "viridis"))
        self.message.setText(f"{layer}, channel {channel} (the current unit; pick another in the Activations tab): "
                             f"{values.shape[0]}×{values.shape[1]} map, from {values.min():.4g} to {values.max():.4g}")
        self.details.setText("Click a pixel of the map: its receptive field is boxed on the input, and the input "
                             "channels that raised it most are listed here.")

    def _on_click(self, event) -> None:
        if self.recorded is None:
            return
        point = self.map_canvas.view_box.mapSceneToView(event.scenePos())
        row, col = int(point.y()), int(point.x())
        values = self.recorded[4]
        if not (0 <= row < values.shape[0] and 0 <= col < values.shape[1]):
            return
        event.accept()
        self.show_pixel(row, col)

    def show_pixel(self, row: int, col: int) -> None:
        """Box the receptive field of map pixel (row, col) and list its top input channels."""
        handle, layer, channel, layer_input, values = self.recorded
        x0, y0, x1, y1 = kernels.unit_input_box(handle, layer, row, col)
        self.box.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.box.show()
        self.marker.setRect(QRectF(col, row, 1, 1))
        self.marker.show()
        conv = find_layer(handle.module, layer)
        try:
            top = kernels.top_input_channels(conv, layer_input.to(conv.weight.device), channel, row, col, TOP_CHANNELS)
        except UserError as exc:
            self.details.setText(f"Pixel ({row}, {col}) = {values[row, col]:.4g} · receptive field x {x0}–{x1}, "
                                 f"y {y0}–{y1} · {exc}")
            return
        listed = ", ".join(f"{index} ({value:+.3g})" for index, value in top)
        self.details.setText(f"Pixel ({row}, {col}) = {values[row, col]:.4g} · receptive field {x1 - x0}×{y1 - y0} "
                             f"pixels at x {x0}–{x1}, y {y0}–{y1} of the input · the input channels that "
                             f"raised it most (weights × their patch, summed): {listed}")


class KernelsPage(QWidget):
    """The three ways, chosen by radio buttons above a stack."""

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.on_image = ImageKernel(session)
        self.on_matrix = MatrixKernel()
        self.on_layer = LayerKernel(session, jobs)
        self.stack = QStackedWidget()
        self.choice = QButtonGroup(self)
        choices = QHBoxLayout()
        choices.addWidget(QLabel("Kernel on"))
        for index, (widget, text, tip) in enumerate((
                (self.on_image, "the image", "The kernel slides over the current image's grey levels"),
                (self.on_matrix, "a typed matrix", "Numbers small enough to check by hand; the course's examples"),
                (self.on_layer, "a model layer", "A conv layer's unit: its receptive field and top input channels"))):
            self.stack.addWidget(widget)
            button = QRadioButton(text)
            button.setToolTip(tip)
            self.choice.addButton(button, index)
            choices.addWidget(button)
        choices.addStretch(1)
        self.choice.button(0).setChecked(True)
        self.choice.idClicked.connect(self.show_mode)
        layout = QVBoxLayout(self)
        layout.addLayout(choices)
        layout.addWidget(self.stack, 1)

    def show_mode(self, index: int) -> None:
        self.choice.button(index).setChecked(True)
        self.stack.setCurrentIndex(index)
        self.refresh()

    def refresh(self, *_) -> None:
        self.stack.currentWidget().refresh()
