"""The Lab's "All layers" page: every layer's channels for the current image on one scrolling page,
16 per row, so the growth of abstraction and sparsity with depth shows in one look.

The picture is ``pictures.layers``'s, made in a worker with progress: the page, Export (Ctrl+E, or
the page's button) and ``cnnexplorer export layers`` show the same pixels. A click on a layer's
band makes that layer current in the tree and every tab.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QComboBox, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Progress
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.widgets.pixmaps import qimage_from_pixels
from cnnexplorer.gui.widgets.flow_layout import FlowLayout, control_group
from cnnexplorer.gui.widgets.spin_boxes import SpinBox
from cnnexplorer.gui.workers import JobRunner
from cnnexplorer.pictures.base import Inputs, settings_of
from cnnexplorer.pictures.layers import HEADER, LayerRow, LayersOptions, layers_picture

SCALE_TEXT = {"sigma2": "mean ± 2σ per channel (the course)", "channel": "each channel's range",
              "layer": "one range per layer"}
KIND_TEXT = {"activations": "activations and pooling", "conv": "convolutions and pooling",
             "all": "every layer with maps"}
WARNING_STYLE = "color: #b3261e"


def _combo(texts: dict[str, str], tip: str) -> QComboBox:
    box = QComboBox()
    for key, text in texts.items():
        box.addItem(text, key)
    box.setToolTip(tip)
    return box


class PictureLabel(QLabel):
    """The tall picture at 100 % (or shrunk to the page's width); reports clicks in picture pixels."""

    clicked = Signal(float)  # the picture's y

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
        self.scale = 1.0

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        pixmap = self.pixmap()
        if pixmap is None or pixmap.isNull() or event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        left = (self.width() - pixmap.width()) / 2
        x, y = event.position().x() - left, event.position().y()
        if 0 <= x < pixmap.width() and 0 <= y < pixmap.height():
            self.clicked.emit(y / self.scale)


class LayersPage(QWidget):
    view_name = "layers"
    export_requested = Signal()

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.session, self.jobs = session, jobs
        self.scale = _combo(SCALE_TEXT, "How each tile's values become colours: the course's Keras recipe maps each "
                                        "channel's mean ± 2 standard deviations to the colour map's ends")
        self.kinds = _combo(KIND_TEXT, "Which layers: the outputs of activation functions and pooling (what the "
                                       "course shows), of convolutions and pooling, or of every layer with maps")
        self.max_channels = SpinBox()
        self.max_channels.setRange(1, 4096)
        self.max_channels.setValue(LayersOptions.max_channels)
        self.max_channels.setToolTip("The most channels shown per layer (the picture stays small for big models)")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save this page as one PNG with its sidecar (as `cnnexplorer export layers`)")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_requested)
        controls = QWidget()
        flow = FlowLayout(controls)
        for group in ((QLabel("Layers"), self.kinds), (QLabel("Colours"), self.scale),
                      (QLabel("at most"), self.max_channels, QLabel("channels")), (self.export_button,)):
            flow.addWidget(control_group(*group))
        self.caption = QLabel(" ")
        self.caption.setWordWrap(True)
        self.label = PictureLabel()
        self.label.clicked.connect(self._on_click)
        self.label.setToolTip("Click a layer to make it current")
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.label)
        layout = QVBoxLayout(self)
        layout.addWidget(controls)
        layout.addWidget(self.caption)
        layout.addWidget(self.scroll, 1)
        for signal in (self.scale.currentIndexChanged, self.kinds.currentIndexChanged,
                       self.max_channels.valueChanged):
            signal.connect(self.refresh)
        self.pixels: np.ndarray | None = None
        self.rows: list[LayerRow] = []
        self.settings: dict = {}
        self.shown_for = None
        self._job = None

    def options(self) -> LayersOptions:
        return LayersOptions(scale=self.scale.currentData(), kinds=self.kinds.currentData(),
                             max_channels=self.max_channels.value())

    def refresh(self, *_) -> None:
        """Recompute when the model, the image or an option changed (switching layer costs nothing)."""
        handle, image, options = self.session.model, self.session.image, self.options()
        if handle is None or image is None:
            self._clear("Load a model and open an image to see every layer's activations.")
            return
        if self.shown_for == (handle, image, options):
            return
        if self._job is not None:
            self._job.cancel()
        self._clear(f"Computing every layer's activations for {image.name} …")
        self.shown_for = (handle, image, options)
        inputs = Inputs(handle, image)
        self._job = self.jobs.start(lambda: layers_picture(inputs, options), kind="lab-layers",
                                    label="every layer's activations", on_progress=self._progress,
                                    on_result=lambda result: self._show(handle, image, options, *result),
                                    on_error=self._failed)

    def _progress(self, progress: Progress) -> None:
        if progress.total:
            self.caption.setText(f"Computing every layer's activations: {progress.message} "
                                 f"({int(progress.done) + 1} of {int(progress.total)}) …")

    def _failed(self, exc: BaseException) -> bool:
        if not isinstance(exc, UserError):
            return False
        self._clear(str(exc), warning=True)
        return True

    def _clear(self, text: str, warning: bool = False) -> None:
        self.pixels, self.rows, self.shown_for = None, [], None
        self.label.clear()
        self.export_button.setEnabled(False)
        self.caption.setStyleSheet(WARNING_STYLE if warning else "")
        self.caption.setText(text)

    def _show(self, handle, image, options: LayersOptions, pixels: np.ndarray, rows: list[LayerRow]) -> None:
        if (handle, image, options) != (self.session.model, self.session.image, self.options()):
            return
        self.pixels, self.rows, self.settings = pixels, rows, settings_of(options)
        self.shown_for = (handle, image, options)
        self._draw()
        self.export_button.setEnabled(True)
        self.caption.setStyleSheet("")
        sparsest = max(rows, key=lambda r: r.zero_fraction)
        self.caption.setText(f"{len(rows)} layers of {handle.spec} for {image.name}, in the order they run · "
                             f"{SCALE_TEXT[options.scale]} · the sparsest: {sparsest.layer} "
                             f"({sparsest.zero_fraction:.0%} zeros) · click a layer to make it current")

    def _draw(self) -> None:
        """The picture at 100 %, or shrunk smoothly to the page's width."""
        if self.pixels is None:
            return
        height, width = self.pixels.shape[:2]
        room = max(100, self.scroll.viewport().width())
        pixmap = QPixmap.fromImage(qimage_from_pixels(self.pixels))
        if width > room:
            pixmap = pixmap.scaledToWidth(room, Qt.TransformationMode.SmoothTransformation)
        self.label.scale = pixmap.width() / width
        self.label.setPixmap(pixmap)

    def row_at(self, y: float) -> LayerRow | None:
        """The layer whose band (its title and tiles) holds picture row ``y``."""
        starts = [row.top - HEADER for row in self.rows]
        hit = [row for row, start in zip(self.rows, starts) if start <= y]
        return hit[-1] if hit and y >= starts[0] else None

    def _on_click(self, y: float) -> None:
        row = self.row_at(y)
        if row is not None:
            self.session.set_layer(row.layer.split("#")[0])

    @property
    def layer(self) -> str | None:
        return None

    def picture(self) -> tuple[np.ndarray, dict] | None:
        return None if self.pixels is None else (self.pixels, self.settings)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._draw()
