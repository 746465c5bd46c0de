"""A list of a dataset's images, each row its thumbnail and a line of text; a double click (or Enter) opens one.

The rows are served by a model on demand (``_Rows``): a list of 50,000 images (a rectangle drawn
over the whole map, a confusion cell of a large set) is set at once, and only the rows on screen
make their text and thumbnail; the rows are laid out a batch at a time, so the window never waits for
the whole list (a ``QListWidgetItem`` per image took 0.44 s to list 50,000, this 3–6 ms).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPixmap
from PySide6.QtWidgets import QListView, QWidget

from cnnexplorer.gui.widgets.pixmaps import qimage_from_pixels

ICON = 32
"""Pixels on a row's thumbnail side (the index keeps 32)."""

LAYOUT_BATCH = 1000
"""Rows laid out per turn of the event loop: 50,000 laid out at once held the window for 70 ms."""


class _Rows(QAbstractListModel):
    """Image numbers as rows: the display text, the tooltip (the whole line) and the thumbnail made when asked."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.numbers = np.zeros(0, np.int64)
        self.text: Callable[[int], str] = str
        self.thumbnails: np.ndarray | None = None

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.numbers)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.numbers):
            return None
        number = int(self.numbers[index.row()])
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(number)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{self.text(number)}\nDouble-click or press Enter to open it"  # the whole line, however narrow
        if role == Qt.ItemDataRole.DecorationRole and self.thumbnails is not None:
            return QPixmap.fromImage(qimage_from_pixels(self.thumbnails[number]))
        if role == Qt.ItemDataRole.UserRole:
            return number
        return None


class ImageList(QListView):
    """Rows of images by number (``show_images``); ``opened`` carries the number of the row double-clicked or
    entered."""

    opened = Signal(int)
    chosen = Signal(int)  # the image number of the row made current (a click, the arrow keys)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._rows = _Rows(self)
        self.setModel(self._rows)
        self.setUniformItemSizes(True)  # every row as tall as the first: no measuring 50,000 rows
        self.setLayoutMode(QListView.LayoutMode.Batched)  # laid out LAYOUT_BATCH rows per turn of the event loop
        self.setBatchSize(LAYOUT_BATCH)
        self.setIconSize(QSize(ICON, ICON))
        self.setEditTriggers(QListView.EditTrigger.NoEditTriggers)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long file name keeps its start and its end
        self.doubleClicked.connect(lambda index: self.opened.emit(self.number(index.row())))
        self.selectionModel().currentChanged.connect(
            lambda index, _: self.chosen.emit(self.number(index.row())) if index.isValid() else None)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter or Return opens the current row's image, as a double click does."""
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.opened.emit(self.number(self.currentIndex().row()))
            return
        super().keyPressEvent(event)

    def show_images(self, numbers, text: Callable[[int], str], thumbnails: np.ndarray | None = None) -> None:
        """List images ``numbers`` in that order, each row ``text(number)`` beside ``thumbnails[number]``."""
        self._rows.beginResetModel()
        self._rows.numbers = np.asarray(numbers, np.int64).reshape(-1)
        self._rows.text, self._rows.thumbnails = text, thumbnails
        self._rows.endResetModel()
        self.scrollToTop()

    def clear(self) -> None:
        self.show_images([], str)

    def count(self) -> int:
        return self._rows.rowCount()

    def number(self, row: int) -> int:
        """The image number of ``row``."""
        return int(self._rows.numbers[row])

    def row_data(self, row: int, role: Qt.ItemDataRole = Qt.ItemDataRole.DisplayRole):
        """What ``row`` shows in ``role`` (its text, tooltip, thumbnail)."""
        return self._rows.data(self._rows.index(row), role)
