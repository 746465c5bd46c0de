"""The predictions panel: real clicks on its bars drive the session's target class."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage

from cnnexplorer.core.charts import render_predictions_chart
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.images import load_image
from cnnexplorer.core.predict import ClassScore
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.widgets.predictions_panel import BAR_COLOUR, TARGET_COLOUR, PredictionsPanel

SCORES = [ClassScore(281, "tabby", 0.71), ClassScore(282, "tiger cat", 0.12),
          ClassScore(285, "Egyptian cat", 0.08), ClassScore(287, "lynx", 0.03),
          ClassScore(728, "plastic bag", 0.01)]


@pytest.fixture
def panel(qtbot, tmp_path):
    Image.new("RGB", (40, 30), (200, 120, 40)).save(tmp_path / "cat.png")
    session = Session()
    session.add_images([load_image(tmp_path / "cat.png")])
    session.set_predictions(SCORES)
    widget = PredictionsPanel(session)
    qtbot.addWidget(widget)
    widget.resize(300, widget.sizeHint().height())
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def bar_colour(panel: PredictionsPanel, row: int) -> QColor:
    """The colour painted a few pixels into the filled part of ``row``'s bar."""
    bar = panel.bar_rect(row)
    return panel.grab().toImage().pixelColor(bar.left() + 2, bar.center().y())


def test_clicking_a_bar_targets_it_and_clicking_again_clears(qtbot, panel):
    session = panel.session
    assert bar_colour(panel, 1) == BAR_COLOUR
    with qtbot.waitSignal(session.target_changed) as changed:
        qtbot.mouseClick(panel, Qt.MouseButton.LeftButton, pos=panel.row_rect(1).center())
    assert changed.args == [282] and session.target == 282
    assert bar_colour(panel, 1) == TARGET_COLOUR
    assert bar_colour(panel, 0) == BAR_COLOUR
    assert panel.subtitle() == "Target: tiger cat · click again to clear"

    with qtbot.waitSignal(session.target_changed) as changed:
        qtbot.mouseClick(panel, Qt.MouseButton.LeftButton, pos=panel.row_rect(1).center())
    assert changed.args == [None] and session.effective_target == 281
    assert bar_colour(panel, 1) == BAR_COLOUR


def test_clicks_outside_the_rows_change_nothing(qtbot, panel):
    qtbot.mouseClick(panel, Qt.MouseButton.LeftButton, pos=QPoint(5, 2))
    assert panel.row_at(0) is None and panel.row_at(panel.row_rect(4).bottom() + 1) is None
    assert panel.session.target is None


def test_hover_shows_a_hand_and_explains_the_click(qtbot, panel):
    qtbot.mouseMove(panel, panel.row_rect(0).center())
    qtbot.waitUntil(lambda: panel.cursor().shape() == Qt.CursorShape.PointingHandCursor)
    assert panel.tooltip_at(panel.row_rect(0).center().y()) == \
        "Click to make 'tabby' the target class for the views"
    qtbot.mouseMove(panel, QPoint(5, 2))
    qtbot.waitUntil(lambda: panel.cursor().shape() == Qt.CursorShape.ArrowCursor)


def test_picture_is_the_core_chart(panel):
    panel.session.set_target(285)
    pixels, settings = panel.picture()
    assert np.array_equal(pixels, render_predictions_chart(SCORES, title="cat.png"))
    assert settings == {"top": 5, "target": 285}


def test_export_writes_png_and_sidecar(panel, tmp_path):
    png, sidecar = panel.export_png(tmp_path / "out" / "chart.png")
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), panel.picture()[0])
    meta = json.loads(sidecar.read_text())
    assert sidecar.name == "chart.png.json"
    assert meta["view"] == "predictions"
    assert meta["image"]["sha256"] == panel.session.image.sha256
    assert meta["settings"] == {"top": 5, "target": None}


def test_copy_puts_the_chart_on_the_clipboard(panel):
    panel.copy_chart()
    copied = QGuiApplication.clipboard().image().convertToFormat(QImage.Format.Format_RGB888)
    pixels = panel.picture()[0]
    assert (copied.height(), copied.width()) == pixels.shape[:2]
    height, width, stride = copied.height(), copied.width(), copied.bytesPerLine()
    rows = np.frombuffer(copied.constBits(), np.uint8, stride * height).reshape(height, stride)
    assert np.array_equal(rows[:, : 3 * width].reshape(height, width, 3), pixels)


def test_empty_panel_has_no_picture(qtbot, panel):
    panel.session.set_image(None)
    assert panel.session.predictions == [] and panel.picture() is None
    with pytest.raises(UserError, match="no predictions"):
        panel.export_png("never.png")
