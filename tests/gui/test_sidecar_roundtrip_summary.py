"""The Input and Summary tabs' exports and the predictions chart are made again, pixel for pixel,
by ``cnnexplorer export --from-sidecar``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from cnnexplorer.cli import main
from cnnexplorer.gui.window_jobs import sample_images
from cnnexplorer.gui.views.input_view import InputView
from cnnexplorer.gui.views.summary_view import SummaryView
from tests.gui.gui_helpers import shapes_window

WAIT_MS = 60_000


@pytest.fixture
def window(make_window):
    return shapes_window(make_window, sample_images()[1:2])


def assert_remade(sidecar, png, tmp_path) -> dict:
    """The CLI's picture from ``sidecar`` equals ``png``; the sidecar's contents."""
    out = tmp_path / "cli.png"
    assert main(["export", "--from-sidecar", str(sidecar), "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(png)))
    return json.loads(sidecar.read_text())


@pytest.mark.parametrize("kind, expected", [(InputView, {}), (SummaryView, {"input_size": [3, 64, 64]})])
def test_input_and_summary_exports_are_made_again(window, tmp_path, kind, expected):
    window.show_view(kind)
    assert window.wait_for_jobs(WAIT_MS)
    png, sidecar = window.export_current_view(tmp_path / "gui.png")
    recorded = assert_remade(sidecar, png, tmp_path)
    assert recorded["view"] == kind.view_name and recorded["settings"] == expected


def test_the_predictions_chart_is_made_again_with_its_target(window, qtbot, tmp_path):
    panel = window.image_dock.predictions
    qtbot.mouseClick(panel, Qt.MouseButton.LeftButton, pos=panel.row_rect(2).center())
    target = window.session.predictions[2].index
    assert window.session.target == target
    png, sidecar = panel.export_png(tmp_path / "chart.png")
    recorded = assert_remade(sidecar, png, tmp_path)
    assert recorded["view"] == "predictions" and recorded["settings"] == {"top": 5, "target": target}
