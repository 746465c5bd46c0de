"""The "Images" dock: a strip of the open images (click = current image) over the predictions
and the target class.

The strip mirrors ``session.images`` and the current image both ways; updates coming from the
session are applied with the strip's signals blocked, so they never echo back as new clicks.
"""

from __future__ import annotations

from PIL import Image
from PIL.ImageQt import ImageQt
from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QKeyEvent, QPalette, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from cnnexplorer.core.images import LoadedImage
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.widgets.predictions_panel import PredictionsPanel
from cnnexplorer.gui.widgets.target_picker import TargetPicker

ICON = 96
CELL = QSize(ICON + 16, ICON + 26)
EMPTY_HINT = "Drop images here,\nor File › Open image… (Ctrl+O)"


def thumbnail(image: Image.Image, size: int = ICON) -> QIcon:
    """A ``size``-px square icon: the image scaled to fit, centred, on a transparent ground. A small image (a
    28-px digit, a 32-px CIFAR picture) is enlarged by a whole factor with its pixels kept sharp."""
    small = image.copy()
    factor = size // max(image.size)
    if factor > 1:
        small = small.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    small.thumbnail((size, size), Image.Resampling.LANCZOS)
    square = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    square.paste(small, ((size - small.width) // 2, (size - small.height) // 2))
    return QIcon(QPixmap.fromImage(ImageQt(square).copy()))


def describe(image: LoadedImage) -> str:
    """The tooltip: full path, pixel size and what loading converted."""
    width, height = image.image.size
    lines = [image.reference or str(image.path), f"{width} × {height} px"]
    if image.note:
        lines.append(image.note)
    return "\n".join(lines)


class ThumbnailStrip(QListWidget):
    """One horizontally scrolling row of thumbnails; Delete asks to remove the current one."""

    remove_requested = Signal(int)  # row

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(ICON, ICON))
        self.setGridSize(CELL)
        self.setUniformItemSizes(True)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        scrollbar = self.horizontalScrollBar().sizeHint().height()
        self.setFixedHeight(CELL.height() + scrollbar + 2 * self.frameWidth() + 4)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.currentRow() >= 0:
            self.remove_requested.emit(self.currentRow())
            return
        super().keyPressEvent(event)


class ImageDock(QWidget):
    """The thumbnail strip (or a hint while no image is open) above the ``PredictionsPanel``."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.strip = ThumbnailStrip()
        self.hint = QLabel(EMPTY_HINT)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        self.hint.setFixedHeight(self.strip.height())
        self.hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.hint.setStyleSheet("QLabel { border: 2px dashed palette(mid); border-radius: 6px; }")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.strip)
        self.stack.setFixedHeight(self.strip.height())
        self.predictions = PredictionsPanel(session)
        self.target = TargetPicker(session)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.stack)
        layout.addWidget(self.predictions)
        layout.addWidget(self.target)
        layout.addStretch(1)

        self.strip.currentRowChanged.connect(self._row_chosen)
        self.strip.remove_requested.connect(self._remove_row)
        self.strip.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.strip.customContextMenuRequested.connect(self._show_menu)
        session.images_changed.connect(self._rebuild)
        session.image_changed.connect(self._select_current)
        self._rebuild()

    def _rebuild(self) -> None:
        """Recreate the items from ``session.images`` (a handful; cheaper than diffing)."""
        self.strip.blockSignals(True)
        try:
            self.strip.clear()
            for image in self.session.images:
                item = QListWidgetItem(thumbnail(image.image), image.name)
                item.setToolTip(describe(image))
                item.setSizeHint(CELL)
                self.strip.addItem(item)
        finally:
            self.strip.blockSignals(False)
        self.stack.setCurrentWidget(self.strip if self.session.images else self.hint)
        self._select_current()

    def _select_current(self, *_) -> None:
        images = self.session.images
        row = next((k for k, im in enumerate(images) if im is self.session.image), -1)
        self.strip.blockSignals(True)
        try:
            self.strip.setCurrentRow(row)
        finally:
            self.strip.blockSignals(False)
        if row >= 0:
            self.strip.scrollToItem(self.strip.item(row))

    def _row_chosen(self, row: int) -> None:
        if 0 <= row < len(self.session.images):
            self.session.set_image(self.session.images[row])

    def _remove_row(self, row: int) -> None:
        if 0 <= row < len(self.session.images):
            self.session.remove_image(self.session.images[row])

    def _show_menu(self, pos: QPoint) -> None:
        item = self.strip.itemAt(pos)
        if item is None:
            return
        row = self.strip.row(item)
        menu = QMenu(self)
        menu.addAction("Remove", lambda: self._remove_row(row))
        menu.exec(self.strip.viewport().mapToGlobal(pos))
