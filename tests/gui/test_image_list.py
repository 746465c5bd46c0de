"""The dataset's image lists: rows made on demand (50,000 listed at once), each with its thumbnail and its whole
line as a tooltip; a double click on a row, or Enter, opens that image."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from cnnexplorer.gui.widgets.image_list import ImageList
from tests.gui.gui_helpers import double_click


def test_rows_show_their_thumbnail_and_text_and_a_double_click_opens_the_image(qtbot):
    thumbnails = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    listing = ImageList()
    qtbot.addWidget(listing)
    listing.resize(240, 400)
    listing.show()
    listing.show_images([7, 2, 9], lambda n: f"image {n}", thumbnails)
    assert listing.count() == 3 and [listing.number(r) for r in range(3)] == [7, 2, 9]
    assert listing.row_data(1) == "image 2"
    assert listing.row_data(1, Qt.ItemDataRole.ToolTipRole) == "image 2\nDouble-click or press Enter to open it"
    shown = listing.row_data(2, Qt.ItemDataRole.DecorationRole).toImage().convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(shown.constBits(), np.uint8).reshape(32, shown.bytesPerLine())[:, :96].reshape(32, 32, 3)
    assert np.array_equal(pixels, thumbnails[9])
    with qtbot.waitSignal(listing.opened) as opened:
        double_click(qtbot, listing, 1)
    assert opened.args == [2]
    listing.setCurrentIndex(listing.model().index(2))
    with qtbot.waitSignal(listing.opened) as opened:
        qtbot.keyClick(listing, Qt.Key.Key_Return)
    assert opened.args == [9]
    listing.clear()
    assert listing.count() == 0


def test_fifty_thousand_images_list_at_once_and_only_rows_on_screen_are_made(qtbot):
    asked: list[int] = []

    def text(number: int) -> str:
        asked.append(number)
        return f"{number:05d}.png"

    listing = ImageList()
    qtbot.addWidget(listing)
    listing.resize(240, 300)
    listing.show()
    numbers = np.arange(50_000)[::-1]
    listing.show_images(numbers, text, np.zeros((50_000, 32, 32, 3), np.uint8))
    assert listing.count() == 50_000 and listing.number(0) == 49_999 and listing.number(49_999) == 0
    qtbot.waitUntil(lambda: {49_999, 49_998} <= set(asked))  # the first rows, painted once laid out
    assert len(set(asked)) < 100  # the rows on screen, not all 50,000
    listing.scrollToBottom()
    qtbot.waitUntil(lambda: {0, 1} <= set(asked))
    assert len(set(asked)) < 200
    with qtbot.waitSignal(listing.opened) as opened:
        double_click(qtbot, listing, 49_999)
    assert opened.args == [0]
