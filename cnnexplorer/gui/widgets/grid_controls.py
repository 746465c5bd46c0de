"""The Activations view's toolbar: normalisation, colours, sort, dead channels, which tensor and
which call of the layer, and a second image to compare with.

It only holds choices, read as the picture's ``ActivationOptions`` (the call goes into the layer
name): ``changed`` fires when the user changes one, not when the view refills the lists (open
images, calls, output tensors) for a new layer or image.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QWidget

from cnnexplorer.core.colormaps import COLORMAPS
from cnnexplorer.core.images import LoadedImage
from cnnexplorer.gui.remembered import remember
from cnnexplorer.gui.widgets.flow_layout import FlowLayout, control_group
from cnnexplorer.gui.widgets.spin_boxes import DoubleSpinBox
from cnnexplorer.pictures.activations import ActivationOptions, Comparison

NORMS = (("per channel", "channel"), ("shared (layer)", "layer"), ("fixed range", "fixed"))


def _combo(items: list[tuple[str, object]], tip: str) -> QComboBox:
    box = QComboBox()
    for text, data in items:
        box.addItem(text, data)
    box.setToolTip(tip)
    return box


class GridControls(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.default_range: tuple[float, float] = (0.0, 1.0)
        """The range the fixed normalisation starts from (the view sets the shown layer's)."""
        self.norm_box = _combo(list(NORMS), "Per channel: each tile its own range; shared: one range and a colour "
                                            "bar for the layer; fixed: the range in the two boxes")
        self.low_box, self.high_box = DoubleSpinBox(), DoubleSpinBox()
        for box, tip in ((self.low_box, "value shown at the low end"), (self.high_box, "value shown at the high end")):
            box.setRange(-1e9, 1e9)
            box.setDecimals(3)
            box.setToolTip(tip)
            box.setKeyboardTracking(False)
            box.setMaximumWidth(90)
        self.cmap_box = _combo([("auto", None), *((name, name) for name in COLORMAPS)],
                               "Colour map; auto is diverging for outputs with negative values, else viridis")
        self.sort_box = _combo([("index", "index"), ("mean ↓", "mean"), ("max ↓", "max")], "Order of the tiles")
        self.dead_box = QCheckBox("Hide dead")
        self.dead_box.setToolTip("Leave out channels that are ≤ 0 everywhere for this image")
        self.output_box = _combo([], "This layer returns several tensors: which one to show")
        self.call_box = _combo([], "This module runs several times in one forward pass: which call to show")
        self.compare_box = _combo([("—", None)], "Show the same layer for another open image beside this one")
        self.difference_box = QCheckBox("Difference")
        self.difference_box.setToolTip("One grid of this image minus the other (red: higher, blue: lower)")

        self.output_group = control_group(QLabel("Output"), self.output_box)
        self.call_group = control_group(QLabel("Call"), self.call_box)
        layout = FlowLayout(self)
        for group in (control_group(QLabel("Normalise"), self.norm_box, self.low_box, self.high_box),
                      control_group(QLabel("Colours"), self.cmap_box), control_group(QLabel("Sort"), self.sort_box),
                      self.dead_box, self.output_group, self.call_group,
                      control_group(QLabel("Compare with"), self.compare_box, self.difference_box)):
            layout.addWidget(group)

        for box in (self.norm_box, self.cmap_box, self.sort_box, self.output_box, self.call_box, self.compare_box):
            box.currentIndexChanged.connect(self._on_change)
        for box in (self.low_box, self.high_box):
            box.valueChanged.connect(self._on_change)
        for check in (self.dead_box, self.difference_box):
            check.toggled.connect(self._on_change)
        self._show_relevant()
        remember(self, "norm_box", "cmap_box", "sort_box", "dead_box")

    def options(self) -> ActivationOptions:
        norm, image = self.norm_box.currentData(), self.compare_image()
        value_range = (self.low_box.value(), self.high_box.value()) if norm == "fixed" else None
        compare = None if image is None else Comparison(image.source, image.sha256, self.difference_box.isChecked())
        return ActivationOptions(norm, value_range, self.cmap_box.currentData(), self.sort_box.currentData(),
                                 self.dead_box.isChecked(), self.output_box.currentData() or 0, compare)

    def call(self) -> int:
        return self.call_box.currentData() or 0

    def compare_image(self) -> LoadedImage | None:
        return self.compare_box.currentData()

    def set_images(self, others: list[LoadedImage]) -> None:
        """The images to compare with (the choice is kept while it is still among them; losing it
        is a change)."""
        chosen = self.compare_image()
        kept = next((k + 1 for k, image in enumerate(others) if image is chosen), 0)
        self._refill(self.compare_box, [("—", None), *((image.name, image) for image in others)], kept)
        if chosen is not None and not kept:
            self.changed.emit()

    def set_calls(self, calls: int) -> None:
        """How often the layer's module runs in one forward pass (a choice only when > 1)."""
        self._refill(self.call_box, [(f"{k + 1} of {calls}", k) for k in range(calls if calls > 1 else 0)], 0)

    def set_outputs(self, count: int) -> None:
        """How many tensors the layer returns (a choice only when > 1; kept when still valid)."""
        items = [(f"tensor {k}", k) for k in range(count if count > 1 else 0)]
        if len(items) != self.output_box.count():
            self._refill(self.output_box, items, min(self.output_box.currentData() or 0, max(len(items) - 1, 0)))

    def _refill(self, box: QComboBox, items: list[tuple[str, object]], current: int) -> None:
        box.blockSignals(True)
        box.clear()
        for text, data in items:
            box.addItem(text, data)
        box.setCurrentIndex(current if items else -1)
        box.blockSignals(False)
        self._show_relevant()

    def _on_change(self) -> None:
        if self.sender() is self.norm_box and self.norm_box.currentData() == "fixed":
            for box, value in zip((self.low_box, self.high_box), self.default_range):
                box.blockSignals(True)
                box.setValue(value)
                box.blockSignals(False)
        self._show_relevant()
        self.changed.emit()

    def _show_relevant(self) -> None:
        fixed = self.norm_box.currentData() == "fixed"
        self.low_box.setVisible(fixed)
        self.high_box.setVisible(fixed)
        self.output_group.setVisible(self.output_box.count() > 1)
        self.call_group.setVisible(self.call_box.count() > 1)
        self.difference_box.setEnabled(self.compare_image() is not None)
