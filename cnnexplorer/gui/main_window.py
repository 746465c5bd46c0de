"""The main window: model dock, image dock, view tabs, menus, drag-and-drop and settings.

Everything slow (loading a model, opening images, predicting) runs as a job in ``self.jobs``;
the window only dispatches user actions and puts results into the shared ``Session``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from PySide6.QtCore import QEvent, QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabWidget,
    QWidget,
)

from cnnexplorer import __version__
from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.checkpoints import NeedsTrust
from cnnexplorer.core.devices import memory_in_use, resolve_device
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.images import IMAGE_SUFFIXES, MODEL_SUFFIXES, classify_path, load_image
from cnnexplorer.core.jobs import Progress
from cnnexplorer.core.models import FileOptions, open_model
from cnnexplorer.core.predict import predict_images
from cnnexplorer.core.weights import WeightsUnavailable
from cnnexplorer.gui.dialogs import save_as
from cnnexplorer.gui.remembered import checked, restore_controls, save_checked, save_controls, setting
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.views.activations_view import ActivationsView
from cnnexplorer.gui.views.adversarial_view import AdversarialView
from cnnexplorer.gui.views.featurevis_view import FeatureVisView
from cnnexplorer.gui.views.heatmap_view import HeatmapView
from cnnexplorer.gui.views.input_view import InputView
from cnnexplorer.gui.views.summary_view import SummaryView
from cnnexplorer.gui.views.training_view import TrainingView
from cnnexplorer.gui.views.weights_view import WeightsView
from cnnexplorer.gui.widgets.image_dock import ImageDock
from cnnexplorer.gui.widgets.model_dock import ModelDock
from cnnexplorer.gui.workers import JobRunner, JobStatus
from cnnexplorer.pictures.base import Picture, save_picture
from cnnexplorer.resource_files import resource_path

MAX_RECENT = 10
TOP_K = 5
TRUST_WARNING = (
    "This file holds a whole pickled model, not just its weights. Loading a pickle runs code "
    "stored in the file, which can do anything a program on this computer can do.\n\n"
    "Only continue if you trust where the file came from (you saved it yourself, or its source "
    "is trustworthy). Otherwise save the model's state_dict and open that instead."
)
DRAG_EVENTS = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)
NON_NATIVE = QFileDialog.Option.DontUseNativeDialog  # the same dialogs on every platform
VIEWS = (InputView, SummaryView, ActivationsView, WeightsView, FeatureVisView, HeatmapView, AdversarialView,
         TrainingView)  # the central tabs, in order
ViewT = TypeVar("ViewT", bound=View)


def sample_images() -> list[Path]:
    """The demo pictures shipped with the package, in a stable order."""
    return sorted(resource_path("samples").glob("*.png"))


def _images_job(paths: list[str]):
    """Load images one by one; bad files become messages, the good ones still open."""
    loaded, problems = [], []
    for i, path in enumerate(paths):
        yield Progress(i, len(paths), f"opening {Path(path).name}")
        try:
            loaded.append(load_image(path))
        except UserError as exc:
            problems.append(str(exc))
    return loaded, problems


def _model_job(spec: str, device: str, options: FileOptions):
    handle = yield from open_model(spec, device, options)
    yield Progress(0, None, "measuring the layers")
    return handle, summarize_handle(handle)


def _predict_job(handle, image):
    yield Progress(0, None, f"predicting {image.name}")
    return predict_images(handle, [image.image], top=TOP_K)[0]


def _move_job(handle, device: str):
    """A copy of the model on ``device``: jobs still running on the original are not disturbed."""
    target = resolve_device(device)
    if target == handle.device:
        return handle
    yield Progress(0, None, f"moving the model to {target}")
    return replace(handle, module=copy.deepcopy(handle.module)).to(target)


def qimage_from_pixels(pixels: np.ndarray) -> QImage:
    """An independent QImage copy of H×W×3 (RGB) or H×W (grey) uint8 pixels."""
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    fmt = QImage.Format.Format_RGB888 if pixels.ndim == 3 else QImage.Format.Format_Grayscale8
    return QImage(pixels.data, width, height, pixels.strides[0], fmt).copy()


class MainWindow(QMainWindow):
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
        self.resize(1500, 900)
        self.restoreGeometry(setting(self.settings, "window/geometry", bytes, b""))
        self._dock_sizes_pending = not self.restoreState(checked(self.settings, "window/state"))
        restore_controls(self.settings, self)
        self._restore_tab(setting(self.settings, "window/tab", str, ""))

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
        """The activation grid's "Visualise channel k" opens the Feature vis tab on that channel."""

        def visualise(unit) -> None:
            self.show_view(FeatureVisView).visualise(unit)

        self.view(ActivationsView).visualise_requested.connect(visualise)

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
        bar.addPermanentWidget(JobStatus(self.jobs))
        self.device_label = QLabel()
        self.device_label.setToolTip("The model's device and, on CUDA, the memory torch holds there")
        bar.addPermanentWidget(self.device_label)
        self.memory_timer = QTimer(self)
        self.memory_timer.setInterval(2000)
        self.memory_timer.timeout.connect(self._show_device)
        self.memory_timer.start()

    def _action(self, menu, text: str, slot, shortcut: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        menu.setToolTipsVisible(True)
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        open_image = self._action(menu, "Open image…", self._open_images_dialog, "Ctrl+O", "Open image files")
        open_model = self._action(menu, "Open model file…", self._open_model_dialog, "Ctrl+Shift+O",
                                  "Open a checkpoint, state_dict or safetensors file")
        zoo = self._action(menu, "Model zoo…", self.open_zoo, "Ctrl+M", "Browse torchvision's classifiers")
        self._action(menu, "Paste image", self.paste, "Ctrl+V", "Open the image (or image files) on the clipboard")
        self.recent_menu = menu.addMenu("Recent files")
        self._fill_recent_menu()
        menu.addSeparator()
        export = self._action(menu, "Export view as PNG…", self._export_dialog, "Ctrl+E",
                              "Save the current view's picture at native resolution, with a JSON sidecar")
        copy = self._action(menu, "Copy picture", self.copy_picture, "Ctrl+Shift+C",
                            "Copy the current view's picture to the clipboard")
        for action in (open_image, open_model, zoo, None, export, copy):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        menu.addSeparator()
        self._action(menu, "Quit", self.close, "Ctrl+Q", "Close cnnexplorer")
        view_menu = self.menuBar().addMenu("&View")
        view_menu.setToolTipsVisible(True)
        for dock in self.docks:
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        for number, view in enumerate(self.views, start=1):
            self._action(view_menu, f"{view.title} tab", lambda view=view: self.tabs.setCurrentWidget(view),
                         f"Ctrl+{number}", f"Show the {view.title} tab")
        view_menu.addSeparator()
        self._action(view_menu, "Previous image", lambda: self.step_image(-1), "Alt+Left",
                     "Make the previous open image current")
        self._action(view_menu, "Next image", lambda: self.step_image(1), "Alt+Right", "Make the next open image current")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "Keyboard shortcuts", self._show_shortcuts, None, "List the keyboard shortcuts")
        self._action(help_menu, "About cnnexplorer", self._show_about, None, "Version and purpose")

    def step_image(self, step: int) -> None:
        """Make the open image ``step`` places after the current one current (wrapping around)."""
        images = self.session.images
        if images:
            here = images.index(self.session.image) if self.session.image in images else -1
            self.session.set_image(images[(here + step) % len(images)])

    def _watch_drops(self) -> None:
        """Route file drops on any part of the window (docks and views included) to ``open_files``."""
        for widget in (self, *self.docks):
            widget.setAcceptDrops(True)
        for widget in (self, *self.findChildren(QWidget)):
            if widget.acceptDrops():
                widget.installEventFilter(self)

    # --- messages and questions -----------------------------------------------------------

    def show_message(self, text: str) -> None:
        """Tell the user about a problem they can fix, without blocking the window."""
        self.messages.append(text)
        self.statusBar().showMessage(text.splitlines()[0], 10_000)
        box = QMessageBox(QMessageBox.Icon.Warning, "cnnexplorer", text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

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
        self.jobs.start(lambda: _model_job(spec, device, options), kind="model", label=f"loading {spec}",
                        on_result=self._model_loaded,
                        on_error=lambda exc: self._model_failed(exc, spec, device, options))

    def _model_loaded(self, result) -> None:
        handle, summary = result
        self.session.set_model(handle, summary)
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
        self.jobs.start(lambda: _move_job(handle, device), kind="model", label=f"moving to {device}",
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

        self.jobs.start(lambda: _predict_job(handle, image), kind="predict", label="predicting", on_result=done)

    # --- files ----------------------------------------------------------------------------

    def open_files(self, paths: list[str]) -> None:
        """Images open in one job, a model file loads as the model, anything else is named."""
        kinds: dict[str, list[str]] = {"image": [], "model": [], "unknown": []}
        for path in paths:
            kinds[classify_path(path)].append(str(path))
        problems = []
        if kinds["unknown"]:
            names = ", ".join(Path(p).name for p in kinds["unknown"])
            problems.append(f"not an image or a model file: {names}; open images ({', '.join(IMAGE_SUFFIXES[:5])} …) "
                            f"or model files ({', '.join(MODEL_SUFFIXES)})")
        if kinds["model"]:
            self.load_model(kinds["model"][0])
            if len(kinds["model"]) > 1:
                problems.append(f"one model at a time: loading {Path(kinds['model'][0]).name}, "
                                f"ignored {', '.join(Path(p).name for p in kinds['model'][1:])}")
        if kinds["image"]:
            images = kinds["image"]
            self.jobs.start(lambda: _images_job(images), label="opening images", on_result=self._images_loaded)
        if problems:
            self.show_message("\n".join(problems))

    def _images_loaded(self, result, samples: bool = False) -> None:
        """Show the loaded images (samples: the first one current, not remembered as recent)."""
        loaded, problems = result
        self.session.add_images(loaded)
        if samples and loaded:
            self.session.set_image(next(im for im in self.session.images if im.sha256 == loaded[0].sha256))
        for image in () if samples else loaded:
            self._add_recent(str(image.path))
        if problems:
            self.show_message("\n".join(problems))

    def _open_samples(self) -> None:
        paths = [str(p) for p in sample_images()]
        if paths:
            self.jobs.start(lambda: _images_job(paths), label="opening the sample images",
                            on_result=lambda result: self._images_loaded(result, samples=True))

    def paste(self) -> None:
        """Open what the clipboard holds: image files, or an image saved to a PNG first."""
        mime = QGuiApplication.clipboard().mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        if files:
            self.open_files(files)
            return
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self.show_message("The clipboard holds no image; copy an image or an image file first.")
            return
        self.paste_dir.mkdir(parents=True, exist_ok=True)
        path = self.paste_dir / f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10**6}.png"
        if not image.save(str(path), "PNG"):
            self.show_message(f"could not save the pasted image to {path}; check that the folder is writable")
            return
        self.open_files([str(path)])

    def _open_images_dialog(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(self, "Open images", self._last_dir(),
                                                f"Images ({patterns});;All files (*)",
                                                options=NON_NATIVE)
        if paths:
            self.open_files(paths)

    def _open_model_dialog(self) -> None:
        patterns = " ".join(f"*{s}" for s in MODEL_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Open model file", self._last_dir(),
                                              f"Model files ({patterns});;All files (*)",
                                              options=NON_NATIVE)
        if path:
            self.load_model(path)

    def _last_dir(self) -> str:
        return str(Path(self.recent[0]).parent) if self.recent else str(Path.home())

    # --- export ---------------------------------------------------------------------------

    def _current_picture(self) -> tuple[View, Picture]:
        view = self.tabs.currentWidget()
        shown = view.picture() if isinstance(view, View) else None
        if shown is None:
            raise UserError(f"the {self.tabs.tabText(self.tabs.currentIndex())} view shows nothing yet; "
                            "load a model and an image first")
        pixels, settings = shown
        return view, Picture(pixels, settings, layer=view.layer)

    def _writer(self) -> Callable[[str | Path], tuple[Path, Path]]:
        """Writes the current view's picture, as it is now, to a path: the save dialog may ask for
        another path after a failed write, and the picture must not change meanwhile."""
        view, picture = self._current_picture()
        name, handle, image, seed = view.view_name, self.session.model, self.session.image, view.seed
        return lambda path: save_picture(path, name, picture, handle, image, seed)

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

    # --- recent files and settings --------------------------------------------------------

    def _read_recent(self) -> list[str]:
        return [path for path in setting(self.settings, "recent", list, []) if path][:MAX_RECENT]

    def _add_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        self.recent = [path, *[p for p in self.recent if p != path]][:MAX_RECENT]
        self._fill_recent_menu()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda *_, p=path: self.open_files([p]))
        self.recent_menu.setEnabled(bool(self.recent))

    def wait_for_jobs(self, timeout_ms: int = 30_000) -> bool:
        """Process events until no job runs (including jobs started by finished ones)."""
        return self.jobs.wait(timeout_ms)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._dock_sizes_pending:  # first run: the main columns of the tree, a row of thumbnails, the rest for the views
            self._dock_sizes_pending = False
            QTimer.singleShot(0, self, lambda: self.resizeDocks(self.docks, [440, 280], Qt.Orientation.Horizontal))

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

    # --- drag and drop --------------------------------------------------------------------

    def _handle_drag(self, event) -> bool:
        mime = event.mimeData()
        paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        if not paths:
            return False
        event.acceptProposedAction()
        if event.type() == QEvent.Type.Drop:
            self.open_files(paths)
        return True

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if event.type() in DRAG_EVENTS and self._handle_drag(event):
            return True
        return super().eventFilter(watched, event)

    # --- help -----------------------------------------------------------------------------

    def _show_shortcuts(self) -> None:
        rows = [f"<tr><td>{a.text().replace('&', '')}</td><td><b>{a.shortcut().toString()}</b></td></tr>"
                for menu in self.menuBar().findChildren(QMenu) for a in menu.actions()
                if not a.shortcut().isEmpty()]
        QMessageBox.information(self, "Keyboard shortcuts", f"<table cellpadding=4>{''.join(rows)}</table>")

    def _show_about(self) -> None:
        QMessageBox.about(self, "About cnnexplorer",
                          f"<b>cnnexplorer {__version__}</b><p>See what a convolutional network has learned: "
                          "its layers, activations, filters, feature visualisations, heatmaps and "
                          "adversarial examples, linked by one current model, image, layer and class.</p>")

