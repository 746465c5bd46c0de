"""The Weights tab: RGB kernels, per-output kernels, weight matrices, histogram and export."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF, Qt

from cnnexplorer.cli import main
from cnnexplorer.core.filters import filter_view, render_filter_picture
from cnnexplorer.gui.session import Unit
from cnnexplorer.gui.views.weights_view import WeightsView

WAIT_MS = 30_000


def weights_tab(make_window) -> tuple[object, WeightsView]:
    window = make_window()
    window.load_model("builtin:shapes", "cpu")
    assert window.wait_for_jobs(WAIT_MS)
    view = window.show_view(WeightsView)
    return window, view


def show_layer(window, layer: str) -> None:
    window.session.set_layer(layer)
    assert window.wait_for_jobs(WAIT_MS)


def test_kernels_matrix_and_layers_without_weights(make_window, qtbot):
    window, view = weights_tab(make_window)
    module = window.session.model.module
    assert "Select a layer in the Model tree" in view.message.text()

    show_layer(window, "features.0.0")
    assert view.result.view.mode == "rgb"
    np.testing.assert_array_equal(view.picture()[0], render_filter_picture(filter_view(module, "features.0.0")))
    edges, counts = view.histogram.getPlotItem().listDataItems()[0].getData()
    weights = module.features[0][0].weight.detach().numpy()
    assert counts.sum() == weights.size, "the histogram counts every weight"
    assert edges[0] == weights.min() and edges[-1] == weights.max()
    layout = view.result.layout
    x, y = layout.tile_origin(7)
    centre = view.canvas.mapFromScene(view.canvas.view_box.mapViewToScene(QPointF(x + 2, y + layout.tile_h - 3)))
    qtbot.mouseClick(view.canvas.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert window.session.unit == Unit("features.0.0", 7), "a kernel click selects its output channel"

    show_layer(window, "features.0.2")
    assert view.picture() is None
    assert "features.0.2 (ReLU) has no weights" in view.message.text()
    assert not view.histogram.isVisibleTo(view)
    assert window.messages == [], "a message in the view, not a dialog"

    show_layer(window, "features.2")  # a block: its convolution's kernels
    assert view.result.view.layer == "features.2.0" and view.result.view.mode == "kernels"
    assert view.message.text().startswith("features.2 is a block; its first weighted layer is features.2.0 (Conv2d)")

    show_layer(window, "classifier")
    assert view.result.view.mode == "matrix" and view.result.view.values.shape == (6, 96)
    assert view.colorbar.isVisibleTo(view) and not view.input_box.isEnabled()


def test_export_of_one_input_channel_equals_the_cli(make_window, tmp_path):
    window, view = weights_tab(make_window)
    show_layer(window, "features.2.0")
    assert view.result.view.mode == "kernels" and view.input_box.maximum() == 23
    view.input_box.setValue(5)
    assert window.wait_for_jobs(WAIT_MS)
    assert view.result.view.input_channel == 5
    gui_png, gui_sidecar = window.export_current_view(tmp_path / "gui.png")
    cli_png = tmp_path / "cli.png"
    assert main(["export", "filters", "--model", "builtin:shapes", "--device", "cpu", "--layer", "features.2.0",
                 "--input-channel", "5", "--out", str(cli_png)]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(gui_png)), np.asarray(Image.open(cli_png)))
    gui, cli = (json.loads(p.read_text()) for p in (gui_sidecar, tmp_path / "cli.png.json"))
    assert gui["settings"] == cli["settings"] == {"input_channel": 5, "mode": "kernels"}
    assert gui["view"] == cli["view"] == "filters" and gui["layer"] == "features.2.0"
