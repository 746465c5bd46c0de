"""The "Dataset" tab: a probe set indexed once under the current model, then read four ways.

Open a folder (File › Open dataset…, a folder dropped on the window, or a data spec typed here)
and Index runs ``core.dataset.index_job`` in a worker (progress, cancel, resumed from the cache;
a finished index is read back at once). Its pages:

- **Atlas** — the current unit's (or the current layer's first channels') top dataset patches with
  their DeconvNet and guided-backprop reconstructions (``pictures.atlas``); a click on a patch opens
  its image. Clicking a tile in the activation grid makes its channel the current unit.
- **Neighbours** — the current image's nearest images in a layer's feature space and in pixel space
  (``pictures.neighbours``); a click on one opens it.
- **Map** — a 2-D PCA or t-SNE of a layer's pooled features, coloured by label, prediction or
  correctness; hover, click to open, Shift-drag to list a rectangle's images, Ctrl-drag to draw
  around them (Export writes ``pictures.map``).
- **Evaluation** — accuracy, the confusion matrix (``pictures.confusion``) whose cells list their
  images, and the most confident mistakes; a listed image opens on a double click or Enter.
- **Faithfulness** — heatmap methods × metrics (deletion, insertion, ROAD; ``core.faithfulness``) with
  the random map's row, for the current image (with its model-randomisation sanity strip,
  ``pictures.sanity``) or the opened set's first images; needs no index.

An open index also gives the session its per-channel means (``Session.dataset_means``), which the
activation grid's "set to the dataset mean" uses.

Each page is drawn from what it depends on (``_page_key``: the atlas from the layer and unit, the
neighbours from the image, the map from its own controls, the evaluation from the index alone), when
it is shown and that changed: a change made on another tab is drawn on coming back, and opening an
image from the map's selection or a confusion cell's list keeps that list. Each page makes its
picture in a job of its own, and only its latest job may show the result: a picture that arrives
after what it was made from changed (a new model, another unit) is dropped. A set being indexed
leaves the one shown in place until it is ready, and a set that fails to open leaves it too.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QSplitter, QTabWidget, QVBoxLayout, QWidget)

from cnnexplorer.core.dataset.index import CacheHit, IndexNote, index_job
from cnnexplorer.core.dataset.layer_plan import all_layers
from cnnexplorer.core.dataset.members import member_image
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Progress
from cnnexplorer.gui.dialogs import NON_NATIVE
from cnnexplorer.gui.remembered import remember
from cnnexplorer.gui.session import Session, Unit
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.widgets.feature_map import FeatureMap
from cnnexplorer.gui.widgets.flow_layout import FlowLayout, control_group
from cnnexplorer.gui.widgets.image_list import ImageList
from cnnexplorer.gui.widgets.spin_boxes import SpinBox
from cnnexplorer.gui.workers import JobRunner
from cnnexplorer.pictures.base import Inputs, Picture

LAYER_CHOICES = ("default layers", "current layer", "every layer")
COLOURINGS = {"label": "label", "prediction": "prediction", "right or wrong": "correct"}
PROJECTIONS = {"PCA": "pca", "t-SNE": "tsne"}
PAGES = ("Atlas", "Neighbours", "Map", "Evaluation", "Faithfulness")
VIEW_NAMES = {"Atlas": "atlas", "Neighbours": "neighbours", "Map": "map", "Evaluation": "confusion",
              "Faithfulness": "faithfulness"}
DEFAULT_METHODS = "gradcam,saliency,inputxgrad"
PAGE_TIPS = {"Atlas": "The current unit's strongest images in the set, cropped to its receptive field",
             "Neighbours": "The current image's nearest images in a layer's feature space and in pixel space",
             "Map": "The set's images as points of a 2-D projection of a layer's features",
             "Evaluation": "Accuracy, the confusion matrix and the most confident mistakes (a labelled set)",
             "Faithfulness": "How faithful each heatmap method is, on the current image or the set's first images"}
FAITH_CAPTION = ("Measure how faithful each heatmap method is: lower deletion AUC and ROAD MoRF, higher insertion AUC "
                 "and ROAD LeRF are better; every method should beat the random map.")


def indexed_set_job(spec: str, handle, layers: list[str] | None, top_k: int, batch_size: int):
    """Open the probe set ``spec`` and index it under ``handle``: one worker job, returning both."""
    from cnnexplorer.core.dataset.probe import open_probe_job

    yield Progress(0, None, f"opening {spec}")
    probe = yield from open_probe_job(spec)  # its spec names a folder absolutely: a sidecar names the set from any folder
    return probe, (yield from index_job(handle, probe, layers=layers, top_k=top_k, batch_size=batch_size))


def with_features(handle, probe, index, layer: str, lock):
    """``index`` holding ``layer``'s pooled features: those of the index, else read from the cache or made in a pass
    of that layer (kept in the cache) and added to it; ``lock`` lets one pass run for the pages that wait on it."""
    with lock:
        if layer not in index.features:
            yield Progress(0, None, f"pooling {layer} over the set")
            made = yield from index_job(handle, probe, layers=[layer], feature_layers=[layer])
            index.features[layer] = made.features[layer]
    return index


def atlases_job(handle, probe, index):
    """The atlases of an index (making them traces the receptive fields: a probe forward)."""
    from cnnexplorer.core.dataset.atlas import Atlases

    yield Progress(0, None, "tracing the receptive fields")
    return Atlases(handle, probe, index)


def map_job(handle, probe, index, layer: str, by: str, method: str, projection=None):
    """The map's projection (``projection`` when the view has it already: a t-SNE of 50,000 points takes a
    minute, a PCA seconds) and groups for the plot, and its picture for Export: a worker's job."""
    from cnnexplorer.core.dataset.evaluate import evaluate_index
    from cnnexplorer.core.dataset.projection import point_groups, project_job
    from cnnexplorer.pictures.map import map_picture

    if projection is None:
        projection = yield from project_job(index.features[layer], method)
    truth = evaluate_index(index).labels if by == "correct" else None
    group, names = point_groups(by, index.labels, index.label_names, index.top5[:, 0], handle.class_names, truth)
    return projection, group, names, map_picture(handle, probe, index, layer, by, projection)


def image_faithfulness_job(handle, image, methods: list[str], steps: int):
    """The table for the current image, then its sanity-check strip (the first method's maps as the
    model is randomised from the top)."""
    from cnnexplorer.core.faithfulness import image_job
    from cnnexplorer.pictures.heatmap import HeatmapOptions
    from cnnexplorer.pictures.sanity import make_sanity

    from cnnexplorer.pictures.base import settings_of
    from cnnexplorer.pictures.faithfulness import FaithfulnessOptions, draw_table

    table, _ = yield from image_job(handle, handle.pixels(image), methods, steps=steps)
    report = table.to_json()
    picture = Picture(draw_table(report, f"faithfulness of {image.name}: {handle.spec}"),
                      settings=settings_of(FaithfulnessOptions(tuple(methods), steps)), report=report)
    strip = yield from make_sanity(Inputs(handle, image), HeatmapOptions(method=methods[0]))
    return picture, strip


def set_faithfulness_job(handle, probe, methods: list[str], steps: int, limit: int):
    from cnnexplorer.core.faithfulness import dataset_job

    return (yield from dataset_job(handle, probe, methods, steps, limit=limit)).to_json()


def evaluation_job(handle, probe, index):
    """The index's evaluation, its confusion picture and the picture's cell layout."""
    from cnnexplorer.core.dataset.evaluate import evaluate_index
    from cnnexplorer.pictures.confusion import confusion_grid, confusion_picture

    yield Progress(0, None, "evaluating")
    evaluation = evaluate_index(index)
    return evaluation, confusion_grid(evaluation), confusion_picture(handle, probe, evaluation)


class DatasetView(View):
    title = "Dataset"
    open_image_requested = Signal(str)

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.data = QLineEdit()
        self.data.setObjectName("data")
        self.data.setPlaceholderText("a folder of images, or builtin:digits, mnist:ROOT …")
        self.data.setToolTip("The probe set: a folder (sub-folders are labels), folder:PATH, builtin:shapes, "
                             "builtin:digits, mnist:ROOT, fashion-mnist:ROOT or cifar10:ROOT")
        self.data.returnPressed.connect(self.start_index)
        browse = QPushButton("Folder…")
        browse.setToolTip("Choose a folder of images (sub-folders are labels) and index it")
        browse.clicked.connect(self._browse)
        self.layers = QComboBox()
        self.layers.setObjectName("layers")
        self.layers.addItems(LAYER_CHOICES)
        self.layers.setToolTip("Which layers to index: every convolution and linear output the tree shows, the "
                               "current layer alone, or every layer with maps")
        self.top_k = SpinBox()
        self.top_k.setObjectName("top_k")
        self.top_k.setRange(1, 64)
        self.top_k.setValue(9)
        self.top_k.setPrefix("top ")
        self.top_k.setToolTip("How many images each unit keeps: its strongest, one per image")
        self.batch = SpinBox()
        self.batch.setObjectName("batch")
        self.batch.setRange(1, 1024)
        self.batch.setValue(64)
        self.batch.setPrefix("batch ")
        self.batch.setToolTip("Images per batch of the pass; a larger batch is faster on a GPU and needs more memory "
                              "(the index is kept per batch size)")
        self.index_button = QPushButton("Index")
        self.index_button.setToolTip("One pass over the set under the current model (kept in the cache, resumed "
                                     "if stopped)")
        self.index_button.clicked.connect(self.start_index)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the pass; its progress is kept and Index resumes it")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_index)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.status = QLabel("Open a folder of images (File › Open dataset…, or drop a folder on the window), "
                             "then Index.")
        self.status.setWordWrap(True)

        top = QHBoxLayout()
        for widget, stretch in ((QLabel("Data"), 0), (self.data, 1), (browse, 0)):
            top.addWidget(widget, stretch)
        run = QWidget()  # wraps on a narrow tab
        flow = FlowLayout(run)
        flow.addWidget(control_group(QLabel("Index"), self.layers))
        for widget in (self.top_k, self.batch, self.index_button, self.cancel_button):
            flow.addWidget(widget)

        self.pages = QTabWidget()
        self.atlas_canvas = ImageCanvas(fit="width")
        self.atlas_canvas.scene().sigMouseClicked.connect(
            lambda event: self._open_clicked(self.atlas_canvas, event, self._atlas and self._atlas_image_at))
        self.atlas_caption = QLabel()
        self.atlas_caption.setWordWrap(True)
        self.feature_layer = QComboBox()
        self.feature_layer.setToolTip("The layer whose pooled outputs are the feature space (neighbours and map); a "
                                      "layer the index has not pooled takes one pass over the set, kept in the cache")
        self.feature_layer.currentTextChanged.connect(self._redraw)
        self.k = SpinBox()
        self.k.setRange(1, 32)
        self.k.setValue(8)
        self.k.setPrefix("k = ")
        self.k.setToolTip("How many neighbours each row shows, and the k of the k-NN accuracy")
        self.k.valueChanged.connect(self._redraw)
        self.neighbours_canvas = ImageCanvas(fit="width")
        self.neighbours_canvas.scene().sigMouseClicked.connect(
            lambda event: self._open_clicked(self.neighbours_canvas, event, self._neighbours and self._neighbours.hit))
        self.neighbours_caption = QLabel()
        self.neighbours_caption.setWordWrap(True)
        self.colour_by = QComboBox()
        self.colour_by.addItems(COLOURINGS)
        self.colour_by.setToolTip("Colour each point by its label, the model's prediction, or whether that is right")
        self.colour_by.currentTextChanged.connect(self._redraw)
        self.projection = QComboBox()
        self.projection.addItems(PROJECTIONS)
        self.projection.setToolTip("PCA: the two directions of largest variance, at once. t-SNE: neighbours kept "
                                   "together, clusters as islands (openTSNE; about 20 s for 20,000 images)")
        self.projection.currentTextChanged.connect(self._redraw)
        self._projections: dict[tuple, object] = {}  # (index, layer, method) → its projection, made once
        self.map = FeatureMap()
        self.map.picked.connect(self._open_image_number)
        self.map.selected.connect(self._list_selection)
        self.selection = ImageList()
        self.selection.setMaximumWidth(240)
        self.selection.hide()  # shown with a selection: the map has the page until then
        self.selection.setToolTip("The images inside the last rectangle (Shift-drag) or outline (Ctrl-drag) drawn on "
                                  "the map; double-click one (or press Enter) to open it")
        self.selection.opened.connect(self._open_image_number)
        self.selection.chosen.connect(self.map.point_out)
        self.map_caption = QLabel()
        self.map_caption.setWordWrap(True)
        self.confusion_canvas = ImageCanvas(fit="width")
        self.confusion_canvas.scene().sigMouseClicked.connect(self._confusion_click)
        self.evaluation_caption = QLabel()
        self.evaluation_caption.setWordWrap(True)
        self.mistakes = ImageList()
        self.mistakes.setMaximumWidth(360)
        self.mistakes.setToolTip("The most confident mistakes, or the images of the clicked cell of the matrix; "
                                 "double-click one (or press Enter) to open it")
        self.mistakes.opened.connect(self._open_image_number)
        self._build_faithfulness()
        self._build_pages()

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(run)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.pages, 1)
        remember(self, "data", "layers", "top_k", "batch", "k", "projection", "colour_by", "faith_methods",
                 "faith_steps", "faith_limit")

        self.probe = self.index = self.atlases = self._evaluation = None
        self._pooling = threading.Lock()  # one pass at a time for a layer the index has not pooled
        self._running = None
        self._pictures: dict[str, Picture] = {}
        self._atlas = self._neighbours = None
        self._map_text = ""
        self._drawn: dict[str, tuple] = {}  # page → what its picture (shown, or being made) was made from
        self._page_jobs: dict[str, object] = {}  # page → the job making its picture (each page its own)
        self._tracing = None  # the job tracing the receptive fields for the atlas
        self.pages.currentChanged.connect(self._redraw)
        session.model_changed.connect(self._model_changed)
        for change in (session.layer_changed, session.unit_changed, session.image_changed):
            change.connect(self.refresh)  # drawn now if the tab is shown, else when it is next shown

    def _build_pages(self) -> None:
        atlas = QWidget()
        column = QVBoxLayout(atlas)
        column.addWidget(self.atlas_canvas, 1)
        column.addWidget(self.atlas_caption)
        neighbours = QWidget()
        column = QVBoxLayout(neighbours)
        row = QHBoxLayout()
        row.addWidget(QLabel("Feature layer"))
        row.addWidget(self.feature_layer, 1)
        row.addWidget(self.k)
        column.addLayout(row)
        column.addWidget(self.neighbours_canvas, 1)
        column.addWidget(self.neighbours_caption)
        map_page = QWidget()
        column = QVBoxLayout(map_page)
        row = QHBoxLayout()
        row.addWidget(QLabel("Projection"))
        row.addWidget(self.projection)
        row.addWidget(QLabel("Colour by"))
        row.addWidget(self.colour_by)
        row.addStretch(1)
        column.addLayout(row)
        split = QSplitter()
        split.addWidget(self.map)
        split.addWidget(self.selection)
        split.setStretchFactor(0, 4)
        column.addWidget(split, 1)
        column.addWidget(self.map_caption)
        evaluation = QWidget()
        column = QVBoxLayout(evaluation)
        split = QSplitter()
        split.addWidget(self.confusion_canvas)
        split.addWidget(self.mistakes)
        split.setStretchFactor(0, 3)
        column.addWidget(split, 1)
        column.addWidget(self.evaluation_caption)
        for page, name in zip((atlas, neighbours, map_page, evaluation, self.faithfulness_page), PAGES):
            self.pages.addTab(page, name)
            self.pages.setTabToolTip(self.pages.count() - 1, PAGE_TIPS[name])

    def _build_faithfulness(self) -> None:
        from cnnexplorer.gui.widgets.faithfulness_table import FaithfulnessTable

        self.faith_methods = QLineEdit(DEFAULT_METHODS)
        self.faith_methods.setToolTip("Heatmap methods, comma-separated; the random map is always added")
        self.faith_steps = SpinBox()
        self.faith_steps.setRange(2, 200)
        self.faith_steps.setValue(20)
        self.faith_steps.setPrefix("steps ")
        self.faith_steps.setToolTip("How many steps the deletion and insertion curves take")
        self.faith_limit = SpinBox()
        self.faith_limit.setRange(1, 100_000)
        self.faith_limit.setValue(100)
        self.faith_limit.setPrefix("first ")
        self.faith_limit.setSuffix(" images")
        self.faith_limit.setToolTip("How many of the set's first images Measure the set uses")
        self.faith_image_button = QPushButton("Measure the current image")
        self.faith_image_button.setToolTip("Deletion, insertion and ROAD of each method on the current image, and the "
                                           "sanity check of the first method")
        self.faith_image_button.clicked.connect(self.measure_image)
        self.faith_set_button = QPushButton("Measure the set")
        self.faith_set_button.setToolTip("The first images of the opened set (open and index a set first)")
        self.faith_set_button.clicked.connect(self.measure_set)
        self.faith_cancel = QPushButton("Cancel")
        self.faith_cancel.setToolTip("Stop the measurement")
        self.faith_cancel.setEnabled(False)
        self.faith_cancel.clicked.connect(self._cancel_faithfulness)
        self.faith_progress = QProgressBar()
        self.faith_progress.hide()
        self.faith_table = FaithfulnessTable()
        self.sanity_canvas = ImageCanvas()  # the whole strip, every stage, however short the page
        self.sanity_canvas.setToolTip("The first method's map, then its maps as the model's layers are re-initialised "
                                      "from the top; the caption below names each stage. Scroll to zoom, drag to pan.")
        self.faith_caption = QLabel(FAITH_CAPTION)
        self.faith_caption.setWordWrap(True)
        self._faith_job = None
        self._means_of = None
        page = QWidget()
        column = QVBoxLayout(page)
        row = QWidget()  # wraps on a narrow tab
        flow = FlowLayout(row)
        self.faith_methods.setMinimumWidth(240)
        flow.addWidget(control_group(QLabel("Methods"), self.faith_methods))
        for widget in (self.faith_steps, self.faith_image_button, self.faith_limit, self.faith_set_button,
                       self.faith_cancel):
            flow.addWidget(widget)
        column.addWidget(row)
        column.addWidget(self.faith_progress)
        split = self.faith_split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.faith_table)
        split.addWidget(self.sanity_canvas)
        split.setStretchFactor(1, 2)
        column.addWidget(split, 1)
        column.addWidget(self.faith_caption)
        self.faithfulness_page = page

    # --- the probe set and its index ---------------------------------------------------------

    @property
    def view_name(self) -> str:
        return VIEW_NAMES[PAGES[self.pages.currentIndex()]]

    def show_atlas(self, unit: Unit) -> None:
        """Make ``unit`` current and show its atlas (the Activations tab's context menu asks for it)."""
        self.pages.setCurrentIndex(PAGES.index("Atlas"))
        self.session.set_unit(unit)
        if self.index is None:
            self.status.setText("Open a dataset and index it to see this unit's strongest images.")

    def open_dataset(self, spec: str) -> None:
        """Show ``spec`` (a folder or a data spec) and index it."""
        self.data.setText(spec)
        self.start_index()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open dataset (a folder of images)", self.data.text(),
                                                  options=NON_NATIVE)
        if folder:
            self.open_dataset(folder)

    def _chosen_layers(self) -> list[str] | None:
        choice = self.layers.currentText()
        if choice == "current layer":
            if not self.session.layer:
                raise UserError("no current layer: select a layer in the Model tree, or index the default layers")
            return [self.session.layer]
        return all_layers(self.session.model) if choice == "every layer" else None

    def start_index(self) -> None:
        spec, handle = self.data.text().strip(), self.session.model
        if not spec or handle is None:
            self.status.setText("Load a model and name a dataset (a folder of images) first.")
            return
        try:
            layers = self._chosen_layers()
        except UserError as exc:
            self.status.setText(str(exc))
            return
        self._drop_index_job()  # the set shown stays until the new one is indexed
        self._index_controls(True)
        self.status.setText(f"Opening {spec} …")
        notes: list[str] = []
        top_k, batch = self.top_k.value(), self.batch.value()

        def cancelled() -> None:
            if self._running is job:  # (not when a new pass or a new model dropped it)
                self._stopped("Indexing cancelled; Index resumes it.")

        job = self._running = self.jobs.start(
            lambda: indexed_set_job(spec, handle, layers, top_k, batch), kind="dataset-index",
            label=f"indexing {spec}", on_result=lambda found: self._indexed(handle, found, notes),
            on_item=lambda item: self._note(item, notes), on_progress=self._progress,
            on_error=self._failed, on_cancelled=cancelled, on_finished=lambda: self._index_over(job))

    def cancel_index(self) -> None:
        if self._running is not None:
            self._running.cancel()

    def _drop_index_job(self) -> None:
        """Cancel the pass running, if any, without a word: a new pass or a new model replaces it."""
        if self._running is not None:
            self._running.cancel()
            self._running = None
        self._index_controls(False)

    def _index_controls(self, running: bool) -> None:
        self.progress.setRange(0, 0)
        self.progress.setVisible(running)
        self.index_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _index_over(self, job) -> None:
        if self._running is job:
            self._running = None
            self._index_controls(False)

    def _note(self, item, notes: list[str]) -> None:
        if isinstance(item, IndexNote):
            notes.append(item.text)
        elif isinstance(item, CacheHit):
            notes.append("read from the cache")

    def _progress(self, step: Progress) -> None:
        if step.total:
            self.progress.setRange(0, int(step.total))
            self.progress.setValue(int(step.done))
        self.progress.setFormat(step.message or "%p %")
        self.status.setText(step.message)

    def _failed(self, exc: BaseException) -> bool:
        if isinstance(exc, UserError):
            self._stopped(str(exc))
            return True
        return False

    def _stopped(self, text: str) -> None:
        self.status.setText(text)

    def _indexed(self, handle, found, notes: list[str]) -> None:
        if handle is not self.session.model:
            return
        self._cancel_page_jobs()
        self.probe, self.index = found
        self.atlases = None
        for page in PAGES[:-1]:
            self._clear_page(page)  # the old set's pictures, points and lists: their numbers are not this set's
        skipped = f"; skipped {_count(len(self.probe.skipped), 'unreadable file')}" if self.probe.skipped else ""
        self.status.setText(f"Indexed {_count(self.index.count, 'image')} of {self.probe.spec} at "
                            f"{_count(len(self.index.layers), 'layer')}{skipped}."
                            + "".join(f" {n[:1].upper()}{n[1:]}." for n in notes))
        skipped_files = list(self.probe.skipped.items())[:20]
        self.status.setToolTip("Skipped:\n" + "\n".join(f"{p}: {why}" for p, why in skipped_files) if skipped_files else "")
        self.session.dataset_means = {name: tuple(float(v) for v in layer.mean)
                                      for name, layer in self.index.layers.items()}
        self._means_of = handle
        chosen = self.feature_layer.currentText()
        self.feature_layer.blockSignals(True)
        self.feature_layer.clear()
        self.feature_layer.addItems(list(dict.fromkeys([*self.index.features, *self.index.layers])))
        self._pooling = threading.Lock()  # one pass at a time for a layer the index has not pooled
        if chosen in self.index.features or chosen in self.index.layers:
            self.feature_layer.setCurrentText(chosen)  # the one chosen before, when the new index has it
        self.feature_layer.blockSignals(False)
        self._trace()
        self._redraw()  # the page shown, unless it waits for the tracing

    def _trace(self) -> None:
        """Trace the receptive fields the atlas crops by (once per index; again if stopped)."""
        if self._tracing is not None or self.index is None:
            return
        handle, probe, index = self.session.model, self.probe, self.index

        def stopped() -> None:
            if self._tracing is job:
                self._tracing = None
                self._drawn.pop("Atlas", None)
                self._dirty = True
                self.atlas_caption.setText("Tracing the receptive fields was stopped; switch pages to trace again.")

        def over() -> None:
            if self._tracing is job:
                self._tracing = None

        job = self._tracing = self.jobs.start(lambda: atlases_job(handle, probe, index), kind="dataset-atlases",
                                              label="tracing receptive fields", on_result=self._atlases_ready,
                                              on_cancelled=stopped, on_finished=over)

    def _atlases_ready(self, atlases) -> None:
        if self.index is not None and atlases.index is self.index:
            self.atlases = atlases
            self._redraw()

    def _model_changed(self, *_) -> None:
        """A new model: the index and every page, the faithfulness measurements too, were of the old one."""
        self._cancel_faithfulness()
        self._faithfulness_over(self._faith_job)
        self.faith_table.forget()
        self.sanity_canvas.clear()
        self.faith_caption.setText(FAITH_CAPTION)
        self._forget()

    def _forget(self) -> None:
        """The index no longer fits the model: drop it and the pages made from it."""
        self._drop_index_job()
        self._cancel_page_jobs()
        if self._tracing is not None:
            self._tracing.cancel()
            self._tracing = None
        if self.session.model is not self._means_of:  # edits and device moves keep the same model
            self.session.dataset_means = {}
        self.probe = self.index = self.atlases = None
        self._pictures.clear()
        self._drawn.clear()
        self.status.setToolTip("")
        self.feature_layer.clear()
        for page in PAGES[:-1]:
            self._clear_page(page)
        for caption in (self.atlas_caption, self.neighbours_caption, self.map_caption, self.evaluation_caption):
            caption.clear()  # they spoke of the pictures just cleared
        if self.data.text().strip():  # (before any set is named, the first words stay)
            self.status.setText("Not indexed under this model: press Index to explore the set with it.")

    # --- the pages -------------------------------------------------------------------------------

    def _redraw(self, *_) -> None:
        """Draw the page shown if what it depends on changed since it was drawn (a hidden tab: once shown)."""
        if not self.isVisible():
            self._dirty = True
            return
        page = PAGES[self.pages.currentIndex()]
        key = self._page_key(page)
        if key is None or self._drawn.get(page) == key:
            return
        self._drawn[page] = key
        {"Atlas": self._draw_atlas, "Neighbours": self._draw_neighbours, "Map": self._draw_map,
         "Evaluation": self._draw_evaluation}[page]()

    def _page_key(self, page: str) -> tuple | None:
        """What ``page``'s picture depends on (None: nothing to draw): the atlas on the layer and unit, the
        neighbours on the image, the map on its own controls, the evaluation on the index alone."""
        if self.index is None or page == "Faithfulness":
            return None
        image = self.session.image
        return {"Atlas": (self.atlases is not None, self.session.layer, self.session.unit),
                "Neighbours": (image and (str(image.path), image.sha256), self.feature_layer.currentText(),
                               self.k.value()),
                "Map": (self.feature_layer.currentText(), self.colour_by.currentText(), self.projection.currentText()),
                "Evaluation": ()}[page] + (self.index.key,)

    def _start_page(self, page: str, make_job, label: str, show, caption: QLabel, draft=None) -> None:
        """Make ``page``'s picture in a worker (each page its own: looking at another page does not stop it);
        ``show(result)`` (and ``draft(item)`` for what it yields on the way) only if this is still the page's
        latest job when it comes."""
        def current() -> bool:
            return self._page_jobs.get(page) is job and self.index is not None

        def stopped() -> None:
            if current():
                self._clear_page(page)  # (nothing stale to export)
                self._drawn.pop(page, None)  # made again when next wanted
                self._dirty = True
                caption.setText("Stopped before it was done; switch pages or change a setting to make it again.")

        def failed(exc: BaseException) -> bool:
            """A picture that could not be made: the page shows none (so Export writes none) and says why."""
            if not isinstance(exc, UserError):
                return False
            if current():
                self._clear_page(page)
                caption.setText(f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
            return True

        job = self._page_jobs[page] = self.jobs.start(make_job, kind=f"dataset-{page}", label=label,
                                                      on_result=lambda made: current() and show(made),
                                                      on_item=draft and (lambda item: current() and draft(item)),
                                                      on_error=failed, on_cancelled=stopped)

    def _cancel_page_jobs(self) -> None:
        for job in self._page_jobs.values():
            job.cancel()
        self._page_jobs.clear()

    def compute(self) -> None:
        self._redraw()

    def _draw_atlas(self) -> None:
        from cnnexplorer.pictures.atlas import AtlasOptions, run_atlas

        layer, unit = self.session.layer, self.session.unit
        if self.atlases is None:
            self.atlas_caption.setText("Tracing the receptive fields …")
            self._trace()
            return
        if layer not in self.index.layers:
            self.atlas_caption.setText(f"The index has no record of {layer or 'a layer'}: select an indexed layer in "
                                       f"the tree ({', '.join(list(self.index.layers)[:6])} …), or index the current "
                                       "layer.")
            self._clear_page("Atlas")
            return
        channels = (unit.channel,) if unit is not None and unit.layer == layer else None
        atlases, handle = self.atlases, self.session.model
        self.atlas_caption.setText(f"Making the atlas of {layer} …")
        self._start_page("Atlas", lambda: run_atlas(Inputs(handle, None, layer), AtlasOptions(channels=channels),
                                                    atlases), "making the atlas", self._show_atlas, self.atlas_caption,
                         draft=self._show_atlas_draft)

    def _show_atlas_draft(self, draft) -> None:
        """A newly chosen unit's patches at once; its reconstructions and feature visualisation follow."""
        from cnnexplorer.pictures.atlas import AtlasDraft

        if isinstance(draft, AtlasDraft):
            self._atlas = draft  # its patches open their images already
            self._pictures.pop("Atlas", None)  # Export waits for the whole atlas
            self.atlas_canvas.set_pixels(draft.pixels)
            self.atlas_caption.setText(f"{_units(draft.units)}: the strongest images, cropped to the receptive field; "
                                       "making the reconstructions and the feature visualisation …")

    def _show_atlas(self, atlas) -> None:
        self._atlas = atlas
        self._pictures["Atlas"] = atlas.picture
        self.atlas_canvas.set_pixels(atlas.picture.pixels)
        self.atlas_caption.setText(f"{_units(atlas.units)}: the unit's feature visualisation, its strongest images cropped to its receptive "
                                   "field, and the DeconvNet and guided-backprop reconstructions of that one "
                                   "activation. Click a patch to open its image; click a tile on the Activations tab "
                                   "to choose the unit.")

    def _atlas_image_at(self, x: float, y: float) -> int | None:
        patch = self._atlas.hit(x, y)
        return None if patch is None else patch.image

    def _open_clicked(self, canvas: ImageCanvas, event, image_at) -> None:
        """A left click on a picture of the set's images (the atlas's patches, the neighbours) opens the one
        ``image_at(x, y)`` finds under it; ``image_at`` is None while the page shows no such picture."""
        point = canvas.left_click_point(event)
        image = image_at(point.x(), point.y()) if point is not None and image_at else None
        if image is not None:
            self._open_image_number(image)

    def _draw_neighbours(self) -> None:
        from cnnexplorer.pictures.neighbours import neighbours_picture

        image, layer = self.session.image, self.feature_layer.currentText()
        if image is None or not layer:
            self._clear_page("Neighbours")
            self.neighbours_caption.setText("Open an image to see its nearest images in the set.")
            return
        handle, probe, index, k, lock = self.session.model, self.probe, self.index, self.k.value(), self._pooling

        def job():
            pooled = yield from with_features(handle, probe, index, layer, lock)
            return (yield from neighbours_picture(handle, probe, pooled, image, layer, k))

        self.neighbours_caption.setText("Finding the neighbours …" if layer in index.features else
                                        f"Pooling {layer} over the set (one pass, kept in the cache) …")
        self._start_page("Neighbours", job, "finding neighbours", self._show_neighbours, self.neighbours_caption)

    def _show_neighbours(self, made) -> None:
        self._neighbours, picture = made, made.picture
        self._pictures["Neighbours"] = picture
        self.neighbours_canvas.set_pixels(picture.pixels)
        report = picture.report
        member = report["query_in_set"] is not None
        own = "The image is one of the set's, left out of its own neighbours. " if member else ""
        other = "other " if member else ""
        every = (f"The set holds {_count(report['k'], other + 'image')}, all shown. " if report["k"] < self.k.value()
                 else "")
        if report["feature_knn_acc"] is None:
            accuracy = "With fewer than two labelled images there is no k-NN accuracy."
        else:
            accuracy = (f"{report['knn_k']}-NN accuracy over the set: feature space {_share(report['feature_knn_acc'])}, "
                        f"pixel space {_share(report['pixel_knn_acc'])}.")
        self.neighbours_caption.setText(f"{own}{every}{accuracy} Click a neighbour to open it.")


    def _draw_map(self) -> None:
        layer = self.feature_layer.currentText()
        if not layer:
            return
        handle, probe, index, lock = self.session.model, self.probe, self.index, self._pooling
        by, method = COLOURINGS[self.colour_by.currentText()], PROJECTIONS[self.projection.currentText()]
        known = self._projections.get((index.key, layer, method))

        def job():
            pooled = yield from with_features(handle, probe, index, layer, lock)
            return (yield from map_job(handle, probe, pooled, layer, by, method, known))

        self.map_caption.setText(f"Pooling {layer} over the set (one pass, kept in the cache) …"
                                 if layer not in index.features else
                                 "Projecting the features …" if known is None else "Colouring the map …")
        self._start_page("Map", job, "projecting", lambda made: self._show_map(index, layer, *made), self.map_caption)

    def _show_map(self, index, layer: str, projection, group, names, picture: Picture) -> None:
        if index is not self.index:
            return
        self._pictures["Map"] = picture  # what Export writes
        self._projections[(index.key, layer, projection.method)] = projection
        root = self._root()
        self.map.show_points(projection.points, group, names, [_in_set(source, root) for source in index.sources],
                             index.thumbnails)
        if projection.method == "pca" and not any(projection.variance):
            how = f"all at one point: they do not differ in {layer}'s pooled outputs"
        elif projection.method == "pca":
            shares = " and ".join(_share(v) for v in projection.variance)
            how = f"by the first two principal components of {layer}'s pooled outputs ({shares} of the variance)"
        else:
            how = (f"by t-SNE of {layer}'s pooled outputs (perplexity {projection.perplexity:.3g}: near points are "
                   "alike; distances between clusters mean little)")
        self._map_text = (f"{_count(index.count, 'image')} {how}. Hover a point to see it, click to open it, Shift-drag to "
                          "list a rectangle's images, Ctrl-drag to draw around them.")
        self._list_selection([])  # new points: the last selection was of others

    def _list_selection(self, numbers: list[int]) -> None:
        if self.index is None:  # a drag on an empty map
            return
        self.selection.setVisible(bool(len(numbers)))
        self.selection.show_images(numbers, self._file_name, self.index.thumbnails)
        chosen = f" {len(numbers):,} selected, listed beside the map." if len(numbers) else ""
        self.map_caption.setText(self._map_text + chosen)

    def _draw_evaluation(self) -> None:
        handle, probe, index = self.session.model, self.probe, self.index
        self.evaluation_caption.setText("Evaluating …")
        self._start_page("Evaluation", lambda: evaluation_job(handle, probe, index), "evaluating",
                         lambda made: self._show_evaluation(index, *made), self.evaluation_caption)

    def _show_evaluation(self, index, evaluation, grid, picture: Picture) -> None:
        if index is not self.index:
            return
        self._pictures["Evaluation"] = picture
        self._evaluation, self._grid = evaluation, grid
        self.confusion_canvas.set_pixels(picture.pixels)
        names = evaluation.class_names
        mistakes = {m.image: m for m in evaluation.mistakes(200)}

        def line(number: int) -> str:
            m = mistakes[number]
            return f"{_share(m.prob)} {names[m.predicted]}, is {names[m.label]}\n{self._file_name(number)}"

        self.mistakes.show_images(list(mistakes), line, index.thumbnails)
        unmatched = f" Labels naming no class: {', '.join(evaluation.unmatched)}." if evaluation.unmatched else ""
        listed = "The list holds the most confident mistakes" if self.mistakes.count() else "No mistakes"
        self.evaluation_caption.setText(f"{evaluation.count:,} labelled images: top-1 {_share(evaluation.top1)}, top-5 "
                                        f"{_share(evaluation.top5_accuracy)}. {listed}; click a cell of the matrix to "
                                        f"list its images, double-click one to open it.{unmatched}")

    def _confusion_click(self, event) -> None:
        point = self.confusion_canvas.left_click_point(event)
        if self._evaluation is None or point is None:
            return
        hit = self._grid.cell_at(point.x(), point.y())
        if hit is not None:
            self.list_cell(*hit)

    def list_cell(self, true: int, predicted: int) -> None:
        """List the images of class ``true`` the model called ``predicted``."""
        names = self._evaluation.class_names
        self.mistakes.show_images(self._evaluation.cell(true, predicted), self._file_name, self.index.thumbnails)
        self.evaluation_caption.setText(f"{_count(self.mistakes.count(), 'image')} of {names[true]} called {names[predicted]}; "
                                        "double-click one to open it.")

    # --- faithfulness ------------------------------------------------------------------------------

    def _faith_methods(self) -> list[str]:
        return [m.strip() for m in self.faith_methods.text().split(",") if m.strip()]

    def measure_image(self) -> None:
        handle, image = self.session.model, self.session.image
        if handle is None or image is None:
            self.faith_caption.setText("Load a model and open an image to measure the methods on it.")
            return
        methods, steps = self._faith_methods(), self.faith_steps.value()
        self._start_faithfulness(lambda: image_faithfulness_job(handle, image, methods, steps),
                                 f"measuring {', '.join(methods)} on {image.name}",
                                 lambda made: self._show_faithfulness(handle, made[0].report, image.name, *made))

    def measure_set(self) -> None:
        handle, probe = self.session.model, self.probe
        if handle is None or probe is None:
            self.faith_caption.setText("Open a dataset and index it first (the set is read when it is indexed).")
            return
        methods, steps, limit = self._faith_methods(), self.faith_steps.value(), self.faith_limit.value()
        self._start_faithfulness(lambda: set_faithfulness_job(handle, probe, methods, steps, limit),
                                 f"measuring {', '.join(methods)} on {probe.spec}",
                                 lambda report: self._show_faithfulness(
                                     handle, report, f"{_count(report['count'], 'image')} of {probe.spec}"))

    def _start_faithfulness(self, make_job, label: str, done) -> None:
        self.faith_caption.setText(label[0].upper() + label[1:] + " …")
        self.faith_progress.setValue(0)
        self.faith_progress.show()
        self.faith_cancel.setEnabled(True)
        def cancelled() -> None:
            if self._faith_job is job:  # (not when a new measurement or a new model replaced it)
                self.faith_caption.setText("Cancelled.")

        job = self._faith_job = self.jobs.start(make_job, kind="dataset-faithfulness", label=label, on_result=done,
                                                on_error=self._faithfulness_failed, on_progress=self._faith_step,
                                                on_cancelled=cancelled, on_finished=lambda: self._faithfulness_over(job))

    def _faith_step(self, step: Progress) -> None:
        fraction = step.fraction
        self.faith_progress.setRange(0, 0 if fraction is None else 1000)
        if fraction is not None:
            self.faith_progress.setValue(int(1000 * fraction))

    def _cancel_faithfulness(self) -> None:
        if self._faith_job is not None:
            self._faith_job.cancel()

    def _faithfulness_over(self, job) -> None:
        if self._faith_job is job:  # (a measurement started meanwhile keeps its controls)
            self._faith_job = None
            self.faith_progress.hide()
            self.faith_cancel.setEnabled(False)

    def _faithfulness_failed(self, exc: BaseException) -> bool:
        if isinstance(exc, UserError):
            self.faith_caption.setText(str(exc))
            return True
        return False

    def _show_faithfulness(self, handle, report: dict, what: str, picture: Picture | None = None,
                           strip: Picture | None = None) -> None:
        """The table (Export writes the current image's as ``pictures.faithfulness``) and the sanity strip."""
        if handle is not self.session.model:
            return
        self.faith_table.show_report(report)
        self._pictures.pop("Faithfulness", None)
        self.sanity_canvas.clear()
        if picture is not None:
            self._pictures["Faithfulness"] = picture
        if strip is not None:
            table = self.faith_table  # as tall as its rows, the rest to the strip
            rows = table.horizontalHeader().height() + sum(table.rowHeight(r) for r in range(table.rowCount()))
            self.faith_split.setSizes([rows + 2 * table.frameWidth(), max(1, sum(self.faith_split.sizes()) - rows)])
            self.sanity_canvas.set_pixels(strip.pixels)
            stages = ", ".join(f"{s['layer']} {s['correlation']:.2f}" for s in strip.report["stages"])
            sanity = (f" Below: the sanity check of {strip.report['method']}: its map, then its maps as the layers are "
                      f"re-initialised from the top, down to {stages} (each with its rank correlation to the first); "
                      "a map that explains the model changes with it.")
        else:
            sanity = ""
        self.faith_caption.setText(f"Measured on {what}.{sanity}")

    def _clear_page(self, page: str) -> None:
        self._pictures.pop(page, None)
        if page == "Atlas":
            self._atlas = None
            self.atlas_canvas.clear()
        elif page == "Neighbours":
            self._neighbours = None
            self.neighbours_canvas.clear()
        elif page == "Map":
            self._map_text = ""
            self.map.show_points(np.zeros((0, 2)), np.zeros(0, np.int64), [], [])
            self.selection.clear()
            self.selection.hide()
        elif page == "Evaluation":
            self._evaluation = None
            self.confusion_canvas.clear()
            self.mistakes.clear()

    # --- opening the set's images ----------------------------------------------------------------

    def _file_name(self, number: int) -> str:
        """Image ``number``'s file as it lies in the set's folder (``cat/0.png``: names repeat across classes)."""
        return _in_set(self.index.sources[number], self._root())

    def _root(self) -> str | None:
        """The folder of a folder set, with its separator."""
        spec = self.probe.spec if self.probe is not None else ""
        return spec[len("folder:"):] + os.sep if spec.startswith("folder:") else None

    def _open_image_number(self, number: int) -> None:
        if self.probe is None or not 0 <= number < len(self.probe):  # (a click on what another set left)
            return
        if self.probe.sources is not None:
            self.open_image_requested.emit(self.probe.sources[number])
        else:  # an image of a generated or packaged set, taken from the set already open
            self.session.add_images([member_image(self.probe, number)])

    def picture(self) -> tuple[np.ndarray, dict] | None:
        shown = self._pictures.get(PAGES[self.pages.currentIndex()])
        return None if shown is None else (shown.pixels, shown.settings)

    @property
    def layer(self) -> str | None:
        shown = self._pictures.get(PAGES[self.pages.currentIndex()])
        return None if shown is None else shown.layer

    def empty_reason(self) -> str:
        page = PAGES[self.pages.currentIndex()]
        if self.session.model is None:
            return "load a model first"
        if page == "Faithfulness":
            return ("measure the current image (a set's table is not one image's picture)" if self._faith_job is None
                    else "wait for the measurement to finish")
        if self.index is None:
            return "open a dataset and index it first"
        if self._page_jobs.get(page) in self.jobs.active:
            return "wait for it to finish computing"
        caption = {"Atlas": self.atlas_caption, "Neighbours": self.neighbours_caption, "Map": self.map_caption,
                   "Evaluation": self.evaluation_caption}[page].text()
        return f"{caption[:1].lower()}{caption[1:]}" if caption else "wait for it to finish computing"


def _in_set(source: str, root: str | None) -> str:
    return source[len(root):] if root and source.startswith(root) else Path(source).name


def _units(units) -> str:
    """'LAYER, channel(s) N, M' of an atlas's units."""
    return f"{units[0].layer}, channel{'s' if len(units) > 1 else ''} {', '.join(str(u.channel) for u in units)}"


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _share(value: float) -> str:
    return "—" if value != value else f"{100 * value:.1f} %"
