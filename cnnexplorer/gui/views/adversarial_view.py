"""The "Adversarial" tab: fool the model on the current image, then see why.

Top: the core three-panel picture (original | amplified perturbation | adversarial, top-5
each, the same pixels as ``cnnexplorer export adversarial``) beside a live curve of the true
and target class probabilities. Below: "Explain" (Grad-CAM and the current layer's
activations for both images and their difference, computed after every attack) and
"Robustness" (accuracy against ε for FGSM and PGD over a set of images, one job).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QSplitter, QTabWidget, QVBoxLayout,
                               QWidget)

from cnnexplorer.core.adversarial import (AttackResult, AttackStep, LabelledImages, RobustnessCurve, attack_image,
                                          curve_images, explain_job, render_adversarial_panel, robustness_curve,
                                          save_adversarial)
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.images import LoadedImage
from cnnexplorer.core.jobs import Progress
from cnnexplorer.gui.dialogs import save_as
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.widgets.adversarial_controls import AttackChoice, AttackControls
from cnnexplorer.gui.widgets.adversarial_curve import ProbabilityCurve
from cnnexplorer.gui.widgets.adversarial_robustness import CurveOptions, RobustnessPanel
from cnnexplorer.gui.workers import JobRunner

WARNING_STYLE = "color: #b35900"


@dataclass(frozen=True)
class Attacked:
    """A finished attack on one image, with its picture."""

    handle: object
    image: LoadedImage
    choice: AttackChoice
    result: AttackResult
    pixels: np.ndarray


@dataclass(frozen=True)
class CurveFraction:
    """How far the robustness job has come, for the panel's own bar."""

    fraction: float


def attack_job(handle, image: LoadedImage, choice: AttackChoice, seed: int = 0):
    """Attack the image (yielding ``AttackStep``s); returns an ``Attacked`` with the panel picture."""
    yield Progress(0, None, f"{choice.name} on {image.name}")
    pixels = handle.preprocessing.to_tensor(image.image)
    result = yield from attack_image(handle, pixels, choice.attack(), choice.target, seed)
    return Attacked(handle, image, choice, result, render_adversarial_panel(result, handle.class_names))


def curve_job(handle, options: CurveOptions, seed: int = 0):
    """Load the images, then attack them at every budget; returns ``(LabelledImages, RobustnessCurve)``."""
    data = yield from curve_images(handle, options.source, options.limit)
    job = robustness_curve(handle.pixel_model(), data.images, data.labels, options.eps, steps=options.steps,
                           seed=seed)
    try:
        while True:
            try:
                item = next(job)
            except StopIteration as stop:
                return data, stop.value
            yield item
            if isinstance(item, Progress) and item.fraction is not None:
                yield CurveFraction(item.fraction)
    finally:
        job.close()


def _metrics_text(attacked: Attacked) -> str:
    result = attacked.result
    psnr = float(result.psnr[0])
    before, after = (result.top(0, 1, after=a, class_names=attacked.handle.class_names)[0] for a in (False, True))
    verdict = "fooled" if bool(result.success[0]) else "not fooled"
    return (f"{verdict}: {before.label} {100 * before.prob:.1f} % → {after.label} {100 * after.prob:.1f} % · "
            f"L∞ {float(result.linf[0]) * 255:.0f}/255 · L2 {float(result.l2[0]):.3f} · "
            f"PSNR {psnr:.1f} dB · SSIM {float(result.ssim[0]):.3f} · {int(result.iterations[0])} steps")


class AdversarialView(View):
    title = "Adversarial"
    view_name = "adversarial"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.attacked: Attacked | None = None
        self.explained = None
        self.curve_result: tuple[LabelledImages, RobustnessCurve] | None = None
        self._attack_job = None
        self._curve_job = None
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
        self.canvas = ImageCanvas()
        self.curve = ProbabilityCurve()
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.canvas)
        top.addWidget(self.curve)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        self.gradcam_canvas = ImageCanvas()
        self.activations_canvas = ImageCanvas()
        self.explain_message = QLabel("Run an attack: Grad-CAM and the current layer's activations of the original "
                                      "and the adversarial image appear here.")
        self.explain_message.setWordWrap(True)
        explain = QWidget()
        explain_layout = QVBoxLayout(explain)
        explain_layout.setContentsMargins(0, 0, 0, 0)
        explain_split = QSplitter(Qt.Orientation.Horizontal)
        explain_split.addWidget(self.gradcam_canvas)
        explain_split.addWidget(self.activations_canvas)
        explain_layout.addWidget(self.explain_message)
        explain_layout.addWidget(explain_split, 1)
        self.robustness = RobustnessPanel()
        self.robustness.run_requested.connect(self.run_curve)
        self.robustness.cancel_requested.connect(self._cancel_curve)
        self.tabs = QTabWidget()
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
        jobs.busy_changed.connect(self._on_busy)
        self._clear()

    # --- attacking ------------------------------------------------------------------------

    def _on_model(self, handle) -> None:
        self.controls.set_classes(list(handle.class_names) if handle is not None else [])
        self.robustness.clear()
        self.curve_result = None
        self._clear()

    def _on_busy(self, busy: bool) -> None:
        """Jobs cancelled elsewhere (the status bar's Cancel) report nothing: reset the buttons."""
        if busy:
            return
        self.controls.set_running(False)
        self.robustness.set_running(False)

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
            choice = self.controls.choice()
        except UserError as exc:
            self._say(str(exc), warning=True)
            return
        self._clear()
        names = handle.class_names
        target = choice.target
        predicted = self.session.predictions[0].label if self.session.predictions else "the prediction"
        self.curve.reset(predicted, f"target: {names[target]}" if target is not None else "most likely other")
        self.controls.set_running(True)
        self.controls.set_progress(0, choice.steps or 1)
        self._say(f"Running {choice.name} on {image.name} …")
        self._attack_job = self.jobs.start(lambda: attack_job(handle, image, choice), kind="adversarial-attack",
                                           label=f"{choice.name} on {image.name}", on_item=self._on_step,
                                           on_result=self._show, on_error=self._attack_failed)

    def _on_step(self, step) -> None:
        if isinstance(step, AttackStep):
            self.curve.add(step)
            self.controls.progress.setValue(min(step.iteration, self.controls.progress.maximum()))

    def _cancel_attack(self) -> None:
        if self._attack_job is not None:
            self._attack_job.cancel()
        self.controls.set_running(False)
        self._say("Attack cancelled.")

    def _attack_failed(self, exc: BaseException) -> bool:
        self.controls.set_running(False)
        if not isinstance(exc, UserError):
            return False
        self._say(str(exc), warning=True)
        return True

    def _show(self, attacked: Attacked) -> None:
        self.controls.set_running(False)
        if attacked.handle is not self.session.model or attacked.image is not self.session.image:
            return
        self.attacked = attacked
        self.canvas.set_pixels(attacked.pixels)
        self.save_button.setEnabled(True)
        success = bool(attacked.result.success[0])
        self._say(_metrics_text(attacked), warning=not success)
        self._explain()

    # --- attack then explain --------------------------------------------------------------

    def _explain(self, *_) -> None:
        attacked = self.attacked
        if attacked is None:
            return
        layer = self.session.layer
        self.explain_message.setText("Explaining …")
        self.jobs.start(lambda: explain_job(attacked.handle, attacked.result, layer), kind="adversarial-explain",
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
        self._curve_job = self.jobs.start(lambda: curve_job(handle, options), kind="adversarial-curve",
                                          label="robustness curve", on_item=self._curve_step,
                                          on_result=self._show_curve, on_error=self._curve_failed)

    def _curve_step(self, item) -> None:
        if isinstance(item, CurveFraction):
            self.robustness.set_progress(item.fraction)

    def _cancel_curve(self) -> None:
        if self._curve_job is not None:
            self._curve_job.cancel()
        self.robustness.set_running(False)
        self.robustness.caption.setText("Robustness curve cancelled.")

    def _curve_failed(self, exc: BaseException) -> bool:
        self.robustness.set_running(False)
        if not isinstance(exc, UserError):
            return False
        self.robustness.caption.setText(str(exc))
        return True

    def _show_curve(self, value) -> None:
        self.robustness.set_running(False)
        self.curve_result = value
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
        start = str(self.attacked.image.path.with_name(f"{self.attacked.image.path.stem}_adversarial.png"))
        written = save_as(self, "Save adversarial image", start, "PNG images (*.png)", self.save_adversarial_image)
        if written is not None:
            self._say(f"wrote {written}")

    def picture(self) -> tuple[np.ndarray, dict] | None:
        if self.attacked is None:
            return None
        settings = {**self.attacked.choice.attack().settings(), "target": self.attacked.choice.target,
                    "resolution": list(self.attacked.result.original.shape[2:])}
        return self.attacked.pixels, settings
