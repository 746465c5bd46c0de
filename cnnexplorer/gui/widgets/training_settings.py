"""The training form: data, model (scratch / transfer: a new head, a frozen base, the layers unfrozen and their
rate), optimiser, schedule and augmentation.

It only collects values; ``request()`` turns them into the core ``TrainRequest`` (whose
``TrainConfig`` checks them), the run ``cnnexplorer train`` makes from its flags. ``changed`` fires
when a value that decides what a run does to the model changes, so the tab can say it again.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QVBoxLayout, QWidget)

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_handle import ModelHandle
from cnnexplorer.core.training.aux_outputs import AUX_WEIGHT
from cnnexplorer.core.training.augment import FILL_MODES, Augmentation
from cnnexplorer.core.training.config import CHANNELS_LAST, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig
from cnnexplorer.core.training.data import DATASPEC_HELP
from cnnexplorer.core.training.heads import HEAD_HELP, has_auxiliary_heads, parse_head
from cnnexplorer.core.training.run import TrainRequest
from cnnexplorer.core.training.transfer import base_layers
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
        self.head = QLineEdit()
        self.head.setPlaceholderText("none, or e.g. 256,relu,dropout=0.5")
        self.head.setToolTip("A new head in place of the model's whole top (what follows its convolutional base, "
                             "as Keras's include_top=False): " + HEAD_HELP)
        self.head_problem = QLabel()
        self.head_problem.setWordWrap(True)
        self.head_problem.setStyleSheet("color: #b00020")
        self.head_problem.hide()
        self.binary = QCheckBox("one sigmoid output (two classes)")
        self.binary.setToolTip("A single output unit with a sigmoid and binary cross-entropy, as the course's "
                               "cats-vs-dogs model; the data must have exactly 2 classes")
        self.freeze_base = QCheckBox("freeze the base")
        self.freeze_base.setToolTip("Train only the head (the new one, or the model's top after its convolutional "
                                    "base) and the base layers unfrozen below: transfer learning")
        self.unfreeze_top = _spin(0, 1000, 0)
        self.unfreeze_top.setToolTip("with a frozen base: also train the base's top N blocks (fine-tuning)")
        self.unfreeze_from = QComboBox()
        self.unfreeze_from.setEditable(True)
        self.unfreeze_from.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.unfreeze_from.setToolTip("with a frozen base: also train every base layer from this one on, in the "
                                      "order the model lists them (VGG16's block5_conv1 is features.24)")
        self.unfreeze_from.lineEdit().setPlaceholderText("none")
        for control in (self.unfreeze_top, self.unfreeze_from):
            control.setEnabled(False)
            self.freeze_base.toggled.connect(control.setEnabled)
        self.base_lr = _spin(0.0, 10.0, 0.0, decimals=6, step=1e-5)
        self.base_lr.setSpecialValueText("same as the head")
        self.base_lr.setToolTip("The learning rate of the base's trained layers (a second optimiser parameter "
                                "group), usually lower than the head's when fine-tuning")
        self.aux = QCheckBox(f"auxiliary losses (×{AUX_WEIGHT:g})")
        self.aux.setChecked(True)
        self.aux.setToolTip("GoogLeNet and Inception v3 train with their auxiliary classifiers' losses added, "
                            f"weighted {AUX_WEIGHT:g} as their authors did; unchecked, the main head's loss alone")
        self.aux.hide()

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
        self.processes = _spin(1, 64, 1)
        self.processes.setToolTip("1: train in this app. N > 1: N processes launched with torchrun (one per GPU on "
                                  "CUDA, else N CPU processes with gloo); the batch size is per process, so the global "
                                  "batch is N × it. The curves are rank 0's merged figures; Stop ends the processes "
                                  "and keeps the last epoch's checkpoint")

        groups = (
            ("Data", [("data", data_row), ("", self.download), ("save to", self.out)]),
            ("Model", [("", self.scratch), ("new head", self.head), ("", self.head_problem), ("", self.binary),
                       ("", self.freeze_base), ("unfreeze top", self.unfreeze_top),
                       ("unfreeze from", self.unfreeze_from), ("base's rate", self.base_lr), ("", self.aux)]),
            ("Optimisation", [("optimiser", self.optimizer), ("learning rate", self.lr), ("momentum", self.momentum),
                              ("weight decay", self.weight_decay), ("schedule", self.schedule),
                              ("batch size", self.batch_size), ("epochs", self.epochs), ("seed", self.seed),
                              ("precision", self.precision), ("channels-last", self.channels_last)]),
            ("Augmentation", [("rotation °", self.rotation), ("width shift", self.width_shift),
                              ("height shift", self.height_shift), ("shear °", self.shear), ("zoom ±", self.zoom),
                              ("", self.hflip), ("fill mode", self.fill)]),
            ("Processes", [("processes", self.processes)]),
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for title, rows in groups:
            box = QGroupBox(title)
            form = QFormLayout(box)
            for label, widget in rows:
                if label:
                    form.addRow(label, widget)
                else:  # a check box or a note takes the whole width: the column is narrow
                    form.addRow(widget)
            layout.addWidget(box)
        layout.addStretch(1)
        self.head.textChanged.connect(self._check_head)
        for signal in (self.data.textChanged, self.scratch.toggled, self.freeze_base.toggled,
                       self.unfreeze_top.valueChanged, self.epochs.valueChanged, self.head.textChanged,
                       self.binary.toggled, self.unfreeze_from.currentTextChanged, self.base_lr.valueChanged,
                       self.lr.valueChanged, self.aux.toggled, self.processes.valueChanged,
                       self.batch_size.valueChanged):
            signal.connect(lambda *_: self.changed.emit())
        # not the checkpoint path: a remembered one would overwrite the last run's file unasked; not the layer
        # to unfreeze from, which names a layer of one model
        remember(self, "data", "download", "scratch", "head", "binary", "freeze_base", "unfreeze_top", "base_lr",
                 "aux", "optimizer", "lr", "momentum", "weight_decay", "schedule", "batch_size", "epochs", "seed",
                 "precision", "channels_last", "rotation", "width_shift", "height_shift", "shear", "zoom", "hflip",
                 "fill")

    def set_model(self, handle: ModelHandle | None) -> None:
        """Offer the model's base layers to unfreeze from, and the auxiliary losses where it has such heads."""
        text = self.unfreeze_from.currentText()
        try:
            layers = [] if handle is None else base_layers(handle.module)
        except UserError:
            layers = []
        self.unfreeze_from.blockSignals(True)
        self.unfreeze_from.clear()
        self.unfreeze_from.addItems(["", *layers])
        self.unfreeze_from.setEditText(text)
        self.unfreeze_from.blockSignals(False)
        self.aux.setVisible(handle is not None and has_auxiliary_heads(handle.module))
        self.suggest_layer(None)

    def suggest_layer(self, name: str | None) -> None:
        """The layer selected in the model tree, when it is in the base, is the suggested layer to unfreeze from."""
        found = self.unfreeze_from.findText(name) if name else -1
        self.unfreeze_from.lineEdit().setPlaceholderText(f"none (e.g. {name}, the selected layer)" if found > 0
                                                         else "none")

    def _check_head(self, text: str) -> None:
        """Say at once, under the field, why a head spec cannot be read."""
        try:
            parse_head(text)
        except UserError as exc:
            self.head_problem.setText(str(exc))
            self.head_problem.show()
        else:
            self.head_problem.hide()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Image folder (one sub-folder per class)")
        if folder:
            self.data.setText(f"folder:{folder}")

    def request(self, model: ModelHandle, out: Path | None = None) -> TrainRequest:
        """A new run of ``model`` with the form's settings; ``UserError`` for an impossible combination."""
        return TrainRequest(out=out, model=model, data=self.data.text().strip(), config=self.config(),
                            scratch=self.scratch.isChecked(), download=self.download.isChecked())

    def command_args(self, model: ModelHandle, out: Path) -> list[str]:
        """The ``cnnexplorer train`` arguments of a new run of ``model`` with the form's settings (for a run in other
        processes); ``UserError`` when the model exists only in this app (it must be opened from a spec or a file)."""
        spec = str(model.spec)
        if not (spec.startswith(("builtin:", "torchvision:", "timm:")) or Path(spec).is_file()):
            raise UserError(f"the current model ({spec}) is not in a file, so other processes cannot open it; save "
                            "it as a checkpoint and open that, or train with 1 process")
        config = self.config()  # checks the settings
        aug = config.augment
        augment = ",".join([f"{name}={value:g}" for name, value in (
            ("rotation", aug.rotation), ("width_shift", aug.width_shift), ("height_shift", aug.height_shift),
            ("shear", aug.shear), ("zoom", aug.zoom)) if value] + (["hflip"] if aug.hflip else []))
        argv = ["train", "--model", spec, "--data", self.data.text().strip(), "--out", str(out),
                "--epochs", str(config.epochs), "--batch-size", str(config.batch_size), "--lr", repr(config.lr),
                "--optimizer", config.optimizer, "--momentum", repr(config.momentum),
                "--weight-decay", repr(config.weight_decay), "--schedule", config.schedule,
                "--precision", config.precision, "--channels-last", config.channels_last,
                "--aux-weight", repr(config.aux_weight), "--seed", str(config.seed), "--head", config.head,
                "--device", "cuda" if model.device.type == "cuda" else "cpu"]
        if augment:
            argv += ["--augment", f"{augment},fill={aug.fill}"]
        if model.device.type == "cuda" and self.processes.value() > torch.cuda.device_count():
            argv += ["--backend", "gloo"]  # processes sharing a GPU: nccl needs one GPU each
        if config.base_lr is not None:
            argv += ["--base-lr", repr(config.base_lr)]
        if config.freeze_base:
            argv += ["--freeze-base", "--unfreeze-top", str(config.unfreeze_top), "--unfreeze-from",
                     config.unfreeze_from]
        flags = {"--scratch": self.scratch.isChecked(), "--binary": config.binary,
                 "--download": self.download.isChecked()}
        return argv + [flag for flag, on in flags.items() if on]

    def augmentation(self) -> Augmentation:
        return Augmentation(rotation=self.rotation.value(), width_shift=self.width_shift.value(),
                            height_shift=self.height_shift.value(), shear=self.shear.value(), zoom=self.zoom.value(),
                            hflip=self.hflip.isChecked(), fill=self.fill.currentText())

    def config(self) -> TrainConfig:
        """The settings as a ``TrainConfig``; ``UserError`` for an impossible combination."""
        frozen = self.freeze_base.isChecked()
        return TrainConfig(epochs=self.epochs.value(), batch_size=self.batch_size.value(), lr=self.lr.value(),
                           optimizer=self.optimizer.currentText(), momentum=self.momentum.value(),
                           weight_decay=self.weight_decay.value(), schedule=self.schedule.currentText(),
                           freeze_base=frozen, unfreeze_top=self.unfreeze_top.value() if frozen else 0,
                           unfreeze_from=self.unfreeze_from.currentText().strip() if frozen else "",
                           base_lr=self.base_lr.value() or None, head=self.head.text().strip(),
                           binary=self.binary.isChecked(), aux_weight=AUX_WEIGHT if self.aux.isChecked() else 0.0,
                           seed=self.seed.value(), augment=self.augmentation(),
                           precision=self.precision.currentText(), channels_last=self.channels_last.currentText())
