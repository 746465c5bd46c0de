"""numpy pixels as Qt images: one conversion for the clipboard, the list icons and the pages that show a picture."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap


def qimage_from_pixels(pixels: np.ndarray) -> QImage:
    """An independent QImage copy of H×W×3 (RGB) or H×W (grey) uint8 pixels."""
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    fmt = QImage.Format.Format_RGB888 if pixels.ndim == 3 else QImage.Format.Format_Grayscale8
    return QImage(pixels.data, width, height, pixels.strides[0], fmt).copy()


def scaled_pixmap(pixels: np.ndarray, side: int) -> QPixmap:
    """The pixels as a pixmap that fits a ``side``-pixel square, smoothly scaled, its aspect kept."""
    return QPixmap.fromImage(qimage_from_pixels(pixels)).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                                                Qt.TransformationMode.SmoothTransformation)
