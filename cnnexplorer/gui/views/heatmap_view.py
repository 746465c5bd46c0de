"""The "Heatmaps" tab: why the model said what it said, for the current image and target class.

The main picture is ``render_heatmap`` (the function ``export heatmap`` uses) of the chosen
method; below it, the result of the last extra job: all methods side by side, the top-3
classes, the sanity check or the deletion/insertion curves. Every computation is a core job run
by ``JobRunner``; changing the opacity or colour map only re-blends the stored map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QMenu, QPushButton, QSlider, QSplitter,
                               QToolButton, QVBoxLayout, QWidget)

from cnnexplorer.core.attribution import (METHODS, Heatmap, comparison_job, curves_job, default_cmap, heatmap_job,
                                          render_heatmap, sanity_job, top_classes_job)
from cnnexplorer.core.colormaps import COLORMAPS
from cnnexplorer.core.errors import UserError
from cnnexplorer.gui.remembered import remember
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.workers import JobRunner

SPACER = 4
AUTO_CMAP = "auto"
AUTO_LAYER, TREE_LAYER = "auto: last conv", "tree selection"


@dataclass(frozen=True)
class Shown:
    """The main map and the input it explains."""

    pixels: torch.Tensor
    heatmap: Heatmap
    label: str


def side_by_side(pictures: list[np.ndarray]) -> np.ndarray:
    """Pictures of equal height in one row, with white spacers."""
    parts = []
    for picture in pictures:
        if parts:
            parts.append(np.full((picture.shape[0], SPACER, 3), 255, np.uint8))
        parts.append(picture)
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


class HeatmapView(View):
    title = "Heatmaps"
    view_name = "heatmap"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.shown: Shown | None = None
        self.curves = None
        self.sanity = None
        self.panels: list[tuple[str, Heatmap]] = []
        self._panel_pixels: torch.Tensor | None = None
        self.method = QComboBox()
        for name, method in METHODS.items():
            self.method.addItem(method.title, name)
        self.why_not = QCheckBox("why not")
        self.why_not.setToolTip("show the evidence against the target class")
        self.layer_choice = QComboBox()
        self.layer_choice.addItems([AUTO_LAYER, TREE_LAYER])
        self.cmap = QComboBox()
        self.cmap.addItems([AUTO_CMAP, *COLORMAPS])
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(70)
        self.opacity.setMaximumWidth(140)
        row = QHBoxLayout()
        for text, widget in (("method", self.method), (None, self.why_not), ("CAM layer", self.layer_choice)):
            if text:
                row.addWidget(QLabel(text))
            row.addWidget(widget)
        row.addStretch(1)
        look = QHBoxLayout()
        for text, widget in (("colours", self.cmap), ("opacity", self.opacity)):
            look.addWidget(QLabel(text))
            look.addWidget(widget)
        look.addStretch(1)
        self.compare_button = QToolButton()
        self.compare_button.setText("Compare methods")
        self.compare_button.setToolTip("the chosen methods side by side, as one job (arrow: choose them)")
        self.compare_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.compare_menu = QMenu(self.compare_button)
        for name, method in METHODS.items():
            action = self.compare_menu.addAction(method.title)
            action.setData(name)
            action.setCheckable(True)
            action.setChecked(True)
        self.compare_button.setMenu(self.compare_menu)
        self.top_button = QPushButton("Top-3 classes")
        self.sanity_button = QPushButton("Sanity check")
        self.curves_button = QPushButton("Deletion/insertion")
        buttons = QHBoxLayout()
        for button in (self.compare_button, self.top_button, self.sanity_button, self.curves_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.canvas = ImageCanvas()
        self.panel_canvas = ImageCanvas()
        self.panel_caption = QLabel(" ")
        self.panel_caption.setWordWrap(True)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "fraction of pixels deleted / inserted, most relevant first")
        self.plot.setLabel("left", "target probability")
        self.plot.addLegend()
        self.plot.hide()
        self.lower = lower = QWidget()  # comparisons, sanity check and curves: shown once there are some
        lower.hide()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.panel_canvas, 1)
        lower_layout.addWidget(self.plot, 1)
        lower_layout.addWidget(self.panel_caption)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.canvas)
        splitter.addWidget(lower)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(look)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addWidget(splitter, 1)
        self.method.currentIndexChanged.connect(self._on_method)
        for signal in (self.why_not.toggled, self.layer_choice.currentIndexChanged):
            signal.connect(self.refresh)
        self.cmap.currentIndexChanged.connect(self._redraw)
        self.opacity.valueChanged.connect(self._redraw)
        self.compare_button.clicked.connect(self.compare_methods)
        self.top_button.clicked.connect(self.top_classes)
        self.sanity_button.clicked.connect(self.sanity_check)
        self.curves_button.clicked.connect(self.deletion_insertion)
        for signal in (session.model_changed, session.image_changed):
            signal.connect(self._clear_extras)
            signal.connect(self.refresh)
        session.target_changed.connect(self.refresh)
        session.predictions_changed.connect(self._on_predictions)
        session.layer_changed.connect(self._on_layer)
        self.message.setText("Load a model and open an image to see why the model says what it says.")
        remember(self, "method", "layer_choice", "cmap", "opacity")

    # --- what to compute -----------------------------------------------------------------------

    @property
    def method_name(self) -> str:
        return self.method.currentData()

    def _on_method(self, *_) -> None:
        self.layer_choice.setEnabled(METHODS[self.method_name].uses_layer)
        self.refresh()

    def cam_layer(self) -> str | None:
        if not METHODS[self.method_name].uses_layer or self.layer_choice.currentText() == AUTO_LAYER:
            return None
        return self.session.layer

    @property
    def layer(self) -> str | None:
        return self.shown.heatmap.layer if self.shown else None

    def _inputs(self):
        handle, image = self.session.model, self.session.image
        if handle is None or image is None:
            self._say("Load a model and open an image to see why the model says what it says.")
            return None
        return handle, handle.preprocessing.to_tensor(image.image)

    def _on_predictions(self, *_) -> None:
        if self.session.target is None:  # the top-1 class may have just become known
            self.refresh()

    def _on_layer(self, *_) -> None:
        if self.layer_choice.currentText() == TREE_LAYER:
            self.refresh()

    # --- the main map ----------------------------------------------------------------------------

    def compute(self) -> None:
        inputs = self._inputs()
        if inputs is None:
            return
        handle, pixels = inputs
        method, target, layer, negative = self.method_name, self.session.effective_target, self.cam_layer(), \
            self.why_not.isChecked()
        self._say(f"Computing {METHODS[method].title} …")
        self.jobs.start(lambda: heatmap_job(handle, pixels, method, target, layer, negative), kind="heatmap-view",
                        label=METHODS[method].title, on_result=lambda h: self._show(handle, pixels, h),
                        on_error=self._failed)

    def _show(self, handle, pixels: torch.Tensor, heatmap: Heatmap) -> None:
        if handle is not self.session.model:
            return
        label = handle.label(heatmap.target) if heatmap.target is not None else "custom score"
        self.shown = Shown(pixels, heatmap, label)
        where = f" at {heatmap.layer}" if heatmap.layer else ""
        against = "against" if heatmap.negative else "for"
        x, y = heatmap.peak()
        self._say(f"{METHODS[heatmap.method].title}{where}: evidence {against} '{label}' "
                  f"(p = {heatmap.score:.3f}); strongest at x={x}, y={y}")
        self._redraw()

    def _redraw(self, *_) -> None:
        if self.shown is not None:
            self.canvas.set_pixels(self.picture()[0])
        if self.panels:
            self._show_panels(self.panels, self.panel_caption.text())

    def _cmap(self, heatmap: Heatmap) -> str:
        chosen = self.cmap.currentText()
        return default_cmap(heatmap) if chosen == AUTO_CMAP else chosen

    def picture(self) -> tuple[np.ndarray, dict] | None:
        if self.shown is None:
            return None
        heatmap, alpha = self.shown.heatmap, self.opacity.value() / 100
        cmap = self._cmap(heatmap)
        return render_heatmap(self.shown.pixels, heatmap, alpha, cmap), {
            "method": heatmap.method, "target": heatmap.target, "why_not": heatmap.negative, "alpha": alpha,
            "cmap": cmap}

    def _failed(self, exc: BaseException) -> bool:
        if not isinstance(exc, UserError):
            return False
        self._say(str(exc))
        return True

    def _say(self, text: str) -> None:
        self.message.setText(text)

    # --- the extra jobs --------------------------------------------------------------------------

    def _clear_extras(self, *_) -> None:
        """Panels and curves belong to one model and image: drop them when either changes."""
        self.panels, self.curves, self.sanity = [], None, None
        self.panel_canvas.clear()
        self.plot.clear()
        self.plot.hide()
        self.panel_canvas.show()
        self.panel_caption.setText(" ")
        self.lower.hide()

    def _show_panels(self, panels: list[tuple[str, Heatmap]], caption: str) -> None:
        self.panels = panels
        alpha = self.opacity.value() / 100
        pictures = [render_heatmap(self._panel_pixels, h, alpha, self._cmap(h)) for _, h in panels]
        self.plot.hide()
        self.panel_canvas.show()
        self.lower.show()
        self.panel_canvas.set_pixels(side_by_side(pictures))
        self.panel_caption.setText(caption)

    def _run_extra(self, make_job, label: str, on_result) -> None:
        inputs = self._inputs()
        if inputs is None:
            return
        handle, pixels = inputs
        self._panel_pixels = pixels
        self.panel_caption.setText(f"{label} …")
        self.jobs.start(lambda: make_job(handle, pixels), kind="heatmap-extra", label=label,
                        on_result=lambda result: on_result(handle, result), on_error=self._failed)

    def compared_methods(self) -> list[str]:
        return [action.data() for action in self.compare_menu.actions() if action.isChecked()]

    def compare_methods(self) -> None:
        """The methods checked in the button's menu for the current target, as one job."""
        methods = self.compared_methods()
        if not methods:
            return self.panel_caption.setText("Tick at least one method in the menu of Compare methods.")
        target, negative = self.session.effective_target, self.why_not.isChecked()
        layer = self.session.layer if self.layer_choice.currentText() == TREE_LAYER else None
        self._run_extra(lambda h, p: comparison_job(h, p, methods, target, layer, negative), "comparing methods",
                        lambda handle, maps: self._show_panels(
                            list(maps.items()), "left to right: " + " · ".join(METHODS[n].title for n in maps)))

    def top_classes(self) -> None:
        method, layer = self.method_name, self.cam_layer()
        self._run_extra(lambda h, p: top_classes_job(h, p, method, 3, layer), "maps of the top-3 classes",
                        lambda handle, maps: self._show_panels(
                            [(handle.label(m.target), m) for m in maps],
                            "left to right: " + " · ".join(f"{handle.label(m.target)} (p = {m.score:.3f})"
                                                           for m in maps)))

    def sanity_check(self) -> None:
        """Cascading randomisation from the top (Adebayo et al. 2018) of the current method."""
        method, target, layer = self.method_name, self.session.effective_target, self.cam_layer()

        def shown(handle, result) -> None:
            self.sanity = result
            panels = [("original", result.original)] + [(s.layer, s.heatmap) for s in result.stages]
            steps = " · ".join(f"down to {s.layer}: ρ = {s.correlation:.2f}" for s in result.stages)
            self._show_panels(panels, f"original, then randomised from the top — rank correlation {steps}")

        self._run_extra(lambda h, p: sanity_job(h, p, method, target, layer), "sanity check", shown)

    def deletion_insertion(self) -> None:
        """Deletion and insertion curves of the shown map, with their areas."""
        if self.shown is None:
            return self._say("Compute a heatmap first.")
        heatmap = self.shown.heatmap

        def shown(handle, curves) -> None:
            self.curves = curves
            self.panels = []
            self.panel_canvas.hide()
            self.plot.show()
            self.lower.show()
            self.plot.clear()
            for curve, colour in zip(curves, ("#d6604d", "#2166ac")):
                self.plot.plot(curve.fractions, curve.scores, pen=pg.mkPen(colour, width=2),
                               name=f"{curve.kind}: AUC {curve.auc:.3f}")
            self.panel_caption.setText("  ·  ".join(f"{c.kind} AUC {c.auc:.3f}" for c in curves)
                                       + " (deletion low and insertion high = a faithful map)")

        self._run_extra(lambda h, p: curves_job(h, p, heatmap), "deletion and insertion curves", shown)
