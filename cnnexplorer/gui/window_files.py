"""The main window's files: opening images and model files (menus, paste, recent files, drag and
drop anywhere on the window). A mixin of ``MainWindow``, which provides ``jobs``, ``session``,
``settings``, ``load_model`` and ``show_message``."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QEvent
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QWidget

from cnnexplorer.core.images import IMAGE_SUFFIXES, MODEL_SUFFIXES, classify_path
from cnnexplorer.gui.dialogs import NON_NATIVE
from cnnexplorer.gui.remembered import setting
from cnnexplorer.gui.window_jobs import images_job, sample_images

MAX_RECENT = 10
DRAG_EVENTS = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)


class WindowFiles:
    def open_files(self, paths: list[str]) -> None:
        """Images open in one job, a model file loads as the model, a folder opens as the dataset (Dataset tab),
        anything else is named."""
        kinds: dict[str, list[str]] = {"image": [], "model": [], "folder": [], "unknown": []}
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
        if kinds["folder"]:
            self.open_dataset(kinds["folder"][0])
            if len(kinds["folder"]) > 1:
                problems.append(f"one dataset at a time: opening {Path(kinds['folder'][0]).name}, "
                                f"ignored {', '.join(Path(p).name for p in kinds['folder'][1:])}")
        if kinds["image"]:
            images = kinds["image"]
            self.jobs.start(lambda: images_job(images), label="opening images", on_result=self._images_loaded)
        if problems:
            self.show_message("\n".join(problems))

    def _images_loaded(self, result, samples: bool = False) -> None:
        """Show the loaded images (samples: the first one current, not remembered as recent)."""
        loaded, problems = result
        self.session.add_images(loaded)
        if samples and loaded:
            self.session.set_image(next(im for im in self.session.images if im.sha256 == loaded[0].sha256))
        for image in () if samples else loaded:
            if not image.reference:  # a sample or a data set's image opens again from its menu or the Dataset tab
                self._add_recent(str(image.path))
        if problems:
            self.show_message("\n".join(problems))

    def _open_samples(self) -> None:
        paths = [str(p) for p in sample_images()]
        if paths:
            self.jobs.start(lambda: images_job(paths), label="opening the sample images",
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

    def _open_dataset_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open dataset (a folder of images; sub-folders are labels)",
                                                  self._last_dir(), options=NON_NATIVE)
        if folder:
            self.open_dataset(folder)

    def _open_model_dialog(self) -> None:
        patterns = " ".join(f"*{s}" for s in MODEL_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Open model file", self._last_dir(),
                                              f"Model files ({patterns});;All files (*)",
                                              options=NON_NATIVE)
        if path:
            self.load_model(path)

    def _last_dir(self) -> str:
        return str(Path(self.recent[0]).parent) if self.recent else str(Path.home())

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

    def _watch_drops(self) -> None:
        """Route file drops on any part of the window (docks and views included) to ``open_files``."""
        for widget in (self, *self.docks):
            widget.setAcceptDrops(True)
        for widget in (self, *self.findChildren(QWidget)):
            if widget.acceptDrops():
                widget.installEventFilter(self)

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
