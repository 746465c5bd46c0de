"""The "Heatmaps" tab: why the model said what it said, for the current image and target class.

The main picture is the ``heatmap`` recipe's (``pictures.heatmap``: the same job and drawing as
``export heatmap``, title and colour bar included) for the options the widgets show; below it,
the result of the last extra job (``pictures.heatmap_panels``): a grid of labelled tiles (the
methods compared, the top-3 classes, the sanity check; a click on a tile shows its method or
class above), the deletion/insertion curves, or the concepts at the tree's layer (a
``ConceptList``: a click makes a channel the current unit). LRP's composite and the gradient
methods' reduction over colour channels are chosen beside the method; LRP's relevance sum is
shown beside the logit it conserves. Changing the opacity, clipping, colour map or "map only"
only redraws the stored maps.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QMenu, QPushButton,
                               QSlider, QSplitter, QToolButton, QVBoxLayout, QWidget)

from cnnexplorer.core.attribution import METHODS, curves_job
from cnnexplorer.core.attribution.lrp import COMPOSITES
from cnnexplorer.core.colormaps import COLORMAPS
from cnnexplorer.core.errors import UserError
from cnnexplorer.gui.remembered import remember
from cnnexplorer.gui.session import Session, Unit
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.widgets.concept_list import ConceptList, ReferenceStrip, concept_tiles
from cnnexplorer.gui.widgets.edit_menu import add_edit_actions
from cnnexplorer.gui.widgets.flow_layout import FlowLayout, control_group
from cnnexplorer.gui.widgets.legend import readable_legend
from cnnexplorer.gui.widgets.spin_boxes import DoubleSpinBox
from cnnexplorer.gui.workers import JobRunner
from cnnexplorer.pictures.base import Inputs
from cnnexplorer.pictures.concepts import ConceptOptions, concepts_panels
from cnnexplorer.pictures.heatmap import REDUCTIONS, Explained, HeatmapOptions, draw, explain_job, title
from cnnexplorer.pictures.heatmap_panels import Panels, TileGrid, compare_job, draw_panels, sanity_job, top_classes_job

AUTO_CMAP = "auto"
REFERENCES = 6  # reference images shown per ranking
AUTO_LAYER, TREE_LAYER = "auto: last conv", "tree selection"
NO_INPUT = "Load a model and open an image to see why the model says what it says."


class HeatmapView(View):
    title = "Heatmaps"
    view_name = "heatmap"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.shown: Explained | None = None
        self.lower_panels: Panels | None = None
        self.tiles: TileGrid | None = None
        self.curves = None
        self.sanity = None
        self.concepts = None  # (Concepts, Panels) shown in the concept list
        self.reference_source = None
        """Set by the window: ``() -> (DatasetIndex, ProbeSet) | None``, the Dataset tab's index and
        its set, for the concepts' reference images."""
        self.extra_made_for: dict = {}  # the choices the extra picture below was made for
        self.method = QComboBox()
        for name, method in METHODS.items():
            self.method.addItem(method.title, name)
        self.why_not = QCheckBox("why not")
        self.why_not.setToolTip("show the evidence against the target class")
        self.layer_choice = QComboBox()
        self.layer_choice.addItems([AUTO_LAYER, TREE_LAYER])
        self.composite = QComboBox()
        self.composite.addItems(list(COMPOSITES))
        self.composite.setToolTip("LRP's rules: ε-plus-flat (the usual choice), ε-γ-box, α2β1, or ε everywhere")
        self.reduce = QComboBox()
        self.reduce.addItems(list(REDUCTIONS))
        self.reduce.setToolTip("how a gradient map joins the colour channels: the largest magnitude (max), the signed "
                               "average (mean), or all three as colours (rgb)")
        self.cmap = QComboBox()
        self.cmap.addItems([AUTO_CMAP, *COLORMAPS])
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(70)
        self.opacity.setMaximumWidth(140)
        self.clip = DoubleSpinBox()
        self.clip.setRange(0.0, 20.0)
        self.clip.setSingleStep(0.5)
        self.clip.setDecimals(1)
        self.clip.setValue(HeatmapOptions.clip)
        self.clip.setSuffix(" %")
        self.clip.setToolTip("the largest values that saturate the colours (1-2 % is usual; 0: scale to the maximum)")
        self.map_only = QCheckBox("map only")
        self.map_only.setToolTip("draw the map alone, not over the image")
        row, look = QWidget(), QWidget()  # toolbars that wrap on a narrow tab
        for bar, controls in ((row, (("method", self.method), (None, self.why_not), ("CAM layer", self.layer_choice),
                                     ("rules", self.composite), ("colour channels", self.reduce))),
                              (look, (("colours", self.cmap), ("opacity", self.opacity), ("saturate top", self.clip),
                                      (None, self.map_only)))):
            flow = FlowLayout(bar)
            for text, widget in controls:
                flow.addWidget(control_group(*([QLabel(text)] if text else []), widget))
        self.compare_button = QToolButton()
        self.compare_button.setText("Compare methods")
        self.compare_button.setToolTip("the chosen methods in a grid, as one job (arrow: choose them)")
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
        self.concepts_button = QPushButton("Concepts")
        self.concepts_button.setToolTip("the channels of the tree's layer this prediction rests on (LRP relevance, "
                                        "with the rules chosen above), each with where it found its evidence")
        buttons = QWidget()
        flow = FlowLayout(buttons)
        for button in (self.compare_button, self.top_button, self.sanity_button, self.curves_button,
                       self.concepts_button):
            flow.addWidget(button)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.canvas = ImageCanvas()
        self.panel_canvas = ImageCanvas()
        self.panel_canvas.scene().sigMouseClicked.connect(self._on_tile_click)
        self.panel_caption = QLabel(" ")
        self.panel_caption.setWordWrap(True)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "fraction of pixels deleted / inserted, most relevant first")
        self.plot.setLabel("left", "target probability")
        readable_legend(self.plot, (-10, 10))  # top right: the curves start, where they say most, at the left
        self.plot.hide()
        self.lower = lower = QWidget()  # comparisons, sanity check and curves: shown once there are some
        lower.hide()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.panel_canvas, 1)
        lower_layout.addWidget(self.plot, 1)
        self.concept_list = ConceptList()
        self.concept_list.hide()
        self.concept_list.channel_clicked.connect(self._on_concept)
        self.concept_list.menu_requested.connect(self._concept_menu)
        self.context_menu: QMenu | None = None
        self.references = ReferenceStrip()
        self.references.hide()
        concepts_row = QHBoxLayout()
        concepts_row.addWidget(self.concept_list, 1)
        concepts_row.addWidget(self.references)
        lower_layout.addLayout(concepts_row, 1)
        lower_layout.addWidget(self.panel_caption)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.canvas)
        splitter.addWidget(lower)
        layout = QVBoxLayout(self)
        layout.addWidget(row)
        layout.addWidget(look)
        layout.addWidget(buttons)
        layout.addWidget(self.message)
        layout.addWidget(splitter, 1)
        self.method.currentIndexChanged.connect(self._on_method)
        for signal in (self.why_not.toggled, self.layer_choice.currentIndexChanged,
                       self.composite.currentIndexChanged, self.reduce.currentIndexChanged):
            signal.connect(self.refresh)
        for signal in (self.cmap.currentIndexChanged, self.opacity.valueChanged, self.clip.valueChanged,
                       self.map_only.toggled):
            signal.connect(self._redraw)
        self.compare_button.clicked.connect(self.compare_methods)
        self.top_button.clicked.connect(self.top_classes)
        self.sanity_button.clicked.connect(self.sanity_check)
        self.curves_button.clicked.connect(self.deletion_insertion)
        self.concepts_button.clicked.connect(self.show_concepts)
        session.unit_changed.connect(self._mark_unit)
        for signal in (session.model_changed, session.image_changed):
            signal.connect(self._clear_extras)
            signal.connect(self.refresh)
        session.target_changed.connect(self.refresh)
        for signal in (session.target_changed, session.layer_changed, self.method.currentIndexChanged,
                       self.why_not.toggled, self.layer_choice.currentIndexChanged, self.composite.currentIndexChanged,
                       self.reduce.currentIndexChanged):
            signal.connect(self._drop_stale_extras)
        session.layer_changed.connect(self._on_layer)
        self.message.setText(NO_INPUT)
        remember(self, "method", "layer_choice", "composite", "reduce", "cmap", "opacity", "clip", "map_only")
        self._enable_options()

    # --- what to compute -----------------------------------------------------------------------

    @property
    def method_name(self) -> str:
        return self.method.currentData()

    def options(self) -> HeatmapOptions:
        """The options the widgets show; the target is the session's (None: the top class, which the
        job finds itself, so the map need not wait for the predictions)."""
        cmap = self.cmap.currentText()
        return HeatmapOptions(self.method_name, self.session.target, self.why_not.isChecked(),
                              self.opacity.value() / 100, None if cmap == AUTO_CMAP else cmap,
                              round(self.clip.value(), 1), not self.map_only.isChecked(),
                              self.reduce.currentText(), self.composite.currentText())

    def _on_method(self, *_) -> None:
        self._enable_options()
        self.refresh()

    def _enable_options(self) -> None:
        """Only the choices the method uses are enabled."""
        method = METHODS[self.method_name]
        self.layer_choice.setEnabled(method.uses_layer)
        self.composite.setEnabled("composite" in method.options)
        self.reduce.setEnabled("reduce" in method.options)

    def cam_layer(self) -> str | None:
        if not METHODS[self.method_name].uses_layer or self.layer_choice.currentText() == AUTO_LAYER:
            return None
        return self.session.layer

    @property
    def layer(self) -> str | None:
        return self.shown.heatmap.layer if self.shown else None

    def _inputs(self, layer: str | None) -> Inputs | None:
        handle, image = self.session.model, self.session.image
        if handle is None or image is None:
            self._say(NO_INPUT)
            return None
        return Inputs(handle, image, layer)

    def _on_layer(self, *_) -> None:
        if self.layer_choice.currentText() == TREE_LAYER:
            self.refresh()

    # --- the main map ----------------------------------------------------------------------------

    def compute(self) -> None:
        inputs = self._inputs(self.cam_layer())
        if inputs is None:
            return
        options = self.options()
        name = METHODS[options.method].title
        self._say(f"Computing {name} …")
        self.jobs.start(lambda: explain_job(inputs, options), kind="heatmap-view", label=name,
                        on_result=lambda explained: self._show(inputs.handle, explained), on_error=self._failed)

    def _show(self, handle, explained: Explained) -> None:
        if handle is not self.session.model:
            return
        self.shown, heatmap = explained, explained.heatmap
        x, y = heatmap.peak()
        self._say(f"{title(heatmap, explained.label)}; strongest at x={x}, y={y} of the model input")
        self._redraw()

    def _redraw(self, *_) -> None:
        if self.shown is not None:
            self.canvas.set_pixels(self.picture()[0])
        if self.lower_panels is not None:
            self._show_panels(self.lower_panels)
        if self.concepts is not None:
            self._show_concepts(self.concepts)

    def picture(self) -> tuple[np.ndarray, dict] | None:
        if self.shown is None:
            return None
        picture = draw(self.shown, self.options())
        return picture.pixels, picture.settings

    def _failed(self, exc: BaseException) -> bool:
        if not isinstance(exc, UserError):
            return False
        self._say(str(exc))
        return True

    def _say(self, text: str) -> None:
        self.message.setText(text)

    # --- the extra jobs --------------------------------------------------------------------------

    @property
    def panels(self) -> tuple:
        """The maps shown below, as (name, Heatmap) pairs."""
        return self.lower_panels.maps if self.lower_panels is not None else ()

    def _clear_extras(self, *_) -> None:
        """Panels and curves belong to one model and image: drop them when either changes."""
        self.lower_panels, self.tiles, self.curves, self.sanity, self.concepts = None, None, None, None, None
        self.extra_made_for = {}
        self.concept_list.clear()
        self.concept_list.hide()
        self.references.hide()
        self.panel_canvas.clear()
        self.plot.clear()
        self.plot.hide()
        self.panel_canvas.show()
        self.panel_caption.setText(" ")
        self.lower.hide()

    def _show_panels(self, panels: Panels) -> None:
        self.lower_panels, self.concepts = panels, None
        self.plot.hide()
        self.concept_list.hide()
        self.references.hide()
        self.panel_canvas.show()
        self.lower.show()
        self.tiles = draw_panels(panels, self.options())
        self.panel_canvas.set_pixels(self.tiles.pixels)
        self.panel_caption.setText(panels.caption)

    def _on_tile_click(self, event) -> None:
        point = self.panel_canvas.left_click_point(event)
        if self.tiles is None or point is None:
            return
        index = self.tiles.tile_at(point.x(), point.y())
        if index is not None:
            event.accept()
            self.show_tile(index)

    def show_tile(self, index: int) -> None:
        """Show tile ``index``'s method and target in the main picture (a sanity-check stage shares both)."""
        heatmap = self.panels[index][1]
        if heatmap.target is not None and heatmap.target != self.session.effective_target:
            self.session.set_target(heatmap.target)
        if heatmap.method != self.method_name:
            self.method.setCurrentIndex(self.method.findData(heatmap.method))

    def _run_extra(self, make_job, label: str, on_result, depends_on: tuple[str, ...]) -> None:
        """Run an extra picture's job; it is shown for, and kept while, the choices it ``depends_on``."""
        made_for = {key: value for key, value in self._choices().items() if key in depends_on}

        def show(result) -> None:
            self.extra_made_for = made_for
            on_result(result)

        self.panel_caption.setText(f"{label} …")
        self.jobs.start(make_job, kind="heatmap-extra", label=label, on_result=show, on_error=self._failed)

    def _choices(self) -> dict:
        return {"method": self.method_name, "target": self.session.target, "why_not": self.why_not.isChecked(),
                "layer": self.cam_layer(), "tree_layer": self.session.layer, "composite": self.composite.currentText(),
                "reduce": self.reduce.currentText()}

    def _drop_stale_extras(self, *_) -> None:
        """An extra picture made for other choices (an earlier class, method or layer) is not left up."""
        choices = self._choices()
        if any(choices[key] != value for key, value in self.extra_made_for.items()):
            self._clear_extras()

    def compared_methods(self) -> list[str]:
        return [action.data() for action in self.compare_menu.actions() if action.isChecked()]

    def compare_methods(self) -> None:
        """The methods checked in the button's menu for the current target, as one job."""
        methods = self.compared_methods()
        if not methods:
            return self.panel_caption.setText("Tick at least one method in the menu of Compare methods.")
        inputs = self._inputs(self.session.layer if self.layer_choice.currentText() == TREE_LAYER else None)
        if inputs is not None:
            options = self.options()
            self._run_extra(lambda: compare_job(inputs, options, methods), "comparing methods", self._show_panels,
                            ("target", "why_not", "layer"))

    def top_classes(self) -> None:
        inputs = self._inputs(self.cam_layer())
        if inputs is not None:
            options = self.options()
            self._run_extra(lambda: top_classes_job(inputs, options, 3), "maps of the top-3 classes",
                            self._show_panels, ("method", "why_not", "layer", "composite", "reduce"))

    def sanity_check(self) -> None:
        """Cascading randomisation from the top of the current method."""
        inputs = self._inputs(self.cam_layer())
        if inputs is None:
            return
        options = self.options()

        def shown(result) -> None:
            panels, self.sanity = result
            self._show_panels(panels)

        self._run_extra(lambda: sanity_job(inputs, options), "sanity check", shown,
                        ("method", "target", "why_not", "layer", "composite", "reduce"))

    def deletion_insertion(self) -> None:
        """Deletion and insertion curves of the shown map, with their areas."""
        if self.shown is None:
            return self._say("Compute a heatmap first.")
        handle, explained = self.session.model, self.shown

        def shown(curves) -> None:
            self.curves = curves
            self.lower_panels, self.tiles, self.concepts = None, None, None
            self.panel_canvas.hide()
            self.concept_list.hide()
            self.references.hide()
            self.plot.show()
            self.lower.show()
            self.plot.clear()
            for curve, colour in zip(curves, ("#d6604d", "#2166ac")):
                self.plot.plot(curve.fractions, curve.scores, pen=pg.mkPen(colour, width=2),
                               name=f"{curve.kind}: AUC {curve.auc:.3f}")
            self.panel_caption.setText("  ·  ".join(f"{c.kind} AUC {c.auc:.3f}" for c in curves)
                                       + " (deletion low and insertion high = a faithful map)")

        self._run_extra(lambda: curves_job(handle, explained.pixels, explained.heatmap),
                        "deletion and insertion curves", shown,
                        ("method", "target", "why_not", "layer", "composite", "reduce"))

    # --- concepts ------------------------------------------------------------------------------

    def show_concepts(self) -> None:
        """The channels of the tree's layer the current target rests on, in the concept list."""
        layer = self.session.layer
        if layer is None:
            return self.panel_caption.setText("Pick a layer in the tree to see its concepts.")
        inputs = self._inputs(layer)
        if inputs is None:
            return
        options = ConceptOptions(target=self.session.target, composite=self.composite.currentText(),
                                 why_not=self.why_not.isChecked())
        self._run_extra(lambda: concepts_panels(inputs, options), f"concepts at {layer}", self._show_concepts,
                        ("target", "why_not", "tree_layer", "composite"))

    def _show_concepts(self, result) -> None:
        self.concepts, (found, panels) = result, result
        self.lower_panels, self.tiles = None, None
        self.panel_canvas.hide()
        self.plot.hide()
        options = self.options()
        self.concept_list.set_concepts(found, concept_tiles(panels, options.alpha, options.cmap, options.clip))
        self.concept_list.show()
        self.references.hide()
        self.lower.show()
        self.panel_caption.setText(panels.caption + " — click a concept to make it the current unit")
        self._mark_unit(self.session.unit)

    def _on_concept(self, channel: int) -> None:
        if self.concepts is not None:
            self.session.set_unit(Unit(self.concepts[0].layer, channel))
            self.show_references(channel)

    def _concept_menu(self, channel: int, where: QPoint) -> None:
        """Edit a concept's channel as from the activation grid: the views run again on the edited model."""
        if self.concepts is None:
            return
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        add_edit_actions(menu, self.session, self.concepts[0].layer, channel, self.message.setText)
        self.context_menu = menu
        menu.popup(where)

    def show_references(self, channel: int) -> None:
        """The channel's reference images, when the Dataset tab has an index of this model with the layer."""
        from cnnexplorer.core.attribution.concepts import references_job

        source = self.reference_source() if self.reference_source is not None else None
        handle, layer = self.session.model, self.concepts[0].layer
        if source is None or source[0].model_spec != handle.spec:
            return
        index, probe = source
        if layer not in index.layers:
            return self.panel_caption.setText(f"The dataset index has no record of {layer}; index it with that layer "
                                              "to see reference images.")
        target, composite = self.session.target, self.concepts[0].composite

        def job():
            return references_job(handle, index, lambda i: handle.preprocessing.to_tensor(probe.image(i)), layer,
                                  channel, target, REFERENCES, composite)

        def shown(references) -> None:
            if self.concepts is not None and self.concepts[0].layer == layer:
                self.references.set_references(layer, references, index.thumbnails)
                self.references.show()

        self.jobs.start(job, kind="heatmap-references", label=f"reference images of {layer} channel {channel}",
                        on_result=shown, on_error=self._failed)

    def _mark_unit(self, unit) -> None:
        if self.concepts is not None:
            layer = self.concepts[0].layer
            self.concept_list.select_channel(unit.channel if unit is not None and unit.layer == layer else None)
