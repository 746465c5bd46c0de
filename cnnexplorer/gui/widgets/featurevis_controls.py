"""The feature-visualisation chooser: objective, channels, preset, parameterisation, transforms
and regularisers, with Start/Restart, Cancel and a progress bar.

Steps, size, parameterisation, transforms, step rule and lr start at the preset's values (the
``course`` preset: the course's plain recipe, normalised steps from grey); changing the preset
resets them. Options an objective does not use are disabled (channels for the image-based ones,
blur for FFT images, the class model's λ for all but the logit, the α-norm and TV weights for all
but the inversion).
The controls give the picture's ``FeatureVisOptions``; which units to show depends on the
session too (the current unit, a layer's channel count), so the view fills those in.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QWidget)

from cnnexplorer.core.featurevis import IMAGE_KINDS, OBJECTIVES, PARAMETERISATIONS, PRESETS, Settings, preset
from cnnexplorer.core.featurevis.optimize import STEP_RULES
from cnnexplorer.core.featurevis.units import parse_units
from cnnexplorer.gui.remembered import remember
from cnnexplorer.gui.widgets.flow_layout import FlowLayout, control_group
from cnnexplorer.gui.widgets.spin_boxes import DoubleSpinBox, SpinBox
from cnnexplorer.pictures.featurevis import FeatureVisOptions

LABELS = {"channel": "Channel (mean)", "neuron": "Neuron (centre)", "logit": "Class logit − λ‖I‖²",
          "diversity": "Diversity (one channel)", "deepdream": "DeepDream (image)",
          "inversion": "Inversion (image)"}
CHANNEL_MODES = ("current unit", "range", "all")


class FeatureVisControls(QWidget):
    start_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.objective = QComboBox()
        for kind in OBJECTIVES:
            self.objective.addItem(LABELS[kind], kind)
        self.channels = QComboBox()
        self.channels.addItems(CHANNEL_MODES)
        self.channel_text = QLineEdit("0-15")
        self.channel_text.setPlaceholderText("0-15 or 3,5,8-10")
        self.channel_text.setMaximumWidth(110)
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.preset.setCurrentText("quick")
        self.steps = SpinBox()
        self.steps.setRange(1, 10_000)
        self.size = SpinBox()
        self.size.setRange(16, 1024)
        self.size.setSingleStep(16)
        self.size.setSuffix(" px")
        self.param = QComboBox()
        self.param.addItems(list(PARAMETERISATIONS))
        self.param.setCurrentText(Settings().param)
        self.param.setToolTip("fft: Fourier-space image with decorrelated colour (Lucid's); pixel: pixels through a "
                              "sigmoid; grey: plain pixels from grey (the course's)")
        self.step = QComboBox()
        self.step.addItems(list(STEP_RULES))
        self.step.setToolTip("adam, or normalised: each step moves the image by lr (root mean square), the course's rule")
        self.transforms = QCheckBox("transforms")
        self.transforms.setToolTip("pad, jitter, random scale and rotation every step (Lucid's standard set)")
        self.transforms.setChecked(True)
        self.lr = self._weight(0.05, "learning rate (adam), or each step's length (normalised)", 0.001, 1.0)
        self.l2 = self._weight(0.0, "weight of −‖I − ½‖² (L2 regulariser)")
        self.tv = self._weight(0.0, "weight of −total variation (smoothness)")
        defaults = Settings()
        self.class_l2 = self._weight(defaults.logit_l2, "class model: λ in S_c(I) − λ‖I − ½‖² (0: the course's "
                                     "white-noise result)")
        self.inversion_alpha = self._weight(defaults.alpha, "inversion: the α-norm's exponent", 1.0, 100.0)
        self.inversion_alpha_weight = self._weight(defaults.alpha_weight, "inversion: the α-norm's weight")
        self.inversion_tv = self._weight(defaults.inversion_tv, "inversion: the total variation's weight")
        self.diversity = self._weight(Settings().diversity, "weight of the diversity term (Diversity objective)", 0.0, 10_000.0)
        self.blur_every = SpinBox()
        self.blur_every.setRange(0, 1000)
        self.blur_every.setSpecialValueText("off")
        self.blur_every.setToolTip("blur the image every k steps (pixel parameterisation only)")
        self.seed = SpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(200)

        layout = FlowLayout(self)
        controls = [("Objective", self.objective), ("Channels", self.channels, self.channel_text),
                    ("Preset", self.preset), ("Steps", self.steps), ("Size", self.size),
                    (None, self.start_button, self.cancel_button, self.bar),
                    ("Parameterisation", self.param), (None, self.transforms), ("Step", self.step), ("lr", self.lr),
                    ("L2", self.l2), ("TV", self.tv), ("Blur every", self.blur_every), ("Class λ", self.class_l2),
                    ("Inversion α", self.inversion_alpha, QLabel("weight"), self.inversion_alpha_weight,
                     QLabel("TV"), self.inversion_tv),
                    ("Diversity", self.diversity), ("Seed", self.seed)]
        for label, *widgets in controls:
            layout.addWidget(control_group(*([QLabel(label)] if label else []), *widgets))

        self.preset.currentTextChanged.connect(self._apply_preset)
        for combo in (self.objective, self.channels, self.param):
            combo.currentIndexChanged.connect(self._enable)
        self.start_button.clicked.connect(self.start_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self._apply_preset(self.preset.currentText())
        self._enable()
        remember(self, "objective", "channels", "channel_text", "preset", "steps", "size", "param", "transforms",
                 "step", "lr", "l2", "tv", "blur_every", "class_l2", "inversion_alpha", "inversion_alpha_weight",
                 "inversion_tv", "diversity", "seed")

    @staticmethod
    def _weight(value: float, tip: str, low: float = 0.0, high: float = 100.0) -> DoubleSpinBox:
        box = DoubleSpinBox()
        box.setRange(low, high)
        box.setDecimals(3)
        box.setSingleStep(0.01)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    def _apply_preset(self, name: str) -> None:
        settings = preset(name)
        self.steps.setValue(settings.steps)
        self.size.setValue(settings.size)
        self.param.setCurrentText(settings.param)
        self.transforms.setChecked(settings.transforms)
        self.step.setCurrentText(settings.step)
        self.lr.setValue(settings.lr)

    def _enable(self, *_) -> None:
        kind = self.objective.currentData()
        by_image = kind in IMAGE_KINDS
        self.channels.setEnabled(not by_image)
        self.channel_text.setEnabled(not by_image and self.channels.currentText() == "range")
        self.param.setEnabled(not by_image)
        self.size.setEnabled(not by_image)
        self.diversity.setEnabled(kind == "diversity")
        self.class_l2.setEnabled(kind == "logit")
        for box in (self.inversion_alpha, self.inversion_alpha_weight, self.inversion_tv):
            box.setEnabled(kind == "inversion")
        self.blur_every.setEnabled(by_image or self.param.currentText() == "pixel")

    def set_kind(self, kind: str) -> None:
        self.objective.setCurrentIndex(self.objective.findData(kind))

    def options(self) -> FeatureVisOptions:
        """The chosen objective, preset and settings; units None (see the module's note)."""
        kind = self.objective.currentData()
        steps = self.steps.value()
        return FeatureVisOptions(
            kind, None, self.preset.currentText(), size=self.size.value(), steps=steps, lr=self.lr.value(),
            param="pixel" if kind in IMAGE_KINDS else self.param.currentText(),
            transforms=self.transforms.isChecked(), l2=self.l2.value(), tv=self.tv.value(),
            blur_every=self.blur_every.value() if self.blur_every.isEnabled() else 0,
            diversity=self.diversity.value(), step=self.step.currentText(), logit_l2=self.class_l2.value(),
            alpha=self.inversion_alpha.value(), alpha_weight=self.inversion_alpha_weight.value(),
            inversion_tv=self.inversion_tv.value(),
            preview_every=max(1, min(preset(self.preset.currentText()).preview_every, steps // 4 or 1)))

    def channel_mode(self) -> str:
        """One of ``CHANNEL_MODES``."""
        return self.channels.currentText()

    def range_units(self) -> list[int]:
        """The units typed in the range box (``UserError`` for text that names none)."""
        return parse_units(self.channel_text.text())

    def set_running(self, running: bool, has_result: bool) -> None:
        self.start_button.setText("Restart" if running or has_result else "Start")
        self.cancel_button.setEnabled(running)
        if not running:
            self.bar.setValue(self.bar.maximum() if has_result else 0)

    def set_fraction(self, fraction: float) -> None:
        self.bar.setRange(0, 1000)
        self.bar.setValue(int(fraction * 1000))
