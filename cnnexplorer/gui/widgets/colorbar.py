"""A horizontal colour bar: the colour map with the values at its ends and centre.

Shown under pictures whose colours mean one value range (a layer-wide or fixed normalisation,
a difference, a weight matrix), so a colour can be read back as a number.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from cnnexplorer.core.colormaps import colormap_table

BAR_HEIGHT = 10


class ColorBar(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.cmap = "viridis"
        self.value_range = (0.0, 1.0)
        self._strip = QImage()
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(BAR_HEIGHT + self.fontMetrics().height() + 6)

    def set_map(self, cmap: str, low: float, high: float) -> None:
        table = colormap_table(cmap)
        self.cmap, self.value_range = cmap, (low, high)
        self._strip = QImage(bytes(table.tobytes()), 256, 1, 768, QImage.Format.Format_RGB888).copy()
        self.setToolTip(f"{cmap}: {low:.4g} … {high:.4g}")
        self.update()

    def labels(self) -> tuple[str, str, str]:
        low, high = self.value_range
        return f"{low:.3g}", f"{(low + high) / 2:.3g}", f"{high:.3g}"

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        bar = QRectF(4, 2, self.width() - 8, BAR_HEIGHT)
        painter.drawImage(bar, self._strip)
        painter.setPen(self.palette().windowText().color())
        painter.drawRect(bar)
        text = QRectF(4, bar.bottom() + 2, self.width() - 8, self.fontMetrics().height() + 2)
        low, mid, high = self.labels()
        painter.drawText(text, Qt.AlignmentFlag.AlignLeft, low)
        painter.drawText(text, Qt.AlignmentFlag.AlignHCenter, mid)
        painter.drawText(text, Qt.AlignmentFlag.AlignRight, high)
        painter.end()
