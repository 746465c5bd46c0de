"""The Lab's All layers page exported from the window is made again, pixel for pixel, by
``cnnexplorer export --from-sidecar``, with the options chosen on the page."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cnnexplorer.cli import main
from cnnexplorer.gui.views.lab_view import LabView
from tests.gui.gui_helpers import shapes_window

WAIT_MS = 30_000


def test_every_layer_exported_from_the_lab_is_made_again(make_window, tmp_path):
    window = shapes_window(make_window)
    lab = window.show_view(LabView)
    lab.show_page(lab.layers)
    page = lab.layers
    page.scale.setCurrentIndex(page.scale.findData("channel"))
    page.kinds.setCurrentIndex(page.kinds.findData("conv"))
    page.max_channels.setValue(8)
    assert window.wait_for_jobs(WAIT_MS)
    png, sidecar = window.export_current_view(tmp_path / "gui.png")
    recorded = json.loads(sidecar.read_text())
    assert recorded["view"] == "layers"
    assert {k: recorded["settings"][k] for k in ("scale", "kinds", "max_channels")} == {
        "scale": "channel", "kinds": "conv", "max_channels": 8}
    out = tmp_path / "cli.png"
    assert main(["export", "--from-sidecar", str(sidecar), "--out", str(out)]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(png)))
