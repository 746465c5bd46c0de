"""The robustness curve: accuracy or mean confidence against ε for FGSM and PGD over a set of images.

The images are the built-in shapes validation set or a chosen folder (one sub-folder per
class; images outside such folders count against the model's own clean prediction). The
view runs the whole curve as one cancellable job (``core.adversarial.curve_job``); this widget
builds its ``CurveOptions`` and draws the curve.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from cnnexplorer.core.adversarial import CurveOptions, RobustnessCurve
from cnnexplorer.core.adversarial.dataset import BUILTIN, LabelledImages
from cnnexplorer.core.errors import UserError
from cnnexplorer.gui.remembered import remember
from cnnexplorer.gui.widgets.legend import readable_legend
from cnnexplorer.gui.widgets.spin_boxes import SpinBox

COLOURS = {"fgsm": (31, 119, 180), "pgd": (214, 39, 40)}
DEFAULT_LEVELS = "0, 1, 2, 4, 8, 16"
MEASURES = {"accuracy": ("accuracy", "accuracy"),  # the choice → RobustnessCurve field, y-axis label
            "true-class probability": ("true_class", "P(true class)"),
            "top-1 confidence": ("confidence", "P(top-1 class)")}


EMPTY_CAPTION = "Accuracy or confidence against the budget ε for FGSM and PGD, computed as one job."


def parse_levels(text: str) -> tuple[float, ...]:
    """``"0, 2, 8"`` (grey levels) → budgets in pixel units, sorted."""
    try:
        levels = sorted({float(part) for part in text.replace(";", ",").split(",") if part.strip()})
    except ValueError:
        raise UserError(f"cannot read the budgets '{text}': list grey levels such as 0, 2, 4, 8") from None
    if not levels or levels[0] < 0 or levels[-1] > 255:
        raise UserError("list budgets between 0 and 255 grey levels, such as 0, 2, 4, 8")
    return tuple(level / 255 for level in levels)


class RobustnessPanel(QWidget):
    run_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.source = QComboBox()
        self.source.addItem("built-in shapes (validation set)", BUILTIN)
        self.source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source.setMinimumContentsLength(20)
        self.source.setToolTip("Images to attack: the built-in set, or a folder with one sub-folder per class")
        self.browse = QPushButton("Folder…")
        self.browse.clicked.connect(self._choose_folder)
        self.levels = QLineEdit(DEFAULT_LEVELS)
        self.levels.setToolTip("Budgets ε in grey levels (k/255), comma-separated")
        self.levels.setMinimumWidth(130)
        self.steps = SpinBox()
        self.steps.setRange(1, 200)
        self.steps.setValue(10)
        self.steps.setToolTip("PGD steps per image and budget")
        self.limit = SpinBox()
        self.limit.setRange(8, 5000)
        self.limit.setValue(200)
        self.limit.setToolTip("How many images to attack")
        self.measure = QComboBox()
        self.measure.addItems(list(MEASURES))
        self.measure.setMinimumWidth(100)  # full width when there is room; the list shows the full names anyway
        self.measure.setToolTip("Plot the accuracy, the mean probability of the true class, or the mean top-1 "
                                "probability (right or wrong: attacked models are often confidently wrong) against ε")
        self.measure.currentTextChanged.connect(self._plot)
        self.shown: tuple[LabelledImages, RobustnessCurve] | None = None
        self.run_button = QPushButton("Compute")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(140)
        self.progress.setMaximumHeight(16)
        self.progress.setTextVisible(False)
        rows = (QHBoxLayout(), QHBoxLayout())
        for widget in (self.source, self.browse, QLabel("ε /255"), self.levels, QLabel("plot"), self.measure):
            rows[0].addWidget(widget)
        for widget in (QLabel("PGD steps"), self.steps, QLabel("images"), self.limit, self.run_button,
                       self.cancel_button, self.progress):
            rows[1].addWidget(widget)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "ε (grey levels, /255)")
        self.plot.setLabel("left", "accuracy")
        self.plot.setYRange(0, 1, padding=0.02)
        self.plot.getPlotItem().enableAutoRange(y=False)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.getPlotItem().setMenuEnabled(False)
        self.legend = readable_legend(self.plot, (-10, 10))
        self.curves = {name: self.plot.plot([], [], pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6,
                                            symbolBrush=colour, symbolPen=None, name=name.upper())
                       for name, colour in COLOURS.items()}
        self.caption = QLabel(EMPTY_CAPTION)
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        for row in rows:
            row.addStretch(1)
            layout.addLayout(row)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.caption)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        remember(self, "levels", "steps", "limit", "measure")

    def options(self) -> CurveOptions:
        return CurveOptions(self.source.currentData(), parse_levels(self.levels.text()), self.steps.value(),
                            self.limit.value())

    def set_folder(self, folder: str) -> None:
        found = self.source.findData(folder)
        if found < 0:
            self.source.addItem(f"folder {folder}", folder)
            found = self.source.count() - 1
        self.source.setCurrentIndex(found)

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if not running:
            self.progress.reset()

    def set_progress(self, fraction: float) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(fraction * 1000))

    def show_curve(self, data: LabelledImages, curve: RobustnessCurve) -> None:
        self.shown = (data, curve)
        self._plot()

    def clear(self) -> None:
        """No curve, and a caption that says so: the curve it showed was of another model."""
        self.shown = None
        self.caption.setText(EMPTY_CAPTION)
        self._plot()

    def _plot(self, *_) -> None:
        measure = self.measure.currentText()
        field, axis_label = MEASURES[measure]
        self.plot.setLabel("left", axis_label)
        if self.shown is None:
            for item in self.curves.values():
                item.setData([], [])
            return
        data, curve = self.shown
        values = getattr(curve, field)
        levels = [e * 255 for e in curve.eps]
        for name, item in self.curves.items():
            item.setData(levels, list(values.get(name, ())))
        clean = values[next(iter(values))][0]
        worst = ", ".join(f"{n.upper()} {100 * v[-1]:.0f} %" for n, v in values.items())
        labels = ("" if data.labelled == len(data.labels) else
                  f" ({len(data.labels) - data.labelled} without a class folder count against their clean prediction)")
        self.caption.setText(f"{len(data.labels)} images from {data.source}{labels}: clean {measure} "
                             f"{100 * clean:.0f} %; at ε = {levels[-1]:.0f}/255: {worst}.")

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Images to attack (one sub-folder per class)",
                                                  options=QFileDialog.Option.DontUseNativeDialog)
        if folder:
            self.set_folder(folder)
