"""The main window: model dock, image dock, view tabs, status bar, export and settings; its menus
(``window_menus``), files and drag-and-drop (``window_files``) and jobs (``window_jobs``) are apart.

Everything slow (loading a model, opening images, predicting) runs as a job in ``self.jobs``;
the window only dispatches user actions and puts results into the shared ``Session``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, TypeVar

from PySide6.QtCore import QRect, QSettings, QSize, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QStyle, QTabWidget, QWidget

from cnnexplorer.core.checkpoints import NeedsTrust
from cnnexplorer.core.devices import memory_in_use
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.models import FileOptions
from cnnexplorer.core.weights import WeightsUnavailable
from cnnexplorer.gui.dialogs import ask_yes_no, save_as
from cnnexplorer.gui.remembered import checked, restore_controls, save_checked, save_controls, setting
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.views.activations_view import ActivationsView
from cnnexplorer.gui.views.adversarial_view import AdversarialView
from cnnexplorer.gui.views.dataset_view import DatasetView
from cnnexplorer.gui.views.featurevis_view import FeatureVisView
from cnnexplorer.gui.views.heatmap_view import HeatmapView
from cnnexplorer.gui.views.input_view import InputView
from cnnexplorer.gui.views.lab_view import LabView
from cnnexplorer.gui.views.summary_view import SummaryView
from cnnexplorer.gui.views.training_view import TrainingView
from cnnexplorer.gui.views.weights_view import WeightsView
from cnnexplorer.gui.widgets.image_dock import ImageDock
from cnnexplorer.gui.widgets.edited_badge import EditedBadge
from cnnexplorer.gui.widgets.model_dock import ModelDock
from cnnexplorer.gui.widgets.pixmaps import qimage_from_pixels
from cnnexplorer.gui.window_files import WindowFiles
from cnnexplorer.gui.window_jobs import model_job, move_job, predict_job
from cnnexplorer.gui.window_menus import WindowMenus
from cnnexplorer.gui.workers import JobRunner, JobStatus
from cnnexplorer.pictures.base import Picture, save_picture

TRUST_WARNING = (
    "This file holds a whole pickled model, not just its weights. Loading a pickle runs code "
    "stored in the file, which can do anything a program on this computer can do.\n\n"
    "Only continue if you trust where the file came from (you saved it yourself, or its source "
    "is trustworthy). Otherwise save the model's state_dict and open that instead."
)
VIEWS = (InputView, SummaryView, ActivationsView, WeightsView, FeatureVisView, HeatmapView, AdversarialView,
         TrainingView, DatasetView, LabView)  # the central tabs, in order
ViewT = TypeVar("ViewT", bound=View)
# Narrower tabs than the style's, so that ten titles fit a 1280-px screen beside both docks; the current
# tab stands out (white and raised), the others sit back (grey).
TAB_STYLE = ("QTabBar::tab { padding: 4px 5px; border: 1px solid palette(mid); border-bottom: none; "
             "border-top-left-radius: 3px; border-top-right-radius: 3px; margin-right: 0px; }"
             "QTabBar::tab:selected { background: palette(base); }"
             "QTabBar::tab:!selected { background: palette(button); margin-top: 3px; }")
TAB_BAR_FRAME = 4
"""Pixels of the tab widget's frame beside its tab bar."""
UNTRAINED = "untrained model: random weights"
PREFERRED_SIZE = QSize(1500, 900)
FRAME_ROOM = QSize(24, 60)
"""What a smaller screen keeps beside the first window for its frame, title bar and a panel."""
IMAGES_DOCK_WIDTH = (160, 280)
"""The Images dock's first width: a row of thumbnails, narrower where the screen is small."""


def first_geometry(available: QRect) -> QRect:
    """Where the window opens the first time: 1500×900, or most of a smaller screen, centred."""
    placed = QRect(available.topLeft(), PREFERRED_SIZE.boundedTo(available.size() - FRAME_ROOM))
    placed.moveCenter(available.center())
    return placed


class MainWindow(WindowFiles, WindowMenus, QMainWindow):
    """``confirm(title, text) -> bool`` asks the user a yes/no question (tests inject one)."""

    def __init__(self, settings: QSettings, confirm: Callable[[str, str], bool] | None = None):
        super().__init__()
        self.settings = settings
        self.confirm = confirm or self._ask
        self.session = Session(self)
        self.jobs = JobRunner(self)
        self.device = "auto"
        self.messages: list[str] = []
        self.paste_dir = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)) / "pasted"
        self.recent: list[str] = self._read_recent()

        self.model_dock = ModelDock(self.session, self.jobs)
        self.image_dock = ImageDock(self.session)
        self.docks = [self._dock("Model", self.model_dock, Qt.DockWidgetArea.LeftDockWidgetArea),
                      self._dock("Images", self.image_dock, Qt.DockWidgetArea.RightDockWidgetArea)]
        self.tabs = QTabWidget()
        self.tabs.tabBar().setStyleSheet(TAB_STYLE)
        self.views: list[View] = [view(self.session, self.jobs) for view in VIEWS]
        for view in self.views:
            self.tabs.addTab(view, view.title)
            view.confirm = self.confirm  # the views ask their questions through the window
        self.setCentralWidget(self.tabs)
        self.tabs.currentChanged.connect(self._on_tab)
        self._on_tab()
        self._link_views()
        self._build_status_bar()
        self._build_menus()
        self._watch_drops()

        self.jobs.message.connect(self.show_message)
        self.model_dock.load_requested.connect(self.load_model)
        self.model_dock.zoo_requested.connect(self.open_zoo)
        self.model_dock.device_requested.connect(self.move_to_device)
        self.session.model_changed.connect(self._on_model_changed)
        self.session.image_changed.connect(self._predict)
        self.setWindowTitle("cnnexplorer")
        if not self.restoreGeometry(setting(self.settings, "window/geometry", bytes, b"")) or not self._on_screen():
            self.fit_to_screen(self.screen().availableGeometry())
        self._dock_sizes_pending = not self.restoreState(checked(self.settings, "window/state"))
        self._fit_docks_to_model = self._dock_sizes_pending
        restore_controls(self.settings, self)
        self._restore_tab(setting(self.settings, "window/tab", str, ""))

    def fit_to_screen(self, available: QRect) -> None:
        """Place the window within ``available`` (a screen less its panels) as on a first run."""
        self.setGeometry(first_geometry(available))

    def _on_screen(self) -> bool:
        """Whether the remembered geometry lies within one screen as it is now (the window may
        come from a larger monitor, or one that is gone)."""
        screen = QGuiApplication.screenAt(self.geometry().center())
        return screen is not None and screen.availableGeometry().contains(self.geometry())

    def _fit_docks(self) -> None:
        """The Model dock shows the tree's main columns whole and the views every tab's title; where the
        screen is too small for both docks beside the views, the Images dock gives way first."""
        tree = self.model_dock.main_columns_width() + self.docks[0].width() - self.model_dock.width()  # and the frame
        separators = 2 * self.style().pixelMetric(QStyle.PixelMetric.PM_DockWidgetSeparatorExtent, None, self)
        views = max(self.tabs.minimumSizeHint().width(), self.tabs.tabBar().sizeHint().width() + TAB_BAR_FRAME)
        room = self.width() - views - separators
        images = max(IMAGES_DOCK_WIDTH[0], self.docks[1].minimumSizeHint().width(),
                     min(IMAGES_DOCK_WIDTH[1], room - tree))
        self.resizeDocks(self.docks, [min(tree, room - images), images], Qt.Orientation.Horizontal)

    def _on_tab(self, *_) -> None:
        """The tree's freeze checkboxes belong to the Training tab."""
        self.model_dock.show_freeze_boxes(isinstance(self.tabs.currentWidget(), TrainingView))

    def _restore_tab(self, title: str) -> None:
        for index in range(self.tabs.count()):
            if self.tabs.tabText(index) == title:
                self.tabs.setCurrentIndex(index)

    def view(self, kind: type[ViewT]) -> ViewT:
        """The tab of class ``kind``."""
        return next(v for v in self.views if isinstance(v, kind))

    def show_view(self, kind: type[ViewT]) -> ViewT:
        """Bring the tab of class ``kind`` to the front (it computes when shown) and return it."""
        view = self.view(kind)
        self.tabs.setCurrentWidget(view)
        return view

    def _link_views(self) -> None:
        """The activation grid's "Visualise channel k" opens the Feature vis tab on that channel; an image of the
        Dataset tab's set opens in the app; the Lab's All layers page exports through the window; the
        Heatmaps tab's concepts take their reference images from the Dataset tab's open index."""

        def visualise(unit) -> None:
            self.show_view(FeatureVisView).visualise(unit)

        self.view(ActivationsView).visualise_requested.connect(visualise)
        self.view(DatasetView).open_image_requested.connect(lambda path: self.open_files([path]))
        self.view(ActivationsView).atlas_requested.connect(lambda unit: self.show_view(DatasetView).show_atlas(unit))
        self.view(LabView).layers.export_requested.connect(self._export_dialog)
        dataset = self.view(DatasetView)
        self.view(HeatmapView).reference_source = lambda: (dataset.index, dataset.probe) if dataset.index is not None else None

    def open_dataset(self, spec: str) -> None:
        """Show the Dataset tab and index ``spec`` (a folder or a data spec) under the current model."""
        self.show_view(DatasetView).open_dataset(spec)

    @property
    def last_message(self) -> str | None:
        return self.messages[-1] if self.messages else None

    # --- building -------------------------------------------------------------------------

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title.lower()}_dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.untrained_label = QLabel(UNTRAINED)
        self.untrained_label.setStyleSheet("color: #b35900; font-weight: bold")
        self.untrained_label.setToolTip("The model has random weights (no trained weights were loaded), so what it "
                                        "detects, and every picture of it, shows chance, not learning")
        self.untrained_label.hide()
        bar.addPermanentWidget(self.untrained_label)
        bar.addPermanentWidget(JobStatus(self.jobs))
        bar.addPermanentWidget(EditedBadge(self.session))
        self.device_label = QLabel()
        self.device_label.setToolTip("The model's device and, on CUDA, the memory torch holds there")
        bar.addPermanentWidget(self.device_label)
        self.memory_timer = QTimer(self)
        self.memory_timer.setInterval(2000)
        self.memory_timer.timeout.connect(self._show_device)
        self.memory_timer.start()

    # --- messages and questions -----------------------------------------------------------

    def show_message(self, text: str) -> None:
        """Tell the user about a problem they can fix, without blocking the window."""
        self.messages.append(text)
        self.statusBar().showMessage(text.splitlines()[0], 10_000)
        box = QMessageBox(QMessageBox.Icon.Warning, "cnnexplorer", text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _ask(self, title: str, text: str) -> bool:
        return ask_yes_no(self, title, text)

    # --- models ---------------------------------------------------------------------------

    def start(self, spec: str, device: str, images: list[str]) -> None:
        """Open the first model and images; without images, the bundled samples."""
        self.load_model(spec, device)
        if images:
            self.open_files(images)
        else:
            self._open_samples()

    def load_model(self, spec: str, device: str | None = None, options: FileOptions = FileOptions()) -> None:
        device = device or self.device
        self.device = device
        self.jobs.start(lambda: model_job(spec, device, options), kind="model", label=f"loading {spec}",
                        on_result=self._model_loaded,
                        on_error=lambda exc: self._model_failed(exc, spec, device, options))

    def _model_loaded(self, result) -> None:
        handle, summary = result
        self.session.set_model(handle, summary)
        if self._fit_docks_to_model:  # first run: the tree's columns are known now
            self._fit_docks_to_model = False
            self._fit_docks()
        if Path(handle.spec).is_file():
            self._add_recent(handle.spec)
        self.statusBar().showMessage(f"loaded {handle.spec} on {handle.device}", 5000)

    def _model_failed(self, exc: BaseException, spec: str, device: str, options: FileOptions) -> bool:
        """Errors that have a way out: trust a pickle, or fall back to random weights."""
        if isinstance(exc, NeedsTrust) and not options.trust:
            if self.confirm("Trust this model file?", f"{exc}\n\n{TRUST_WARNING}"):
                self.load_model(spec, device, replace(options, trust=True))
            return True
        if isinstance(exc, WeightsUnavailable) and exc.arch:
            if self.confirm("Weights not available", f"{exc}. Load it with random weights instead?"):
                self.load_model(f"torchvision:{exc.arch}:none", device)
            return True
        return False

    def move_to_device(self, device: str) -> None:
        """Move the loaded model (keeping the current layer); later models load there too."""
        self.device = device
        handle = self.session.model
        if handle is None:
            return
        self.jobs.start(lambda: move_job(handle, device), kind="model", label=f"moving to {device}",
                        on_result=self.session.set_moved_model)

    def open_zoo(self) -> None:
        from cnnexplorer.gui.widgets.zoo_dialog import ZooDialog

        dialog = ZooDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.model_chosen.connect(self.load_model)
        dialog.show()

    def _on_model_changed(self, handle) -> None:
        title = f"cnnexplorer — {handle.spec} on {handle.device}"
        self.setWindowTitle(title if handle.trained else f"{title} — untrained")
        self.untrained_label.setVisible(not handle.trained)
        self._show_device()
        self._predict()

    def _show_device(self) -> None:
        handle = self.session.model
        if handle is None:
            return
        memory = memory_in_use(handle.device)
        self.device_label.setText(f"{handle.device}" + (f" · {memory}" if memory else ""))

    def _predict(self, *_) -> None:
        handle, image = self.session.model, self.session.image
        if handle is None or image is None:
            return

        def done(scores) -> None:
            if self.session.model is handle and self.session.image is image:
                self.session.set_predictions(scores)

        self.jobs.start(lambda: predict_job(handle, image), kind="predict", label="predicting", on_result=done)

    # --- export ---------------------------------------------------------------------------

    def _current_picture(self) -> tuple[View, Picture]:
        view = self.tabs.currentWidget()
        shown = view.picture() if isinstance(view, View) else None
        if shown is None:
            raise UserError(f"the {self.tabs.tabText(self.tabs.currentIndex())} view shows nothing yet; "
                            f"{view.empty_reason()}")
        pixels, settings = shown
        return view, Picture(pixels, settings, layer=view.layer)

    def _writer(self) -> Callable[[str | Path], tuple[Path, Path]]:
        """Writes the current view's picture, as it is now, to a path: the save dialog may ask for
        another path after a failed write, and the picture must not change meanwhile."""
        view, picture = self._current_picture()
        name, handle, image, seed = view.view_name, self.session.model, self.session.image, view.seed
        edits = self.session.interventions
        return lambda path: save_picture(path, name, picture, handle, image, seed, edits)

    def export_current_view(self, path: str | Path) -> tuple[Path, Path]:
        """Write the current view's picture as PNG plus the sidecar that makes it again; return both paths."""
        return self._writer()(path)

    def copy_picture(self) -> None:
        try:
            _, picture = self._current_picture()
        except UserError as exc:
            self.show_message(str(exc))
            return
        pixels = picture.pixels
        QGuiApplication.clipboard().setImage(qimage_from_pixels(pixels))
        self.statusBar().showMessage(f"copied a {pixels.shape[1]}×{pixels.shape[0]} picture", 5000)

    def _export_dialog(self) -> None:
        try:
            write = self._writer()
        except UserError as exc:
            self.show_message(str(exc))
            return
        start = str(Path(self._last_dir()) / f"{self.tabs.currentWidget().view_name}.png")
        written = save_as(self, "Export view as PNG", start, "PNG images (*.png)", write)
        if written is not None:
            png, sidecar = written
            self.statusBar().showMessage(f"wrote {png} and {sidecar.name}", 8000)

    def wait_for_jobs(self, timeout_ms: int = 30_000) -> bool:
        """Process events until no job runs (including jobs started by finished ones)."""
        return self.jobs.wait(timeout_ms)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._dock_sizes_pending:  # first run: the tree's columns, a row of thumbnails, the rest for the views
            self._dock_sizes_pending = False
            QTimer.singleShot(0, self, self._fit_docks)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.memory_timer.stop()
        self.jobs.shutdown()
        self.settings.setValue("window/geometry", self.saveGeometry())
        save_checked(self.settings, "window/state", self.saveState().data())
        self.settings.setValue("recent", self.recent)
        self.settings.setValue("window/tab", self.tabs.tabText(self.tabs.currentIndex()))
        save_controls(self.settings, self)
        if self.session.model is not None:
            self.settings.setValue("model/spec", self.session.model.spec)
        self.settings.setValue("model/device", self.device)
        self.settings.sync()
        super().closeEvent(event)

