"""The "Activations" tab: every channel of the current layer for the current image, as one grid.

A worker captures through the session's shared ``ActivationCache`` (switching layer for the
same image runs no model) and renders the exported picture itself, which the view shows as ONE
image item: the screen, Export and ``cnnexplorer export activations`` show the same pixels,
the channel numbers included, and panning a 2048-channel grid moves one texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtCore import QMetaMethod, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QMenu, QSplitter, QVBoxLayout, QWidget

from cnnexplorer.core.activations import (
    ActivationGrid,
    activation_grid,
    compare_grids,
    layer_range,
    pick_output,
    render_activation_picture,
)
from cnnexplorer.core.colormaps import apply_colormap
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.grids import GridLayout
from cnnexplorer.core.images import LoadedImage
from cnnexplorer.core.jobs import Progress
from cnnexplorer.gui.session import Session, Unit
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.views.input_view import tensor_pixels
from cnnexplorer.gui.widgets.colorbar import ColorBar
from cnnexplorer.gui.widgets.grid_controls import GridControls, GridSettings
from cnnexplorer.gui.widgets.layer_stats import shared_cache
from cnnexplorer.gui.widgets.unit_panel import UnitPanel
from cnnexplorer.gui.workers import JobRunner

SPACER = 16
"""White pixels between two compared grids."""
WARNING_STYLE = "color: #b35900"
UNIT_HINT = "Click a tile to see that channel over the input image."


@dataclass(frozen=True)
class Panel:
    """One grid of the shown picture, starting ``left`` pixels from the picture's left edge;
    ``layout`` is the grid's layout in the (enlarged) picture."""

    name: str
    grid: ActivationGrid
    layout: GridLayout
    left: int


@dataclass(frozen=True)
class GridResult:
    handle: object
    image: LoadedImage
    layer: str
    settings: GridSettings
    compare: LoadedImage | None
    difference: bool
    panels: tuple[Panel, ...]
    pixels: np.ndarray
    outputs: int
    input_pixels: np.ndarray

    def hit(self, x: float, y: float) -> tuple[Panel, int] | None:
        """The panel and channel under picture pixel ``(x, y)``, or None."""
        for panel in self.panels:
            channel = panel.layout.tile_index_at(x - panel.left, y)
            if channel is not None:
                return panel, channel
        return None


def _panels(named: list[tuple[str, ActivationGrid]]) -> tuple[tuple[Panel, ...], np.ndarray]:
    """The grids' pictures side by side, with a white spacer between them."""
    panels, pictures, left = [], [], 0
    for name, grid in named:
        rgb = render_activation_picture(grid)
        layout = grid.layout.scaled(rgb.shape[1] // grid.values.shape[1])
        panels.append(Panel(name, grid, layout, left))
        if pictures:
            pictures.append(np.full((rgb.shape[0], SPACER, 3), 255, np.uint8))
        pictures.append(rgb)
        left += rgb.shape[1] + SPACER
    return tuple(panels), np.ascontiguousarray(np.concatenate(pictures, axis=1))


def grid_job(cache, handle, image: LoadedImage, layer: str, settings: GridSettings,
             compare: LoadedImage | None = None, difference: bool = False):
    """The shown picture of ``layer`` (``name#k``: call k) for ``image`` (and ``compare``)."""
    yield Progress(0, None, f"activations of {layer}")
    pixels = handle.preprocessing.to_tensor(image.image)
    outputs = cache.get_outputs(handle, pixels, layer, image.sha256)
    output = pick_output(layer, outputs, settings.output_index)
    if compare is None:
        named = [(image.name, activation_grid(output, **settings.grid_kwargs()))]
    else:
        yield Progress(0, None, f"activations of {layer} for {compare.name}")
        other = cache.get_or_capture(handle, handle.preprocessing.to_tensor(compare.image), layer,
                                     compare.sha256, settings.output_index)
        grids = compare_grids(output, other, difference=difference, **settings.grid_kwargs())
        names = [f"{image.name} − {compare.name}"] if difference else [image.name, compare.name]
        named = list(zip(names, grids))
    panels, picture = _panels(named)
    return GridResult(handle, image, layer, settings, compare, difference, panels, picture, len(outputs),
                      tensor_pixels(pixels))


def unit_job(result: GridResult, channel: int):
    """The channel's tile, coloured as in the grid and upsampled to the input image's size."""
    yield Progress(0, None, f"channel {channel}")
    grid = result.panels[0].grid
    origin = grid.layout.tile_origin(channel)
    if grid.units or origin is None:
        return None
    x, y = origin
    tile = torch.from_numpy(grid.values[y:y + grid.layout.tile_h, x:x + grid.layout.tile_w].copy())
    size = result.input_pixels.shape[:2]
    upsampled = torch.nn.functional.interpolate(tile[None, None], size=size, mode="bilinear", align_corners=False)
    return apply_colormap(upsampled[0, 0].numpy(), grid.cmap)


def channel_text(grid: ActivationGrid, channel: int, sep: str = " · ") -> str:
    numbers = grid.stats.channel(channel)

    def fmt(value) -> str:
        return "NaN" if value is None else f"{value:.4g}"

    return sep.join([f"channel {channel}", f"min {fmt(numbers['min'])}", f"max {fmt(numbers['max'])}",
                     f"mean {fmt(numbers['mean'])}", f"zeros {100 * grid.stats.zero_fraction[channel]:.0f} %"])


class ActivationsView(View):
    title = "Activations"
    view_name = "activations"
    visualise_requested = Signal(object)
    """A ``Unit`` the user wants visualised (the context menu offers it once something listens)."""

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.result: GridResult | None = None
        self.context_menu: QMenu | None = None
        self._job = None
        self.controls = GridControls()
        self.controls.changed.connect(self.refresh)
        self.canvas = ImageCanvas()
        self.canvas.scene().sigMouseMoved.connect(self._on_hover)
        self.canvas.scene().sigMouseClicked.connect(self._on_click)
        self.highlights: list[QGraphicsRectItem] = []
        self.colorbar = ColorBar()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.hover = QLabel(" ")
        self.unit_panel = UnitPanel()
        self.unit_panel.setMinimumWidth(180)
        grid_side = QWidget()
        grid_layout = QVBoxLayout(grid_side)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addWidget(self.canvas, 1)
        grid_layout.addWidget(self.colorbar)
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
        controls = self.controls
        settings, compare, difference = controls.settings(), controls.compare_image(), controls.difference()
        cache = shared_cache(self.session)
        self.message.setStyleSheet("")
        self.message.setText(f"Computing the activations of {layer} …")
        self._job = self.jobs.start(lambda: grid_job(cache, handle, image, layer, settings, compare, difference),
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
        self.colorbar.hide()
        self.hover.setText(" ")
        self.unit_panel.clear(UNIT_HINT)
        self.message.setStyleSheet(WARNING_STYLE if warning else "")
        self.message.setText(text)

    def _show(self, result: GridResult) -> None:
        if result.handle is not self.session.model or result.image is not self.session.image:
            return
        old_shape = None if self.result is None else self.result.pixels.shape
        self.result = result
        self.controls.set_outputs(result.outputs)
        self.canvas.image_item.setImage(result.pixels, autoLevels=False, levels=(0, 255))
        if result.pixels.shape != old_shape:
            self.canvas.fit_view()
        grid = result.panels[0].grid
        self.controls.default_range = grid.value_range or layer_range(grid.stats, grid.signed)
        if grid.value_range is not None:
            self.colorbar.set_map(grid.cmap, *grid.value_range)
        self.colorbar.setVisible(grid.value_range is not None)
        self.message.setStyleSheet(WARNING_STYLE if grid.warning else "")
        self.message.setText(self._caption(result) + (f"\nWarning: {grid.warning}" if grid.warning else ""))
        self._on_unit(self.session.unit)

    def _caption(self, result: GridResult) -> str:
        grid = result.panels[0].grid
        channels, height, width = grid.shape
        what = f"{channels} units" if grid.units else f"{channels} channels of {height}×{width}"
        if result.difference:
            return (f"{result.layer}: {what} · {result.panels[0].name}: red where the first image is higher, "
                    f"blue where lower (±{grid.value_range[1]:.3g})")
        shown = len(grid.layout.order)
        hidden = f", {channels - shown} dead hidden" if shown < channels else ""
        norm = {"channel": "each channel scaled to its own range", "layer": "one range for the layer",
                "fixed": "fixed range"}[grid.norm]
        text = (f"{result.layer}: {what}{hidden} · {100 * grid.stats.layer_zero_fraction:.0f} % zeros · "
                f"{grid.stats.dead_count} dead · {grid.cmap}, {norm}")
        if result.compare is not None:
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
        text = " " if hit is None else channel_text(hit[0].grid, hit[1]) + (
            f" · {hit[0].name}" if len(self.result.panels) > 1 or self.result.difference else "")
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
        self.context_menu = menu
        menu.popup(screen_pos.toPoint())

    def _clear_highlights(self) -> None:
        for item in self.highlights:
            self.canvas.view_box.removeItem(item)
        self.highlights = []

    def _on_unit(self, unit: Unit | None) -> None:
        """Outline the unit's tile (in every panel) and show it enlarged in the side panel."""
        self._clear_highlights()
        result = self.result
        if result is None or unit is None or unit.layer != self.session.layer:
            self.unit_panel.clear(UNIT_HINT)
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
        grid = result.panels[0].grid
        if not 0 <= unit.channel < grid.shape[0]:
            self.unit_panel.clear(f"{unit.layer} has no channel {unit.channel}.")
            return
        shown = result.panels[0].name if result.difference else result.image.name
        title = f"{result.layer}, channel {unit.channel}: {shown}"
        details = channel_text(grid, unit.channel, "\n")
        self.jobs.start(lambda: unit_job(result, unit.channel), kind="activations-unit", label="enlarging a channel",
                        on_result=lambda heat: self._show_unit(result, title, details, heat))

    def _show_unit(self, result: GridResult, title: str, details: str, heat: np.ndarray | None) -> None:
        if result is not self.result:
            return
        if heat is None:
            details += "" if result.panels[0].grid.units else "\nhidden in the grid (dead)"
        self.unit_panel.show_unit(title, details, result.input_pixels, heat)

    # --- export ---------------------------------------------------------------------------

    def picture(self) -> tuple[np.ndarray, dict] | None:
        result = self.result
        if result is None:
            return None
        grid = result.panels[0].grid
        settings = {"norm": grid.norm, "range": list(grid.value_range) if grid.value_range else None,
                    "cmap": grid.cmap, "sort": result.settings.sort, "hide_dead": result.settings.hide_dead,
                    "output_index": result.settings.output_index}
        if result.compare is not None:
            settings["compare"] = {"image": str(result.compare.path), "sha256": result.compare.sha256,
                                   "difference": result.difference}
        return result.pixels, settings
