"""The training form: data, model (scratch / transfer), optimiser, schedule and augmentation.

It only collects values; ``request()`` turns them into the core ``TrainRequest`` (whose
``TrainConfig`` checks them), the run ``cnnexplorer train`` makes from its flags. ``changed`` fires
when a value that decides what a run does to the model changes, so the tab can say it again.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit,
                               QPushButton, QVBoxLayout, QWidget)

from cnnexplorer.core.model_handle import ModelHandle
from cnnexplorer.core.training.augment import FILL_MODES, Augmentation
from cnnexplorer.core.training.config import CHANNELS_LAST, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig
from cnnexplorer.core.training.data import DATASPEC_HELP
from cnnexplorer.core.training.run import TrainRequest
from cnnexplorer.gui.remembered import remember
from cnnexplorer.gui.widgets.spin_boxes import DoubleSpinBox, SpinBox


def _spin(low: float, high: float, value: float, decimals: int = 0, step: float = 1.0):
    box = DoubleSpinBox() if decimals else SpinBox()
    if decimals:
        box.setDecimals(decimals)
        box.setSingleStep(step)
    box.setRange(low, high)
    box.setValue(value)
    return box


class TrainingSettings(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        defaults = TrainConfig()
        self.data = QLineEdit("builtin:shapes")
        self.data.setToolTip(DATASPEC_HELP)
        browse = QPushButton("Folder…")
        browse.clicked.connect(self._browse)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data, 1)
        data_row.addWidget(browse)
        self.download = QCheckBox("download if missing")
        self.download.setToolTip("mnist:, fashion-mnist: and cifar10: data: download it into ROOT when it is not there")
        self.out = QLineEdit()
        self.out.setPlaceholderText("checkpoint file (optional)")
        self.out.setToolTip("Written atomically every epoch; the best epoch is kept beside it as NAME.best.pt")

        self.scratch = QCheckBox("train from scratch")
        self.scratch.setToolTip("Re-initialise the weights instead of starting from the current model's")
        self.freeze_base = QCheckBox("freeze the base")
        self.freeze_base.setToolTip("Train only the classifier head (and the top N blocks below it): transfer learning")
        self.unfreeze_top = _spin(0, 1000, 0)
        self.unfreeze_top.setToolTip("with a frozen base: also train the top N blocks (fine-tuning)")
        self.unfreeze_top.setEnabled(False)
        self.freeze_base.toggled.connect(self.unfreeze_top.setEnabled)

        self.optimizer = QComboBox()
        self.optimizer.addItems(OPTIMIZERS)
        self.optimizer.setCurrentText(defaults.optimizer)
        self.lr = _spin(1e-6, 10.0, defaults.lr, decimals=6, step=1e-4)
        self.momentum = _spin(0.0, 0.999, defaults.momentum, decimals=3, step=0.01)
        self.weight_decay = _spin(0.0, 1.0, defaults.weight_decay, decimals=4, step=0.01)
        self.schedule = QComboBox()
        self.schedule.addItems(SCHEDULES)
        self.schedule.setCurrentText(defaults.schedule)
        self.batch_size = _spin(1, 4096, defaults.batch_size)
        self.epochs = _spin(1, 10000, defaults.epochs)
        self.seed = _spin(0, 2**31 - 1, defaults.seed)
        self.precision = QComboBox()
        self.precision.addItems(PRECISIONS)
        self.precision.setToolTip("Mixed precision: auto is fp16 with loss scaling on CUDA and fp32 elsewhere; "
                                  "bf16 needs no loss scaling")
        self.channels_last = QComboBox()
        self.channels_last.addItems(CHANNELS_LAST)
        self.channels_last.setToolTip("Channels-last memory format (faster convolutions on recent GPUs): "
                                      "auto is on for CUDA")

        self.rotation = _spin(0, 180, 0, decimals=1)
        self.width_shift = _spin(0, 1, 0, decimals=2, step=0.05)
        self.height_shift = _spin(0, 1, 0, decimals=2, step=0.05)
        self.shear = _spin(0, 80, 0, decimals=1)
        self.zoom = _spin(0, 0.9, 0, decimals=2, step=0.05)
        self.hflip = QCheckBox("horizontal flip")
        self.fill = QComboBox()
        self.fill.addItems(FILL_MODES)
        self.fill.setCurrentText("nearest")

        groups = (
            ("Data", [("data", data_row), ("", self.download), ("save to", self.out)]),
            ("Model", [("", self.scratch), ("", self.freeze_base), ("unfreeze top", self.unfreeze_top)]),
            ("Optimisation", [("optimiser", self.optimizer), ("learning rate", self.lr), ("momentum", self.momentum),
                              ("weight decay", self.weight_decay), ("schedule", self.schedule),
                              ("batch size", self.batch_size), ("epochs", self.epochs), ("seed", self.seed),
                              ("precision", self.precision), ("channels-last", self.channels_last)]),
            ("Augmentation", [("rotation °", self.rotation), ("width shift", self.width_shift),
                              ("height shift", self.height_shift), ("shear °", self.shear), ("zoom ±", self.zoom),
                              ("", self.hflip), ("fill mode", self.fill)]),
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for title, rows in groups:
            box = QGroupBox(title)
            form = QFormLayout(box)
            for label, widget in rows:
                form.addRow(label, widget)
            layout.addWidget(box)
        layout.addStretch(1)
        for signal in (self.data.textChanged, self.scratch.toggled, self.freeze_base.toggled,
                       self.unfreeze_top.valueChanged, self.epochs.valueChanged):
            signal.connect(lambda *_: self.changed.emit())
        # not the checkpoint path: a remembered one would overwrite the last run's file unasked
        remember(self, "data", "download", "scratch", "freeze_base", "unfreeze_top", "optimizer", "lr",
                 "momentum", "weight_decay", "schedule", "batch_size", "epochs", "seed", "precision",
                 "channels_last", "rotation", "width_shift", "height_shift", "shear", "zoom", "hflip", "fill")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Image folder (one sub-folder per class)")
        if folder:
            self.data.setText(f"folder:{folder}")

    def request(self, model: ModelHandle, out: Path | None = None) -> TrainRequest:
        """A new run of ``model`` with the form's settings; ``UserError`` for an impossible combination."""
        return TrainRequest(out=out, model=model, data=self.data.text().strip(), config=self.config(),
                            scratch=self.scratch.isChecked(), download=self.download.isChecked())

    def augmentation(self) -> Augmentation:
        return Augmentation(rotation=self.rotation.value(), width_shift=self.width_shift.value(),
                            height_shift=self.height_shift.value(), shear=self.shear.value(), zoom=self.zoom.value(),
                            hflip=self.hflip.isChecked(), fill=self.fill.currentText())

    def config(self) -> TrainConfig:
        """The settings as a ``TrainConfig``; ``UserError`` for an impossible combination."""
        return TrainConfig(epochs=self.epochs.value(), batch_size=self.batch_size.value(), lr=self.lr.value(),
                           optimizer=self.optimizer.currentText(), momentum=self.momentum.value(),
                           weight_decay=self.weight_decay.value(), schedule=self.schedule.currentText(),
                           freeze_base=self.freeze_base.isChecked(),
                           unfreeze_top=self.unfreeze_top.value() if self.freeze_base.isChecked() else 0,
                           seed=self.seed.value(), augment=self.augmentation(),
                           precision=self.precision.currentText(), channels_last=self.channels_last.currentText())
