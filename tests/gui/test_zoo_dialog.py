"""The model-zoo dialog: every torchvision classifier and the timm models, numeric sorting, filtering, choosing."""

from __future__ import annotations

import pytest
import torchvision
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from cnnexplorer.core.zoo import ZooEntry, zoo_entries
from cnnexplorer.gui.widgets.zoo_dialog import (ACC1, CACHED, DEPTH, LIBRARY, MODEL, PARAMS, SORT_ROLE, SPEC_ROLE,
                                                ZooDialog)


@pytest.fixture(scope="module")
def entries():
    return zoo_entries()


@pytest.fixture
def dialog(qtbot, entries):
    widget = ZooDialog(entries=entries)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def column(dialog: ZooDialog, col: int, role=Qt.ItemDataRole.DisplayRole) -> list:
    proxy = dialog.proxy
    return [proxy.index(row, col).data(role) for row in range(proxy.rowCount())]


def entry(arch: str, params: int, acc1: float | None, cached: bool = False) -> ZooEntry:
    return ZooEntry(arch, "IMAGENET1K_V1", params, 1.0, acc1, None, None, cached, f"torchvision:{arch}")


def test_lists_every_torchvision_classifier_sorted_by_name(qtbot):
    dialog = ZooDialog()
    qtbot.addWidget(dialog)
    names, libraries = column(dialog, MODEL), column(dialog, LIBRARY)
    assert libraries.count("torchvision") == len(torchvision.models.list_models(module=torchvision.models))
    assert names.index("resnet18") < names.index("resnet34") < names.index("resnet101")
    assert libraries[names.index("resnet18")] == "torchvision" and libraries[names.index("resnet18") + 1] == "timm"
    assert dialog.windowTitle() == "Model zoo — torchvision and timm classifiers"


def test_params_sort_numerically_largest_first(dialog, entries):
    dialog.table.sortByColumn(PARAMS, Qt.SortOrder.DescendingOrder)
    params = column(dialog, PARAMS, SORT_ROLE)
    assert params == sorted((e.params for e in entries), reverse=True)
    assert float(column(dialog, PARAMS)[0]) == pytest.approx(max(e.params for e in entries) / 1e6, abs=0.05)


def test_missing_values_show_a_dash_and_sort_last_both_ways(qtbot):
    dialog = ZooDialog(entries=[entry("a", 3, 70.0), entry("b", 2, None), entry("c", 1, 80.0, cached=True)])
    qtbot.addWidget(dialog)
    dialog.table.sortByColumn(ACC1, Qt.SortOrder.AscendingOrder)
    assert column(dialog, ACC1) == ["70.00", "80.00", "—"]
    dialog.table.sortByColumn(ACC1, Qt.SortOrder.DescendingOrder)
    assert column(dialog, ACC1) == ["80.00", "70.00", "—"]
    assert column(dialog, CACHED) == ["✓", "", ""]
    assert dialog.proxy.index(0, MODEL).data(Qt.ItemDataRole.FontRole).bold()


def test_filter_leaves_only_the_resnet_family(qtbot, dialog, entries):
    qtbot.keyClicks(dialog.filter, "resnet")
    names = column(dialog, MODEL)
    assert names and all("resnet" in name for name in names)
    assert len(names) == sum("resnet" in e.arch for e in entries)
    assert dialog.selected_spec() == f"torchvision:{names[0]}"


def test_double_click_chooses_the_row(qtbot, dialog):
    index = dialog.proxy.index(column(dialog, MODEL).index("resnet18"), PARAMS)
    dialog.table.scrollTo(index)
    centre = dialog.table.visualRect(index).center()
    viewport = dialog.table.viewport()
    with qtbot.assertNotEmitted(dialog.model_chosen):
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=centre)
    assert dialog.selected_spec() == "torchvision:resnet18" and dialog.isVisible()
    with qtbot.waitSignal(dialog.model_chosen) as chosen:
        qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=centre)
    assert chosen.args == ["torchvision:resnet18"]
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_enter_in_the_filter_opens_the_best_match(qtbot, dialog):
    qtbot.keyClicks(dialog.filter, "alexnet")
    with qtbot.waitSignal(dialog.model_chosen) as chosen:
        qtbot.keyClick(dialog.filter, Qt.Key.Key_Return)
    assert chosen.args == ["torchvision:alexnet"]
    assert column(dialog, MODEL, SPEC_ROLE) == ["torchvision:alexnet"]


def test_filtering_on_timm_leaves_its_models_and_opens_one(qtbot, dialog):
    qtbot.keyClicks(dialog.filter, "timm:")
    specs = column(dialog, MODEL, SPEC_ROLE)
    assert specs and all(spec.startswith("timm:") for spec in specs) and "timm:resnet18" in specs
    assert set(column(dialog, ACC1)) == {"—"}
    with qtbot.waitSignal(dialog.model_chosen) as chosen:
        qtbot.keyClick(dialog.filter, Qt.Key.Key_Return)
    assert chosen.args == [specs[0]]


def test_the_chart_places_models_by_gmacs_and_accuracy_and_a_click_chooses_one(qtbot):
    from PySide6.QtCore import QPoint

    big = ZooEntry("big", "IMAGENET1K_V1", 100_000_000, 10.0, 80.0, None, None, False, "torchvision:big")
    small = ZooEntry("small", "IMAGENET1K_V1", 4_000_000, 0.5, 65.0, None, None, True, "torchvision:small")
    dialog = ZooDialog(entries=[big, small, entry("unknown", 5, None)])
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.pages.setCurrentWidget(dialog.chart)
    qtbot.waitExposed(dialog)
    chart = dialog.chart
    assert [e.arch for e in chart.entries] == ["big", "small"]  # no accuracy: not drawn
    assert "1 without accuracy or GMACs not drawn" in chart.caption.text()
    sizes = {p.data(): p.size() for p in chart.scatter.points()}
    assert sizes["torchvision:big"] == pytest.approx(5 * sizes["torchvision:small"], rel=0.01)  # area ∝ parameters
    chart.plot.getPlotItem().vb.autoRange()
    qtbot.wait(50)

    def at(spec: str) -> QPoint:
        spot = next(p for p in chart.scatter.points() if p.data() == spec)
        scene = chart.plot.getPlotItem().vb.mapViewToScene(spot.pos())
        return chart.plot.mapFromScene(scene)

    opened: list[str] = []
    dialog.model_chosen.connect(opened.append)
    qtbot.mouseClick(chart.plot.viewport(), Qt.MouseButton.LeftButton, pos=at("torchvision:small"))
    assert dialog.selected_spec() == "torchvision:small" and "small: 65.0 %" in chart.label.toPlainText()
    for _ in range(2):  # a double click, as two clicks in quick succession
        qtbot.mouseClick(chart.plot.viewport(), Qt.MouseButton.LeftButton, pos=at("torchvision:big"))
    assert opened == ["torchvision:big"]


def test_the_depth_column_counts_weight_layers_as_the_course_does(dialog):
    depths = dict(zip(column(dialog, MODEL), column(dialog, DEPTH)))
    assert (depths["vgg16"], depths["resnet50"], depths["googlenet"]) == ("16", "50", "22")
    assert "VGG-16 16" in dialog.model.headerData(DEPTH, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    dialog.table.sortByColumn(DEPTH, Qt.SortOrder.DescendingOrder)
    known = [d for d in column(dialog, DEPTH, SORT_ROLE) if d is not None]
    assert known == sorted(known, reverse=True) and column(dialog, DEPTH)[0] == str(max(known))
