"""The attack chooser: attack, budget ε, step size α, steps and target class, with Run and Cancel.

Each attack shows only the options it takes (FGSM has no steps; DeepFool, C&W and the class
score ascent have no ε; only BIM, PGD and the ascent take a step size; DeepFool has no target,
the ascent always has one). ε and α are set in grey levels (k/255) for the L∞ attacks and the
ascent, and as L2 norms for PGD-L2; the defaults are the attack's own (torchattacks': 8/255,
α 2/255, 10 steps). The controls give the picture's ``AdversarialOptions``.
"""

from __future__ import annotations

import inspect

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QLabel, QProgressBar,
                               QPushButton, QWidget)

from cnnexplorer.core.adversarial import ATTACKS
from cnnexplorer.gui.remembered import remember
from cnnexplorer.gui.widgets.class_box import ClassBox
from cnnexplorer.gui.widgets.flow_layout import FlowLayout, control_group
from cnnexplorer.gui.widgets.spin_boxes import DoubleSpinBox, SpinBox
from cnnexplorer.pictures.adversarial import AdversarialOptions

LABELS = {"fgsm": "FGSM", "bim": "BIM (I-FGSM)", "pgd": "PGD L∞", "pgd-l2": "PGD L2", "deepfool": "DeepFool",
          "cw": "Carlini–Wagner L2", "ascent": "Class-score ascent"}
UNTARGETED = ("deepfool",)
ALWAYS_TARGETED = ("ascent",)


def _default(name: str, option: str):
    parameter = inspect.signature(ATTACKS[name]).parameters.get(option)
    return None if parameter is None else parameter.default


class AttackControls(QWidget):
    run_requested = Signal()
    cancel_requested = Signal()
    targeted_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.attack = QComboBox()
        for name in ATTACKS:
            self.attack.addItem(LABELS[name], name)
        self.attack.setCurrentIndex(list(ATTACKS).index("pgd"))
        self.attack.setToolTip("The attack; all work on [0,1] pixels and judge the 8-bit image")
        self.eps_label = QLabel("ε")
        self.eps = DoubleSpinBox()
        self.eps.setToolTip("Budget: the largest change of a pixel (L∞, in grey levels) or of the image (L2)")
        self.alpha_label = QLabel("α")
        self.alpha = DoubleSpinBox()
        self.alpha.setToolTip("Step size: how far each iteration moves the image (L∞: grey levels per pixel; L2: norm)")
        self.steps_label = QLabel("steps")
        self.steps = SpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setToolTip("Iterations of the attack")
        self.targeted = QCheckBox("target")
        self.targeted.setToolTip("Push the image towards a chosen class instead of away from its own")
        self.target = ClassBox()
        self.target.setToolTip("The class to push the image towards: type part of its name or number")
        self.run_button = QPushButton("Attack")
        self.run_button.setToolTip("Run the attack on the current image")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(100)
        self.progress.setMaximumHeight(16)
        self.progress.setTextVisible(False)
        layout = FlowLayout(self)
        for group in ((self.attack,), (self.eps_label, self.eps), (self.alpha_label, self.alpha),
                      (self.steps_label, self.steps),
                      (self.targeted, self.target), (self.run_button, self.cancel_button, self.progress)):
            layout.addWidget(control_group(*group))
        self.attack.currentIndexChanged.connect(self._attack_changed)
        self.targeted.toggled.connect(self._targeted_toggled)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self._attack_changed()
        remember(self, "attack", "eps", "alpha", "steps")

    def name(self) -> str:
        return self.attack.currentData()

    def set_attack(self, name: str) -> None:
        self.attack.setCurrentIndex(list(ATTACKS).index(name))

    def set_classes(self, names: list[str]) -> None:
        self.target.set_classes(names)

    def set_target(self, index: int) -> None:
        self.target.set_class(index)

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if not running:
            self.progress.reset()

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def options(self) -> AdversarialOptions:
        """The chosen attack and its options; the target's index (``UserError`` for text naming no one class)."""
        name = self.name()
        eps = None
        if _default(name, "eps") is not None:
            eps = self.eps.value() / 255 if name != "pgd-l2" else self.eps.value()
        alpha = None
        if _default(name, "alpha") is not None:
            alpha = self.alpha.value() / 255 if name != "pgd-l2" else self.alpha.value()
        steps = self.steps.value() if _default(name, "steps") is not None else None
        target = self.target.typed_class() if self.targeted.isChecked() else None
        return AdversarialOptions(name, eps, alpha, steps, target)

    def _attack_changed(self, *_) -> None:
        name = self.name()
        eps, alpha = _default(name, "eps"), _default(name, "alpha")
        l2 = name == "pgd-l2"
        for box, default, levels in ((self.eps, eps, (1, 64)), (self.alpha, alpha, (0.25, 64))):
            box.setDecimals(2)
            box.setRange(0.01, 50.0) if l2 else box.setRange(*levels)
            box.setSingleStep(0.1 if l2 else 1)
            box.setSuffix("" if l2 else " / 255")
            if default is not None:
                box.setValue(default if l2 else default * 255)
        self.eps.setDecimals(2 if l2 else 0)
        steps = _default(name, "steps")
        if steps is not None:
            self.steps.setValue(steps)
        for widget, shown in ((self.eps_label, eps is not None), (self.eps, eps is not None),
                              (self.alpha_label, alpha is not None), (self.alpha, alpha is not None),
                              (self.steps_label, steps is not None), (self.steps, steps is not None)):
            widget.setEnabled(shown)
        self.targeted.setEnabled(name not in UNTARGETED + ALWAYS_TARGETED)
        if name in UNTARGETED:
            self.targeted.setChecked(False)
        elif name in ALWAYS_TARGETED:
            self.targeted.setChecked(True)
        self.target.setEnabled(self.targeted.isChecked())

    def _targeted_toggled(self, on: bool) -> None:
        self.target.setEnabled(on)
        self.targeted_changed.emit(on)
