"""The "Adversarial" tab: fool the model on the current image, then see why.

Top: the three-panel picture (original | amplified perturbation | adversarial, top-5 each),
made by the picture's job (``pictures.adversarial``, the one ``cnnexplorer export adversarial``
runs), beside a live curve of the true and target class probabilities. Below: "Explain"
(Grad-CAM and the current layer's activations for both images and their difference, computed
after every attack) and "Robustness" (accuracy against ε for FGSM and PGD over a set of
images, one job).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QSplitter, QTabWidget, QVBoxLayout,
                               QWidget)

from cnnexplorer.core.adversarial import (AttackStep, LabelledImages, RobustnessCurve, curve_job, explain_job,
                                          save_adversarial)
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Progress
from cnnexplorer.gui.dialogs import save_as
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.adversarial_controls import AttackControls
from cnnexplorer.gui.widgets.adversarial_curve import ProbabilityCurve
from cnnexplorer.gui.widgets.adversarial_robustness import RobustnessPanel
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.workers import JobRunner
from cnnexplorer.pictures.adversarial import Attacked, run_attack
from cnnexplorer.pictures.base import Inputs

WARNING_STYLE = "color: #b35900"


def _metrics_text(report: dict) -> str:
    """The picture's report in a line: the verdict, the top class before and after, the distances."""
    before, after = report["before"], report["after"]
    psnr = report["psnr"] if report["psnr"] is not None else float("inf")
    verdict = "fooled" if report["success"] else "not fooled"
    return (f"{verdict}: {before['label']} {100 * before['prob']:.1f} % → "
            f"{after['label']} {100 * after['prob']:.1f} % · L∞ {report['linf'] * 255:.0f}/255 · "
            f"L2 {report['l2']:.3f} · PSNR {psnr:.1f} dB · SSIM {report['ssim']:.3f} · {report['iterations']} steps")


class AdversarialView(View):
    title = "Adversarial"
    view_name = "adversarial"
    waiting_for = "press Attack to make an adversarial example"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.attacked: Attacked | None = None
        self.explained = None
        self.curve_result: tuple[LabelledImages, RobustnessCurve] | None = None
        self._attack_job = None
        self._curve_job = None
        self._curve_module = None  # the model the shown curve was measured on
        self.controls = AttackControls()
        self.controls.run_requested.connect(self.run_attack)
        self.controls.cancel_requested.connect(self._cancel_attack)
        self.controls.targeted_changed.connect(self._default_target)
        self.save_button = QPushButton("Save adversarial image…")
        self.save_button.setToolTip("Write the adversarial image as a lossless PNG at the model's input size")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._save_dialog)
        self.message = QLabel()
        self.message.setWordWrap(True)
        message_row = QHBoxLayout()
        message_row.addWidget(self.message, 1)
        message_row.addWidget(self.save_button)
        self.canvas = ImageCanvas(fit="width")  # the whole width, at most 1:1: the panel's text stays readable
        self.curve = ProbabilityCurve()
        top = self.canvas
        self.gradcam_canvas = ImageCanvas(fit="width")
        self.activations_canvas = ImageCanvas(fit="width")
        self.explain_message = QLabel("Run an attack: Grad-CAM and the current layer's activations of the original "
                                      "and the adversarial image appear here.")
        self.explain_message.setWordWrap(True)
        explain = QWidget()
        explain_layout = QVBoxLayout(explain)
        explain_layout.setContentsMargins(0, 0, 0, 0)
        explain_split = QSplitter(Qt.Orientation.Vertical)  # each picture the full width: readable text
        explain_split.addWidget(self.gradcam_canvas)
        explain_split.addWidget(self.activations_canvas)
        explain_layout.addWidget(self.explain_message)
        explain_layout.addWidget(explain_split, 1)
        self.robustness = RobustnessPanel()
        self.robustness.run_requested.connect(self.run_curve)
        self.robustness.cancel_requested.connect(self._cancel_curve)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.curve, "Probability")
        self.tabs.addTab(explain, "Explain")
        self.tabs.addTab(self.robustness, "Robustness")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.controls)
        layout.addLayout(message_row)
        layout.addWidget(split, 1)
        session.model_changed.connect(self._on_model)
        session.image_changed.connect(self._clear)
        session.layer_changed.connect(self._explain)
        session.target_changed.connect(self._on_target)
        self._clear()

    # --- attacking ------------------------------------------------------------------------

    def _on_model(self, handle) -> None:
        """A new model clears the curve; the same model edited (interventions) or moved runs it again."""
        again = self.curve_result is not None and handle is not None and handle.module is self._curve_module
        self.controls.set_classes(list(handle.class_names) if handle is not None else [])
        self.robustness.clear()
        self.curve_result = None
        self._clear()
        if again:
            self.run_curve()

    def _on_target(self, index: int | None) -> None:
        if index is not None and self.controls.targeted.isChecked():
            self.controls.set_target(index)

    def _default_target(self, on: bool) -> None:
        """The clicked target class, else the runner-up: attacking towards the top-1 does nothing."""
        predictions = self.session.predictions
        target = self.session.effective_target
        if not on or target is None:
            return
        if self.session.target is None and len(predictions) > 1:
            target = predictions[1].index
        self.controls.set_target(target)

    def _clear(self, *_) -> None:
        if self._attack_job is not None:
            self._attack_job.cancel()
        self.attacked = None
        self.explained = None
        self.canvas.clear()
        self.curve.empty()
        self.gradcam_canvas.clear()
        self.activations_canvas.clear()
        self.save_button.setEnabled(False)
        self.controls.set_running(False)
        self._say("Choose an attack and press Attack to fool the model on the current image."
                  if self.session.image is not None else "Open or drop an image to attack it.")

    def _say(self, text: str, warning: bool = False) -> None:
        self.message.setStyleSheet(WARNING_STYLE if warning else "")
        self.message.setText(text)

    def run_attack(self) -> None:
        handle, image = self.session.model, self.session.image
        if handle is None or image is None:
            self._say("Load a model and open an image first.", warning=True)
            return
        try:
            options = self.controls.options()
        except UserError as exc:
            self._say(str(exc), warning=True)
            return
        self._clear()
        target = options.target
        predicted = self.session.predictions[0].label if self.session.predictions else "the prediction"
        self.curve.reset(predicted, f"target: {handle.label(target)}" if target is not None else "most likely other")
        self.tabs.setCurrentWidget(self.curve)  # the attack's live curve
        self.controls.set_running(True)
        self.controls.set_progress(0, options.steps or 1)
        self._say(f"Running {options.attack} on {image.name} …")
        inputs = Inputs(handle, image)
        job = self.jobs.start(lambda: run_attack(inputs, options), kind="adversarial-attack",
                              label=f"{options.attack} on {image.name}", on_item=self._on_step, on_result=self._show,
                              on_error=self._attack_failed, on_finished=lambda: self._attack_ended(job))
        self._attack_job = job

    def _on_step(self, step) -> None:
        if isinstance(step, AttackStep):
            self.curve.add(step)
            self.controls.progress.setValue(min(step.iteration, self.controls.progress.maximum()))

    def _cancel_attack(self) -> None:
        if self._attack_job is not None:
            self._attack_job.cancel()
        self.controls.set_running(False)
        self._say("Attack cancelled.")

    def _attack_ended(self, job) -> None:
        """However the current attack ended (also by the status bar's Cancel), the buttons are free."""
        if job is self._attack_job:
            self.controls.set_running(False)

    def _attack_failed(self, exc: BaseException) -> bool:
        if not isinstance(exc, UserError):
            return False
        self._say(str(exc), warning=True)
        return True

    def _show(self, attacked: Attacked) -> None:
        self.attacked = attacked
        self.canvas.set_pixels(attacked.picture.pixels)
        self.save_button.setEnabled(True)
        self._say(_metrics_text(attacked.picture.report), warning=not attacked.picture.report["success"])
        self._explain()

    # --- attack then explain --------------------------------------------------------------

    def _explain(self, *_) -> None:
        attacked = self.attacked
        if attacked is None:
            return
        handle, layer = self.session.model, self.session.layer
        self.explain_message.setText("Explaining …")
        self.jobs.start(lambda: explain_job(handle, attacked.result, layer), kind="adversarial-explain",
                        label="explaining the attack", on_result=lambda e: self._show_explanation(attacked, e),
                        on_error=self._explain_failed)

    def _explain_failed(self, exc: BaseException) -> bool:
        if not isinstance(exc, UserError):
            return False
        self.explain_message.setText(str(exc))
        return True

    def _show_explanation(self, attacked: Attacked, explanation) -> None:
        if attacked is not self.attacked:
            return
        self.explained = explanation
        self.gradcam_canvas.set_pixels(explanation.gradcam)
        if explanation.activations is None:
            self.activations_canvas.clear()
            hint = "Select a layer in the Model tree to compare its activations too."
        else:
            self.activations_canvas.set_pixels(explanation.activations)
            hint = f"Right: {explanation.layer}, original | adversarial | difference."
        self.explain_message.setText(f"Left: Grad-CAM of each image's top-1 class and the change. {hint}")

    # --- robustness -----------------------------------------------------------------------

    def run_curve(self) -> None:
        handle = self.session.model
        if handle is None:
            self.robustness.caption.setText("Load a model first.")
            return
        try:
            options = self.robustness.options()
        except UserError as exc:
            self.robustness.caption.setText(str(exc))
            return
        self.robustness.clear()
        self.robustness.set_running(True)
        self.robustness.caption.setText(f"Attacking up to {options.limit} images at {len(options.eps)} budgets …")
        job = self.jobs.start(lambda: curve_job(handle, options), kind="adversarial-curve", label="robustness curve",
                              on_progress=self._curve_progress, on_result=self._show_curve,
                              on_error=self._curve_failed, on_finished=lambda: self._curve_ended(job))
        self._curve_job = job

    def _curve_progress(self, progress: Progress) -> None:
        if progress.fraction is not None:
            self.robustness.set_progress(progress.fraction)

    def _curve_ended(self, job) -> None:
        if job is self._curve_job:
            self.robustness.set_running(False)

    def _cancel_curve(self) -> None:
        if self._curve_job is not None:
            self._curve_job.cancel()
        self.robustness.set_running(False)
        self.robustness.caption.setText("Robustness curve cancelled.")

    def _curve_failed(self, exc: BaseException) -> bool:
        if not isinstance(exc, UserError):
            return False
        self.robustness.caption.setText(str(exc))
        return True

    def _show_curve(self, value) -> None:
        self.curve_result, self._curve_module = value, self.session.model.module
        self.robustness.show_curve(*value)

    # --- saving and export ----------------------------------------------------------------

    def save_adversarial_image(self, path: str | Path) -> Path:
        """Write the adversarial image as a lossless PNG; raises ``UserError`` when there is none."""
        if self.attacked is None:
            raise UserError("run an attack first; there is no adversarial image to save")
        return save_adversarial(path, self.attacked.result)

    def _save_dialog(self) -> None:
        if self.attacked is None:
            return
        start = str(self.session.image.beside("_adversarial.png"))
        written = save_as(self, "Save adversarial image", start, "PNG images (*.png)", self.save_adversarial_image)
        if written is not None:
            self._say(f"wrote {written}")

    def picture(self) -> tuple[np.ndarray, dict] | None:
        if self.attacked is None:
            return None
        return self.attacked.picture.pixels, self.attacked.picture.settings
