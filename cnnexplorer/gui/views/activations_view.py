"""The "Activations" tab: every channel of the current layer for the current image, as one grid.

A worker captures through the session's shared ``ActivationCache`` (switching layer for the
same image runs no model) and renders the exported picture itself, which the view shows as ONE
image item: the screen, Export and ``cnnexplorer export activations`` show the same pixels,
the channel numbers included, and panning a 2048-channel grid moves one texture.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QMetaMethod, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QMenu, QSplitter, QVBoxLayout, QWidget

from cnnexplorer.core.activations import ActivationGrid, layer_range
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.interventions import Edit, sweep_job
from cnnexplorer.core.layer_text import gives_class_scores, unit_text
from cnnexplorer.gui.session import Session, Unit
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.widgets.edit_menu import add_edit_actions, apply_edit
from cnnexplorer.gui.widgets.grid_controls import GridControls
from cnnexplorer.gui.widgets.sweep_panel import SweepPanel
from cnnexplorer.gui.widgets.unit_panel import UnitPanel
from cnnexplorer.gui.workers import JobRunner
from cnnexplorer.pictures.activations import ActivationPicture, Panel, activation_picture, channel_overlay
from cnnexplorer.pictures.base import Inputs

WARNING_STYLE = "color: #b35900"


def channel_text(grid: ActivationGrid, channel: int, sep: str = " · ", classes: list[str] | None = None) -> str:
    """A unit's name (a class's, for the class scores) and its statistics."""
    numbers = grid.stats.channel(channel)

    def fmt(value) -> str:
        return "NaN" if value is None else f"{value:.4g}"

    parts = [unit_text(channel, classes), f"min {fmt(numbers['min'])}", f"max {fmt(numbers['max'])}",
             f"mean {fmt(numbers['mean'])}"]
    return sep.join(parts + ([] if classes else [f"zeros {100 * grid.stats.zero_fraction[channel]:.0f} %"]))


class ActivationsView(View):
    title = "Activations"
    view_name = "activations"
    waiting_for = "pick a layer in the Model tree"
    visualise_requested = Signal(object)
    """A ``Unit`` the user wants visualised (the context menu offers it once something listens)."""
    atlas_requested = Signal(object)
    """A ``Unit`` whose dataset atlas the user wants (offered once something listens)."""

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.result: ActivationPicture | None = None
        self.context_menu: QMenu | None = None
        self._job = None
        self.controls = GridControls()
        self.controls.changed.connect(self.refresh)
        self.canvas = ImageCanvas()
        self.canvas.scene().sigMouseMoved.connect(self._on_hover)
        self.canvas.scene().sigMouseClicked.connect(self._on_click)
        self.highlights: list[QGraphicsRectItem] = []
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.hover = QLabel(" ")
        self.unit_panel = UnitPanel()
        self.unit_panel.setMinimumWidth(180)
        grid_side = QWidget()
        grid_layout = QVBoxLayout(grid_side)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addWidget(self.canvas, 1)
        self.sweep_panel = SweepPanel()
        self.sweep_panel.channel_clicked.connect(lambda c: self.session.set_unit(Unit(self.sweep_panel.result.layer, c)))
        grid_layout.addWidget(self.sweep_panel)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(grid_side)
        splitter.addWidget(self.unit_panel)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        for widget, stretch in ((self.controls, 0), (self.message, 0), (splitter, 1), (self.hover, 0)):
            layout.addWidget(widget, stretch)
        session.model_changed.connect(self.refresh)
        session.image_changed.connect(self.refresh)
        session.layer_changed.connect(self._on_layer)
        session.images_changed.connect(self._list_images)
        session.unit_changed.connect(self._on_unit)
        self._show_message("Load a model to see its activations.")

    def shown_layer(self) -> str | None:
        """The session's layer, with ``#k`` for a later call of a module that runs several times."""
        layer, call = self.session.layer, self.controls.call()
        return None if layer is None else (f"{layer}#{call}" if call else layer)

    @property
    def layer(self) -> str | None:
        return self.result.layer if self.result is not None else self.shown_layer()

    def _list_images(self, *_) -> None:
        self.controls.set_images([im for im in self.session.images if im is not self.session.image])

    def _on_layer(self, name: str | None) -> None:
        summary = self.session.summary
        calls = next((info.calls for info in summary.layers if info.name == name), 1) if summary and name else 1
        self.controls.set_calls(calls)
        self.controls.set_outputs(1)
        self.refresh()

    # --- computing ------------------------------------------------------------------------

    def refresh(self, *_) -> None:
        self._list_images()
        super().refresh()

    def compute(self) -> None:
        if self._job is not None:
            self._job.cancel()
        handle, image, layer = self.session.model, self.session.image, self.shown_layer()
        if handle is None:
            return self._show_message("Load a model to see its activations.")
        if layer is None:
            return self._show_message("Select a layer in the Model tree to see its activations.")
        if image is None:
            return self._show_message(f"Open or drop an image to see the activations of {layer}.")
        inputs, options, compared = Inputs(handle, image, layer), self.controls.options(), self.controls.compare_image()
        cache = self.session.activations
        self.message.setStyleSheet("")
        self.message.setText(f"Computing the activations of {layer} …")
        self._job = self.jobs.start(lambda: activation_picture(inputs, options, cache, compared),
                                    kind="activations-view", label=f"activations of {layer}",
                                    on_result=self._show, on_error=self._failed)

    def _failed(self, exc: BaseException) -> bool:
        if not isinstance(exc, UserError):
            return False
        self._show_message(str(exc), warning=True)
        return True

    def _show_message(self, text: str, warning: bool = False) -> None:
        self.result = None
        self.canvas.clear()
        self._clear_highlights()
        self.hover.setText(" ")
        self.unit_panel.clear()
        self.message.setStyleSheet(WARNING_STYLE if warning else "")
        self.message.setText(text)

    def _show(self, result: ActivationPicture) -> None:
        if result.inputs.handle is not self.session.model or result.image is not self.session.image:
            return
        old_shape = None if self.result is None else self.result.pixels.shape
        self.result = result
        self.hover.setText(" ")  # the readout spoke of a tile of the picture before
        self.controls.set_outputs(result.outputs)
        self.canvas.image_item.setImage(result.pixels, autoLevels=False, levels=(0, 255))
        if result.pixels.shape != old_shape:
            self.canvas.fit_view()
        grid = result.grid
        self.controls.default_range = grid.value_range or layer_range(grid.stats, grid.signed)
        self.message.setStyleSheet(WARNING_STYLE if grid.warning else "")
        self.message.setText(self._caption(result) + (f"\nWarning: {grid.warning}" if grid.warning else ""))
        self._on_unit(self.session.unit)

    def _caption(self, result: ActivationPicture) -> str:
        grid, compare = result.grid, result.options.compare
        channels, height, width = grid.shape
        what = f"{channels} units" if grid.units else f"{channels} channels of {height}×{width}"
        if compare is not None and compare.difference:
            return (f"{result.layer}: {what} · {result.panels[0].name}: red where the first image is higher, "
                    f"blue where lower (±{grid.value_range[1]:.3g})")
        shown = len(grid.layout.order)
        hidden = f", {channels - shown} dead hidden" if shown < channels else ""
        norm = {"channel": "each channel scaled to its own range", "layer": "one range for the layer",
                "fixed": "fixed range"}[result.asked_norm]
        if compare is not None and result.asked_norm == "layer":
            low, high = grid.value_range
            norm = f"one range for the layer, shared by both images ({low:.3g} to {high:.3g})"
        if self._classes() is not None:  # scores of classes: zeros and "dead" units mean nothing here
            text = f"{result.layer}: the class scores, {channels} classes · {grid.cmap}, {norm}"
        else:
            text = (f"{result.layer}: {what}{hidden} · {100 * grid.stats.layer_zero_fraction:.0f} % zeros · "
                    f"{grid.stats.dead_count} dead · {grid.cmap}, {norm}")
        if compare is not None:
            text += f" · left {result.panels[0].name}, right {result.panels[1].name}"
        return text

    # --- pointing -------------------------------------------------------------------------

    def _hit(self, scene_pos) -> tuple[Panel, int] | None:
        if self.result is None:
            return None
        point = self.canvas.view_box.mapSceneToView(scene_pos)
        return self.result.hit(point.x(), point.y())

    def _on_hover(self, scene_pos) -> None:
        hit = self._hit(scene_pos)
        text = " " if hit is None else channel_text(hit[0].grid, hit[1], classes=self._classes()) + (
            f" · {hit[0].name}" if self.result.options.compare is not None else "")
        self.hover.setText(text)
        self.canvas.setToolTip(text.strip())

    def _on_click(self, event) -> None:
        hit = self._hit(event.scenePos())
        if hit is None or self.session.layer is None:
            return
        event.accept()
        channel = hit[1]
        if event.button() == Qt.MouseButton.LeftButton:
            self.session.set_unit(Unit(self.session.layer, channel))
        elif event.button() == Qt.MouseButton.RightButton:
            self._open_menu(channel, event.screenPos())

    def _open_menu(self, channel: int, screen_pos: QPointF) -> None:
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.addAction("Copy channel index", lambda: QGuiApplication.clipboard().setText(str(channel)))
        if self.isSignalConnected(QMetaMethod.fromSignal(self.visualise_requested)):
            unit = Unit(self.session.layer, channel)
            menu.addAction(f"Visualise channel {channel}", lambda: self.visualise_requested.emit(unit))
        if self.isSignalConnected(QMetaMethod.fromSignal(self.atlas_requested)):
            unit = Unit(self.session.layer, channel)
            menu.addAction(f"Dataset atlas of channel {channel}", lambda: self.atlas_requested.emit(unit))
        self._add_edit_actions(menu, channel)
        self.context_menu = menu
        menu.popup(screen_pos.toPoint())

    # --- interventions --------------------------------------------------------------------

    def _add_edit_actions(self, menu: QMenu, channel: int) -> None:
        """The channel's edits (``edit_menu``), then the sweep of its layer."""
        add_edit_actions(menu, self.session, self.session.layer, channel, self._refused)
        menu.addSeparator()
        menu.addAction("Sweep this layer: rank its channels by the drop of the target's probability", self.sweep)

    def edit(self, edit: Edit) -> None:
        apply_edit(self.session, edit, self._refused)

    def _refused(self, text: str) -> None:
        self._show_message(text, warning=True)

    def sweep(self) -> None:
        handle, image, layer = self.session.model, self.session.image, self.session.layer
        if handle is None or image is None or layer is None:
            return
        target = self.session.effective_target
        self.sweep_panel.show_message(f"Sweeping {layer}: switching each channel off in turn …")

        def done(result) -> None:
            if self.session.model is handle and self.session.image is image:
                self.sweep_panel.show_result(result, handle.label(result.target))

        self.jobs.start(lambda: sweep_job(handle, handle.pixels(image), layer, target), kind="activations-sweep",
                        label=f"sweep of {layer}", on_result=done, on_error=self._sweep_failed)

    def _sweep_failed(self, exc: BaseException) -> bool:
        if not isinstance(exc, UserError):
            return False
        self.sweep_panel.show_message(str(exc))
        return True

    def _classes(self) -> list[str] | None:
        """The class names when the current layer gives the class scores (its units are classes)."""
        handle, layer = self.session.model, self.session.layer
        if handle is None or not layer or not gives_class_scores(self.session.summary, layer):
            return None
        return handle.class_names

    def _clear_highlights(self) -> None:
        for item in self.highlights:
            self.canvas.view_box.removeItem(item)
        self.highlights = []

    def _on_unit(self, unit: Unit | None) -> None:
        """Outline the unit's tile (in every panel) and show it enlarged in the side panel."""
        self._clear_highlights()
        result = self.result
        if result is None or unit is None or unit.layer != self.session.layer:
            self.unit_panel.clear()
            return
        for panel in result.panels:
            origin = panel.layout.tile_origin(unit.channel)
            if origin is not None:
                rect = QGraphicsRectItem(QRectF(panel.left + origin[0], origin[1], panel.layout.tile_w,
                                                panel.layout.tile_h))
                pen = QPen(QColor(255, 200, 0), 3)
                pen.setCosmetic(True)
                rect.setPen(pen)
                self.canvas.view_box.addItem(rect)
                self.highlights.append(rect)
        grid = result.grid
        if not 0 <= unit.channel < grid.shape[0]:
            self.unit_panel.clear(f"{unit.layer} has no channel {unit.channel}.")
            return
        title = f"{result.layer}, {unit_text(unit.channel, self._classes())} · {result.panels[0].name}"
        details = channel_text(grid, unit.channel, "\n", self._classes())
        self.jobs.start(lambda: channel_overlay(result, unit.channel), kind="activations-unit",
                        label="enlarging a channel",
                        on_result=lambda heat: self._show_unit(result, title, details, heat))

    def _show_unit(self, result: ActivationPicture, title: str, details: str, heat: np.ndarray | None) -> None:
        if result is not self.result:
            return
        if heat is None:
            details += "" if result.grid.units else "\nhidden in the grid (dead)"
        self.unit_panel.show_unit(title, details, result.input_pixels, heat)

    # --- export ---------------------------------------------------------------------------

    def picture(self) -> tuple[np.ndarray, dict] | None:
        return None if self.result is None else (self.result.pixels, self.result.settings)
