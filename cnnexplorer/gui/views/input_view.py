"""The "Input" tab: the current image as the model sees it, after its own preprocessing (the
``input`` recipe's picture, ``pictures.input``)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.workers import JobRunner
from cnnexplorer.pictures.base import Inputs, Picture
from cnnexplorer.pictures.input import InputOptions, make_input


class InputView(View):
    title = "Input"
    view_name = "input"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.canvas = ImageCanvas()
        self.caption = QLabel()
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.caption)
        self._picture: Picture | None = None
        session.model_changed.connect(self.refresh)
        session.image_changed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_) -> None:
        handle, image = self.session.model, self.session.image
        self._picture = None
        if handle is None or image is None:
            self.canvas.clear()
            self.caption.setText("Open or drop an image to see it as the model sees it.")
            return
        self.jobs.start(lambda: make_input(Inputs(handle, image), InputOptions()), kind="input-view",
                        label="preprocessing", on_result=lambda picture: self._show(handle, image, picture))

    def _show(self, handle, image, picture: Picture) -> None:
        if (handle, image) != (self.session.model, self.session.image):
            return
        self._picture = picture
        self.canvas.set_pixels(picture.pixels)
        pre = handle.preprocessing
        width, height = image.image.size
        how = f"resized to {pre.resize} px, centre crop" if pre.resize else "resized"
        self.caption.setText(
            f"{image.name} — original {width}×{height} px → model input "
            f"{'×'.join(map(str, pre.input_size))} ({how}; the model normalises it itself)"
        )

    def picture(self) -> tuple[np.ndarray, dict] | None:
        if self._picture is None:
            return None
        return self._picture.pixels, self._picture.settings
