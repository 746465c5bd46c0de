"""The model dock: the architecture tree mirrors the layer summary and the session's layer."""

from __future__ import annotations

import pytest
import torch
import torchvision
from PySide6.QtCore import Qt
from torch import nn

from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing
from cnnexplorer.core.models import load_model
from cnnexplorer.core.weights import cache_path
from cnnexplorer.gui.session import Session
from cnnexplorer.core.layer_text import count_text as format_count
from cnnexplorer.gui.widgets.model_dock import COLUMNS, NAME_ROLE, ModelDock


class Reuse(nn.Module):
    """One ReLU called three times, and a frozen first conv."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.act = nn.ReLU()
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 4)
        self.stem.requires_grad_(False)

    def forward(self, x):
        x = self.act(self.stem(x))
        x = self.act(self.body(x))
        return self.head(self.act(x).mean((2, 3)))


def reuse_handle() -> ModelHandle:
    return ModelHandle("reuse", Reuse().eval(), torch.device("cpu"), Preprocessing(3, (32, 32), (0.5,) * 3, (0.5,) * 3),
                       [str(i) for i in range(4)], "none", False)


@pytest.fixture
def dock(qtbot):
    session = Session()
    dock = ModelDock(session)
    qtbot.addWidget(dock)
    dock.resize(700, 600)
    dock.show()
    return dock


def load(dock: ModelDock, handle: ModelHandle):
    summary = summarize_handle(handle)
    dock.session.set_model(handle, summary)
    return summary


def visible_names(dock: ModelDock) -> list[str]:
    names, proxy = [], dock.proxy

    def walk(parent):
        for row in range(proxy.rowCount(parent)):
            index = proxy.index(row, 0, parent)
            names.append(index.data(NAME_ROLE))
            walk(index)

    from PySide6.QtCore import QModelIndex

    walk(QModelIndex())
    return names


def row_cells(dock: ModelDock, name: str) -> dict[str, str]:
    item = dock.item(name)
    parent = item.parent() or dock.model.invisibleRootItem()
    return {column: parent.child(item.row(), i).text() for i, column in enumerate(COLUMNS)}


def test_tree_nests_layers_with_formatted_columns(dock):
    summary = load(dock, reuse_handle())
    assert [dock.model.item(r, 0).text() for r in range(dock.model.rowCount())] == ["stem", "act", "body", "head"]
    body = dock.item("body")
    assert [body.child(r, 0).text() for r in range(body.rowCount())] == ["0", "1"]
    assert body.child(0, 0).toolTip() == "body.0\n8 × (3·3·8 + 1) = 584"
    assert body.child(1, 0).toolTip() == "body.1"
    stem = row_cells(dock, "stem")
    assert stem["Type"] == "Conv2d" and stem["Output"] == "⌊⌋ 8×16×16"  # (32 − 3 + 2·1)/2 + 1 = 16.5, floored
    output = dock.model.item(dock.item("stem").row(), COLUMNS.index("Output"))
    assert "16.5" in output.toolTip() and "not possible" in output.toolTip()
    assert "16.5" in dock.item("stem").toolTip()
    assert row_cells(dock, "head")["Output"] == "4"  # not a sliding window: no mark
    assert stem["Params"] == "224 (224 frozen)"
    assert stem["Kernel/stride/pad"] == "3×3 /2 /1"
    assert stem["RF"] == "3 / 2"
    assert stem["MACs"] == format_count(summary.layer("stem").macs) == "55.3 k"
    assert row_cells(dock, "act")["Calls"] == "×3"
    assert row_cells(dock, "head")["Calls"] == ""
    conv_item = dock.item("stem")
    params_cell = dock.model.item(conv_item.row(), COLUMNS.index("Params"))
    assert params_cell.toolTip() == "8 × (3·3·3 + 1) = 224"
    assert params_cell.textAlignment() & Qt.AlignmentFlag.AlignRight


def test_footer_totals_match_the_parameter_count(dock):
    handle = load_model("builtin:tinyvgg", "cpu")
    load(dock, handle)
    total = sum(p.numel() for p in handle.module.parameters())
    assert f"{total:,} parameters ({total:,} trainable, 0 frozen)" in dock.footer.text()
    handle = reuse_handle()
    load(dock, handle)
    total = sum(p.numel() for p in handle.module.parameters())
    frozen = sum(p.numel() for p in handle.module.stem.parameters())
    assert f"{total:,} parameters ({total - frozen:,} trainable, {frozen:,} frozen)" in dock.footer.text()


def test_clicking_a_row_sets_the_layer_and_the_session_selects_rows(qtbot, dock):
    load(dock, load_model("builtin:tinyvgg", "cpu"))
    emitted = []
    dock.session.layer_changed.connect(emitted.append)
    index = dock.proxy.mapFromSource(dock.item("features.2").index())
    rect = dock.tree.visualRect(index)
    qtbot.mouseClick(dock.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dock.session.layer == "features.2" and emitted == ["features.2"]

    dock.session.set_layer("classifier")
    selected = dock.tree.selectionModel().selectedRows()
    assert [i.data(NAME_ROLE) for i in selected] == ["classifier"]
    assert emitted == ["features.2", "classifier"]  # selecting the row did not echo back
    dock.session.set_layer(None)
    assert dock.tree.selectionModel().selectedRows() == []


def test_filter_hides_rows_but_keeps_ancestors_of_matches(dock):
    load(dock, load_model("builtin:tinyvgg", "cpu"))
    dock.filter_edit.setText("CONV")
    shown = visible_names(dock)
    assert shown == ["features", "features.0", "features.2", "features.5", "features.7"]
    dock.filter_edit.setText("classif")
    assert visible_names(dock) == ["classifier"]
    dock.filter_edit.setText("maxpool")
    assert visible_names(dock) == ["features", "features.4", "features.9"]
    dock.filter_edit.clear()
    assert "flatten" in visible_names(dock) and len(visible_names(dock)) == len(dock.layer_names())


def test_spec_box_and_device_box_ask_the_window(qtbot, dock):
    specs, devices = [], []
    dock.load_requested.connect(specs.append)
    dock.device_requested.connect(devices.append)
    dock.spec_edit.setText("builtin:lenet5")
    qtbot.keyClick(dock.spec_edit, Qt.Key.Key_Return)
    assert specs == ["builtin:lenet5"]
    dock.device_box.textActivated.emit("cpu")
    assert devices == ["cpu"]
    dock.set_device("cpu")  # programmatic: no request
    assert devices == ["cpu"]
    completions = dock.spec_edit.completer().model()
    names = [completions.index(r, 0).data() for r in range(completions.rowCount())]
    assert "builtin:shapes" in names and "torchvision:resnet50" in names and "timm:resnet18" in names
    assert "timm:NAME" in dock.spec_edit.toolTip()


def test_pretrained_googlenet_shows_torchvision_totals_and_where_it_departs_from_the_paper(dock, hub_dir):
    """Random values in the published file's layout (with the auxiliary heads torchvision drops on loading)."""
    weights = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1
    state = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False).state_dict()
    cache_path(weights).parent.mkdir(parents=True)
    torch.save(state, cache_path(weights))
    summary = load(dock, load_model("torchvision:googlenet", "cpu"))
    assert summary.total_params == 6_624_904
    assert dock.footer.text().startswith("6,624,904 parameters (6,624,904 trainable, 0 frozen)")
    assert "3×3 convolution" in dock.item("inception4a.branch3.1").toolTip()
    assert dock.about.text().startswith("GoogLeNet (Szegedy et al. 2014)")


def test_counts_use_k_m_g():
    assert [format_count(v) for v in (0, 999, 1234, 4_090_000_000, 55_296)] == ["0", "999", "1.23 k", "4.09 G", "55.3 k"]
