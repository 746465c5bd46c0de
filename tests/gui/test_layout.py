"""The window as a new user meets it on a small screen: it fits, its columns and boxes show whole,
the filter never hides a new model silently, and the layer table can be copied as text."""

from __future__ import annotations

from collections import OrderedDict

import torch
from PySide6.QtCore import QPointF, QRect
from PySide6.QtGui import QGuiApplication
from torch import nn

from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.layer_text import RF_TIP, summary_table_text
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.widgets.model_dock import COLUMNS, MAIN_COLUMNS, ModelDock
from tests.gui.gui_helpers import ready, shapes_window

SMALL_SCREEN = QRect(0, 0, 1280, 720)


def deep_handle() -> ModelHandle:
    """A model whose longest layer name is two levels down, hidden by the tree's default expansion."""
    inner = nn.Sequential(OrderedDict(a_rather_long_convolution_name=nn.Conv2d(3, 4, 3), act=nn.ReLU()))
    model = nn.Sequential(OrderedDict(stage=nn.Sequential(OrderedDict(block=inner)), pool=nn.AdaptiveAvgPool2d(1),
                                      flat=nn.Flatten(), head=nn.Linear(4, 2)))
    return ModelHandle("deep", model.eval(), torch.device("cpu"), Preprocessing(3, (16, 16), (0.5,) * 3, (0.5,) * 3),
                       ["a", "b"], "none", False)


def test_the_first_window_fits_a_small_screen(make_window):
    from cnnexplorer.gui.main_window import first_geometry

    placed = first_geometry(SMALL_SCREEN)
    assert SMALL_SCREEN.contains(placed) and placed.width() < 1280 and placed.height() < 720
    assert first_geometry(QRect(0, 0, 2560, 1440)).size().toTuple() == (1500, 900)  # a large screen: the usual size
    window = shapes_window(make_window)
    window.fit_to_screen(SMALL_SCREEN)
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        QGuiApplication.processEvents()
        assert SMALL_SCREEN.contains(window.geometry()), window.tabs.tabText(index)


def test_a_remembered_geometry_comes_back_unless_it_is_off_the_screen(make_window, settings):
    first = make_window()
    first.setGeometry(100, 80, 1200, 700)
    first.close()
    assert make_window(settings=settings).geometry() == QRect(100, 80, 1200, 700)
    gone = make_window(settings=settings)
    gone.setGeometry(3000, 2000, 1200, 700)  # a monitor that is no longer there
    gone.close()
    back = make_window(settings=settings)
    assert back.screen().availableGeometry().contains(back.geometry())


def test_on_a_small_screen_the_trees_main_columns_show_whole(make_window, qtbot):
    window = make_window()
    window.fit_to_screen(SMALL_SCREEN)
    window._fit_docks_to_model = True  # as on a first run, whose docks fit the first model's tree
    window = shapes_window(lambda: window)
    tree = window.model_dock.tree
    header = tree.header()
    last = MAIN_COLUMNS - 1
    assert header.sectionViewportPosition(last) + header.sectionSize(last) <= tree.viewport().width()
    assert window.tabs.width() >= window.tabs.minimumSizeHint().width()
    assert window.tabs.tabBar().sizeHint().width() <= window.tabs.width(), "every tab's title shows, no scroll arrows"


def dock_on_a_deep_model(qtbot) -> tuple[Session, ModelDock]:
    """A shown Model dock on a model whose layer names are long and deep in the tree."""
    session = Session()
    dock = ModelDock(session)
    qtbot.addWidget(dock)
    dock.show()
    handle = deep_handle()
    session.set_model(handle, summarize_handle(handle))
    return session, dock


def test_columns_fit_rows_that_are_collapsed_at_first(qtbot):
    session, dock = dock_on_a_deep_model(qtbot)
    dock.tree.expandAll()
    assert dock.tree.columnWidth(0) >= dock.tree.sizeHintForColumn(0)
    dock.show_freeze_boxes(False)  # the check boxes go: the column is measured again, collapsed rows included
    dock.tree.collapseAll()
    dock.show_freeze_boxes(True)
    dock.tree.expandAll()
    assert dock.tree.columnWidth(0) >= dock.tree.sizeHintForColumn(0)


def test_a_new_model_clears_the_filter_and_a_filter_that_matches_nothing_says_so(qtbot):
    session, dock = dock_on_a_deep_model(qtbot)
    dock.filter_edit.setText("a_rather_long")
    assert dock.proxy.rowCount() == 1 and not dock.filter_note.isVisible()
    dock.filter_edit.setText("transformer")
    assert dock.proxy.rowCount() == 0 and dock.filter_note.isVisible() and "transformer" in dock.filter_note.text()
    other = deep_handle()
    session.set_model(other, summarize_handle(other))
    assert dock.filter_edit.text() == "" and not dock.filter_note.isVisible()
    assert dock.proxy.rowCount() == 4


def test_the_rf_column_explains_its_formula(qtbot):
    from PySide6.QtCore import Qt

    session = Session()
    dock = ModelDock(session)
    qtbot.addWidget(dock)
    handle = deep_handle()
    session.set_model(handle, summarize_handle(handle))
    rf = COLUMNS.index("RF")
    assert dock.proxy.headerData(rf, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole) == RF_TIP
    assert dock.item("stage").parent() is None and dock.model.item(0, rf).toolTip() == RF_TIP
    assert "(k − 1)·d·jump" in RF_TIP and "jump·s" in RF_TIP


def test_the_summary_tab_copies_its_table_as_text_and_explains_rf(make_window, qtbot):
    from PySide6.QtCore import Qt

    from cnnexplorer.core.charts import ROW_HEIGHT, TABLE_TOP
    from cnnexplorer.gui.views.summary_view import SummaryView

    window = ready(make_window(), "builtin:lenet5", [])
    view = window.show_view(SummaryView)
    assert window.wait_for_jobs(30_000)
    QGuiApplication.clipboard().clear()
    view.canvas.setFocus()
    qtbot.keyClick(view.canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == summary_table_text(window.session.summary, "tsv")
    qtbot.mouseClick(view.copy_buttons["markdown"], Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == summary_table_text(window.session.summary, "markdown")
    assert "Markdown" in view.caption.text() and "parameters" in view.caption.text()
    assert "conv 50.7 k params, 406 k MACs; fully connected 11 k params" in view.caption.text()  # the course's split

    def hover(y: float) -> str:
        view.canvas.scene().sigMouseMoved.emit(view.canvas.view_box.mapViewToScene(QPointF(40, y)))
        return view.canvas.toolTip()

    assert hover(TABLE_TOP + ROW_HEIGHT / 2) == RF_TIP  # the header row
    assert hover(TABLE_TOP + 2.5 * ROW_HEIGHT) == ""  # a layer's row


def test_the_weights_input_channel_box_shows_its_text_whole(make_window):
    from cnnexplorer.gui.views.weights_view import WeightsView

    window = shapes_window(make_window)
    window.fit_to_screen(SMALL_SCREEN)
    view = window.show_view(WeightsView)
    window.session.set_layer("features.0.0")
    assert window.wait_for_jobs(30_000)
    box = view.input_box
    edit = box.lineEdit()
    text_room = edit.contentsRect().width() - edit.textMargins().left() - edit.textMargins().right() - 4
    needed = edit.fontMetrics().horizontalAdvance(box.specialValueText() + " ")  # the text and the cursor after it
    assert text_room >= needed
