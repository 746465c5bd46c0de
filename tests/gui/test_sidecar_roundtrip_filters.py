"""Weights exported from the Weights tab are made again, pixel for pixel, by
``cnnexplorer export --from-sidecar``: one input channel of every kernel, or a weight matrix."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cnnexplorer.cli import main
from cnnexplorer.gui.views.weights_view import WeightsView

WAIT_MS = 30_000


def test_kernels_of_one_input_channel_and_a_matrix_are_made_again(make_window, tmp_path):
    window = make_window()
    window.load_model("builtin:shapes", "cpu")
    assert window.wait_for_jobs(WAIT_MS)
    view = window.show_view(WeightsView)
    for layer, input_channel in (("features.2.0", 5), ("classifier", None)):
        window.session.set_layer(layer)
        assert window.wait_for_jobs(WAIT_MS)
        if input_channel is not None:
            view.input_box.setValue(input_channel)
            assert window.wait_for_jobs(WAIT_MS)
        png, sidecar = window.export_current_view(tmp_path / f"{layer}.png")
        assert json.loads(sidecar.read_text())["settings"]["input_channel"] == input_channel
        out = tmp_path / f"{layer}-cli.png"
        assert main(["export", "--from-sidecar", str(sidecar), "--out", str(out)]) == 0
        assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(png)))
        assert json.loads(out.with_name(out.name + ".json").read_text())["settings"] == \
            json.loads(sidecar.read_text())["settings"]
