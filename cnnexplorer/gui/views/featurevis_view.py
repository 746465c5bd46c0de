"""The "Feature vis" tab: images that maximise channels of the current layer, by gradient ascent.

One worker runs the picture's job (``pictures.featurevis``, the one ``cnnexplorer export
featurevis`` runs); its ``Step``s carry the current images, so the grid fills in and sharpens
live while the optimisation runs. A click on a tile shows it large with its objective curve.
Export writes the finished grid with its settings; "Export this image" the clicked tile alone.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton, QSplitter, QVBoxLayout, QWidget

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.featurevis import IMAGE_KINDS, Step, default_units, featurevis_grid, shown_units
from cnnexplorer.core.featurevis.units import MAX_UNITS
from cnnexplorer.core.grids import GridLayout
from cnnexplorer.gui.dialogs import save_as
from cnnexplorer.gui.session import Session, Unit
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.widgets.featurevis_controls import FeatureVisControls
from cnnexplorer.gui.widgets.featurevis_curve import ObjectiveCurve
from cnnexplorer.gui.workers import JobRunner
from cnnexplorer.pictures.base import Inputs, save_picture
from cnnexplorer.pictures.featurevis import FeatureVis, FeatureVisOptions, run_featurevis

WARNING_STYLE = "color: #b35900"
TILE_HINT = "Click a tile to see it large, with its objective curve."


def units_text(kind: str, units) -> str:
    """``channel 5``, ``channels 0–15``, ``classes 3, 7``: what an objective maximises, with its numbers."""
    if kind in IMAGE_KINDS or not units:
        return kind
    noun = {"logit": "class", "diversity": "channel"}.get(kind, kind)
    shown = sorted(set(units))
    if len(shown) == 1:
        return f"{noun} {shown[0]}"
    plural = "classes" if noun == "class" else f"{noun}s"
    if shown == list(range(shown[0], shown[-1] + 1)):
        return f"{plural} {shown[0]}–{shown[-1]}"
    return f"{plural} " + ", ".join(map(str, shown[:8])) + (" …" if len(shown) > 8 else "")


class FeatureVisView(View):
    title = "Feature vis"
    view_name = "featurevis"
    waiting_for = "press Start to optimise the images"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.finished: FeatureVis | None = None
        self.selected: int | None = None
        self.steps_seen = 0
        self._job = None
        self._run: tuple | None = None  # (options, layer, units shown) of the running job
        self._previews: np.ndarray | None = None  # [N,H,W,C] uint8, the live images
        self._history: np.ndarray | None = None  # [steps, N]
        self._layout: GridLayout | None = None
        self.controls = FeatureVisControls()
        self.controls.start_requested.connect(self.start)
        self.controls.cancel_requested.connect(self.cancel)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.grid = ImageCanvas()
        self.grid.scene().sigMouseClicked.connect(self._on_click)
        self.tile = ImageCanvas()
        self.tile.setMinimumSize(220, 220)
        self.tile_title = QLabel(TILE_HINT)
        self.tile_title.setWordWrap(True)
        self.curve = ObjectiveCurve()
        self.export_tile_button = QPushButton("Export this image…")
        self.export_tile_button.setEnabled(False)
        self.export_tile_button.clicked.connect(self._export_tile_dialog)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        for widget, stretch in ((self.tile_title, 0), (self.tile, 3), (self.curve, 2), (self.export_tile_button, 0)):
            side_layout.addWidget(widget, stretch)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.grid)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        for widget, stretch in ((self.controls, 0), (self.message, 0), (splitter, 1)):
            layout.addWidget(widget, stretch)
        session.model_changed.connect(self._on_model)
        session.layer_changed.connect(lambda *_: self._idle_message())
        session.unit_changed.connect(lambda *_: self._idle_message())
        self._idle_message()

    @property
    def layer(self) -> str | None:
        return self.finished.picture.layer if self.finished is not None else self.session.layer

    @property
    def seed(self) -> int | None:
        """The seed of the picture shown, for its sidecar (None while there is none)."""
        return self.finished.result.seed if self.finished is not None else None

    # --- starting -------------------------------------------------------------------------

    def visualise(self, unit: Unit) -> None:
        """Visualise ``unit``'s channel now (the activation grid's "Visualise channel k")."""
        self.session.set_unit(unit)
        if self.controls.objective.currentData() not in ("channel", "neuron", "diversity"):
            self.controls.set_kind("channel")
        self.controls.channels.setCurrentText("current unit")
        self.start()

    def _options(self) -> tuple[FeatureVisOptions, str, str]:
        """The controls' options with the units the session gives, the layer, and a note when the
        current unit was asked for but there is none on this layer (the range is used instead)."""
        options = self.controls.options()
        kind = options.objective
        layer = "" if kind == "logit" else self.session.layer
        if layer is None:
            raise UserError("Select a layer in the Model tree to visualise its channels.")
        if kind in IMAGE_KINDS:
            if self.session.image is None:
                raise UserError(f"The {kind} objective starts from an image: open or drop one first.")
            return options, layer, ""
        units, note = self._units(kind, layer)
        return replace(options, units=tuple(units[:1] if kind == "diversity" else units)), layer, note

    def _units(self, kind: str, layer: str) -> tuple[list[int], str]:
        mode, note = self.controls.channel_mode(), ""
        if mode == "current unit":
            if kind == "logit":
                target = self.session.effective_target
                if target is None:
                    raise UserError("Pick a class (click a prediction) or choose a range of classes.")
                return [target], ""
            unit = self.session.unit
            if unit is not None and unit.layer == layer:
                return [unit.channel], ""
            note = f" (no channel of {layer} is selected: click one in the Activations tab for it alone)"
        if mode == "all":
            return default_units(self.session.model, kind, layer, MAX_UNITS), note
        return self.controls.range_units(), note

    def start(self) -> None:
        """(Re)start with the current options; a running visualisation is cancelled."""
        handle = self.session.model
        if handle is None:
            return self._show_message("Load a model to visualise its channels.")
        try:
            options, layer, note = self._options()
            settings = options.settings()
        except UserError as exc:
            return self._show_message(str(exc), warning=True)
        if self._job is not None:
            self._job.cancel()
        kind = options.objective
        image = self.session.image if kind in IMAGE_KINDS else None
        inputs = Inputs(handle, image, layer, self.controls.seed.value())
        shown = shown_units(kind, None if options.units is None else list(options.units))
        self.finished = None
        self.selected = None
        self.steps_seen = 0
        self._run = (options, layer, shown)
        self._history = np.zeros((0, len(shown)), np.float32)
        size = settings.size if image is None else handle.input_size[-1]
        self._previews = np.full((len(shown), size, size, handle.input_size[0]), 128, np.uint8)
        self._redraw_grid(fit=True)
        self._show_tile()
        what = "the image" if kind in IMAGE_KINDS else f"{len(shown)} image{'s' if len(shown) > 1 else ''}"
        self.message.setStyleSheet("")
        self.message.setText(f"Optimising {what} for {units_text(kind, shown)} of {layer or 'the output'} …{note}")
        self.controls.set_fraction(0.0)
        self.controls.set_running(True, False)
        job = self.jobs.start(lambda: run_featurevis(inputs, options), kind="featurevis",
                              label=f"feature visualisation of {layer or 'the output'}", on_item=self._on_step,
                              on_result=self._show, on_error=self._failed, on_cancelled=lambda: self._ended(job))
        self._job = job

    def cancel(self) -> None:
        if self._job is not None and not self._job.done:
            self._job.cancel()

    def _ended(self, job) -> None:
        """A run stopped by Cancel here or in the status bar (a restart's old run says nothing)."""
        if job is self._job and job.cancelled:
            self.controls.set_running(False, False)
            self.message.setText(f"Cancelled after {self.steps_seen} previews; Start runs it again.")

    # --- live updates ---------------------------------------------------------------------

    def _on_step(self, step: Step) -> None:
        if not isinstance(step, Step) or self._previews is None:
            return
        count = len(step.values)
        if step.images.shape[1:] != self._previews.shape[1:]:  # DeepDream's next octave
            self._previews = np.zeros((len(self._previews), *step.images.shape[1:]), np.uint8)
        self._previews[step.first: step.first + count] = step.images
        if step.first == 0 and len(self._history) > len(step.history):  # a new octave
            self._history = np.zeros((0, self._history.shape[1]), np.float32)
        if len(self._history) < len(step.history):
            grown = np.full((len(step.history), self._history.shape[1]), np.nan, np.float32)
            grown[: len(self._history)] = self._history
            self._history = grown
        self._history[:, step.first: step.first + count] = step.history
        self.steps_seen += 1
        total = len(self._previews)
        self.controls.set_fraction((step.first + count * step.step / step.total) / total)
        self._redraw_grid(fit=False)
        self._show_tile()

    def _redraw_grid(self, fit: bool) -> None:
        images = torch.from_numpy(self._previews).permute(0, 3, 1, 2).float() / 255
        pixels, self._layout = featurevis_grid(images, self._run[2])
        self.grid.image_item.setImage(pixels, autoLevels=False, levels=(0, 255))
        if fit:
            self.grid.fit_view()

    def _show(self, finished: FeatureVis) -> None:
        self.finished = finished
        self._layout = finished.layout
        self._history = finished.result.history
        self.grid.image_item.setImage(finished.picture.pixels, autoLevels=False, levels=(0, 255))
        self.controls.set_running(False, True)
        result = finished.result
        ratios = result.values / np.where(np.abs(result.noise_values) > 1e-12, result.noise_values, np.nan)
        text = (f"{units_text(result.kind, result.units)} of {result.layer or 'the output'}: "
                f"{len(result.units)} image(s), {result.settings['steps']} steps, seed {result.seed} · objective "
                f"{np.mean(result.values):.4g} on the final images"
                + (f" (the curve's last step, on a transformed copy: {np.mean(result.history[-1]):.4g})"
                   if result.settings.get("transforms") and len(result.history) else "")
                + f" · on noise {np.mean(result.noise_values):.4g}")
        if result.kind not in IMAGE_KINDS and np.isfinite(ratios).any():
            text += f", ×{np.nanmedian(ratios):.3g} median"
        self.message.setStyleSheet("")
        self.message.setText(text)
        self._show_tile()

    def _failed(self, exc: BaseException) -> bool:
        self.controls.set_running(False, False)
        if not isinstance(exc, UserError):
            return False
        self._show_message(str(exc), warning=True)
        return True

    # --- the selected tile ----------------------------------------------------------------

    def _on_click(self, event) -> None:
        point = self.grid.left_click_point(event)
        if self._layout is None or point is None:
            return
        index = self._layout.tile_index_at(point.x(), point.y())
        if index is not None:
            event.accept()
            self.select(index)

    def select(self, index: int) -> None:
        """Show image ``index`` (in grid order) large, with its objective curve."""
        self.selected = index
        self._show_tile()

    def _tile_pixels(self, index: int) -> np.ndarray:
        if self.finished is not None:
            image = self.finished.result.images[index]
            return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return self._previews[index]

    def _show_tile(self) -> None:
        index = self.selected
        if self._run is None or index is None:
            self.tile.clear()
            self.curve.clear_values()
            self.tile_title.setText(TILE_HINT)
            self.export_tile_button.setEnabled(False)
            return
        options, layer, units = self._run
        pixels = self._tile_pixels(index)
        self.tile.set_pixels(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        unit = units[index]
        name = f"{options.objective} {unit}" if unit is not None else options.objective
        text = f"{layer or 'output'}, {name}"
        if self.finished is not None:
            result = self.finished.result
            text += f": objective {result.values[index]:.4g} (noise {result.noise_values[index]:.4g})"
            if not np.any(self._history[:, index]):
                text += (" · stays grey: the channel is 0 for every image tried, so no gradient reaches the"
                         " image (try the neuron objective on the layer before its ReLU)")
        self.tile_title.setText(text)
        self.curve.set_values(self._history[:, index], name)
        self.export_tile_button.setEnabled(self.finished is not None)

    # --- messages and export --------------------------------------------------------------

    def _on_model(self, *_) -> None:
        if self._job is not None:
            self._job.cancel()
        self.finished, self._run, self._layout, self.selected = None, None, None, None
        self.grid.clear()
        self._show_tile()
        self.controls.set_running(False, False)
        self._idle_message()

    def _idle_message(self) -> None:
        if self.finished is not None or (self._job is not None and not self._job.done):
            return
        session = self.session
        if session.model is None:
            text = "Load a model to visualise its channels."
        elif session.layer is None:
            text = "Select a layer in the Model tree (or choose Class logit), then press Start."
        else:
            unit = session.unit
            current = f"; current unit: channel {unit.channel}" if unit is not None and unit.layer == session.layer else ""
            text = f"Layer {session.layer}{current}. Choose channels and press Start."
        self._show_message(text)

    def _show_message(self, text: str, warning: bool = False) -> None:
        self.message.setStyleSheet(WARNING_STYLE if warning else "")
        self.message.setText(text)

    def picture(self) -> tuple[np.ndarray, dict] | None:
        if self.finished is None:
            return None
        return self.finished.picture.pixels, self.finished.picture.settings

    def export_tile(self, path: str | Path) -> tuple[Path, Path]:
        """Write the selected image alone (the export's picture of one unit) and its sidecar."""
        if self.finished is None or self.selected is None:
            raise UserError("Run a visualisation and click a tile first.")
        return save_picture(path, self.view_name, self.finished.tile(self.selected), self.session.model,
                            self.session.image, self.seed, self.session.interventions)

    def _export_tile_dialog(self) -> None:
        written = save_as(self, "Export image as PNG", "featurevis.png", "PNG images (*.png)", self.export_tile)
        if written is not None:
            png, sidecar = written
            self.message.setText(f"wrote {png} and {sidecar.name}")
