"""The "Input" tab: the current image as the model sees it, after its own preprocessing."""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from cnnexplorer.core.jobs import Progress
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.workers import JobRunner


def tensor_pixels(tensor: torch.Tensor) -> np.ndarray:
    """A ``[C,H,W]`` tensor in [0,1] as uint8 pixels: H×W×3, or H×W for one channel."""
    array = (tensor.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))


def _preprocess_job(handle, image):
    yield Progress(0, None, f"preprocessing {image.name}")
    return tensor_pixels(handle.preprocessing.to_tensor(image.image))


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
        self._pixels: np.ndarray | None = None
        session.model_changed.connect(self.refresh)
        session.image_changed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_) -> None:
        handle, image = self.session.model, self.session.image
        self._pixels = None
        if handle is None or image is None:
            self.canvas.clear()
            self.caption.setText("Open or drop an image to see it as the model sees it.")
            return
        self.jobs.start(lambda: _preprocess_job(handle, image), kind="input-view", label="preprocessing",
                        on_result=lambda pixels: self._show(handle, image, pixels))

    def _show(self, handle, image, pixels: np.ndarray) -> None:
        if (handle, image) != (self.session.model, self.session.image):
            return
        self._pixels = pixels
        self.canvas.set_pixels(pixels)
        pre = handle.preprocessing
        width, height = image.image.size
        how = f"resized to {pre.resize} px, centre crop" if pre.resize else "resized"
        self.caption.setText(
            f"{image.name} — original {width}×{height} px → model input "
            f"{'×'.join(map(str, pre.input_size))} ({how}; the model normalises it itself)"
        )

    def picture(self) -> tuple[np.ndarray, dict] | None:
        if self._pixels is None:
            return None
        return self._pixels, {"input_size": list(self.session.model.input_size)}
