"""A heatmap exported from the Heatmaps tab is made again, pixel for pixel, by
``cnnexplorer export --from-sidecar``: method, layer, target, "why not", opacity, colours,
clipping, "map only", the colour-channel reduction and LRP's composite."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cnnexplorer.cli import main
from cnnexplorer.gui.window_jobs import sample_images
from cnnexplorer.gui.views.heatmap_view import TREE_LAYER, HeatmapView
from tests.gui.gui_helpers import shapes_window

WAIT_MS = 60_000


def remade(sidecar, out) -> np.ndarray:
    assert main(["export", "--from-sidecar", str(sidecar), "--out", str(out)]) == 0
    return np.asarray(Image.open(out))


def test_gui_heatmaps_are_made_again_from_their_sidecars(make_window, tmp_path):
    window = shapes_window(make_window, sample_images()[2:3])
    view = window.show_view(HeatmapView)
    view.method.setCurrentIndex(view.method.findData("layercam"))
    view.layer_choice.setCurrentText(TREE_LAYER)
    window.session.set_layer("features.4")
    window.session.set_target(3)
    view.why_not.setChecked(True)
    view.cmap.setCurrentText("viridis")
    view.opacity.setValue(45)
    view.clip.setValue(2.5)
    view.map_only.setChecked(True)
    assert window.wait_for_jobs(WAIT_MS)
    png, sidecar = window.export_current_view(tmp_path / "layercam.png")
    recorded = json.loads(sidecar.read_text())
    assert recorded["layer"] == "features.4"
    assert recorded["settings"] == {"method": "layercam", "target": 3, "why_not": True, "alpha": 0.45,
                                    "cmap": "viridis", "clip": 2.5, "overlay": False, "reduce": "max",
                                    "composite": "epsilon-plus-flat"}
    np.testing.assert_array_equal(remade(sidecar, tmp_path / "cli-layercam.png"), np.asarray(Image.open(png)))

    window.session.set_target(None)
    view.method.setCurrentIndex(view.method.findData("smoothgrad"))
    view.cmap.setCurrentText("auto")
    view.map_only.setChecked(False)
    view.reduce.setCurrentText("mean")
    assert window.wait_for_jobs(WAIT_MS)
    png, sidecar = window.export_current_view(tmp_path / "smoothgrad.png")
    recorded = json.loads(sidecar.read_text())
    assert recorded["layer"] is None and recorded["settings"]["cmap"] == "diverging"  # the mean keeps the sign
    assert recorded["settings"]["reduce"] == "mean"
    assert recorded["settings"]["target"] == window.session.effective_target
    np.testing.assert_array_equal(remade(sidecar, tmp_path / "cli-smoothgrad.png"), np.asarray(Image.open(png)))

    view.method.setCurrentIndex(view.method.findData("lrp"))
    view.composite.setCurrentText("epsilon-gamma-box")
    assert window.wait_for_jobs(WAIT_MS)
    png, sidecar = window.export_current_view(tmp_path / "lrp.png")
    assert json.loads(sidecar.read_text())["settings"]["composite"] == "epsilon-gamma-box"
    np.testing.assert_array_equal(remade(sidecar, tmp_path / "cli-lrp.png"), np.asarray(Image.open(png)))
