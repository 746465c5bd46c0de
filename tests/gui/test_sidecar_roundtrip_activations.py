"""An activation grid exported from the Activations tab is made again, pixel for pixel, by
``cnnexplorer export --from-sidecar``: normalisation, colours, sort, hidden dead channels and a
second image compared with, side by side or as a difference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.cli import main
from cnnexplorer.core.colour_bar import Scale, colour_bar
from cnnexplorer.gui.window_jobs import sample_images
from cnnexplorer.gui.views.activations_view import ActivationsView

WAIT_MS = 30_000


def remade(sidecar, out) -> tuple[np.ndarray, dict]:
    assert main(["export", "--from-sidecar", str(sidecar), "--out", str(out)]) == 0
    return np.asarray(Image.open(out)), json.loads(out.with_name(out.name + ".json").read_text())["settings"]


def activations_tab(make_window, images):
    window = make_window()
    window.load_model("builtin:shapes", "cpu")
    window.open_files([str(p) for p in images])
    assert window.wait_for_jobs(WAIT_MS)
    view = window.show_view(ActivationsView)
    window.session.set_layer("features.5.2")
    assert window.wait_for_jobs(WAIT_MS)
    return window, view


def choose(box, data) -> None:
    box.setCurrentIndex(box.findData(data))


def test_a_grid_with_its_colours_order_and_hidden_channels_is_made_again(make_window, tmp_path):
    window, view = activations_tab(make_window, [sample_images()[1]])
    controls = view.controls
    choose(controls.norm_box, "layer")
    choose(controls.cmap_box, "magma")
    choose(controls.sort_box, "max")
    controls.dead_box.setChecked(True)
    assert window.wait_for_jobs(WAIT_MS)
    png, sidecar = window.export_current_view(tmp_path / "gui.png")
    recorded = json.loads(sidecar.read_text())
    assert recorded["layer"] == "features.5.2"
    assert {k: recorded["settings"][k] for k in ("norm", "cmap", "sort", "hide_dead", "compare")} == {
        "norm": "layer", "cmap": "magma", "sort": "max", "hide_dead": True, "compare": None}
    pixels, settings = remade(sidecar, tmp_path / "cli.png")
    assert np.array_equal(pixels, np.asarray(Image.open(png)))
    assert settings == recorded["settings"]


def test_a_fixed_range_is_made_again(make_window, tmp_path):
    window, view = activations_tab(make_window, [sample_images()[0]])
    choose(view.controls.norm_box, "fixed")
    view.controls.high_box.setValue(0.5)
    assert window.wait_for_jobs(WAIT_MS)
    png, sidecar = window.export_current_view(tmp_path / "gui.png")
    settings = json.loads(sidecar.read_text())["settings"]
    assert settings["range"][1] == 0.5
    sample = sample_images()[0]
    assert json.loads(sidecar.read_text())["image"]["path"] == f"sample:{sample.stem}"  # found wherever installed
    pixels, _ = remade(sidecar, tmp_path / "cli.png")
    assert np.array_equal(pixels, np.asarray(Image.open(png)))
    grid = view.result.grid
    bar = colour_bar(f"features.5.2: {grid.shape[0]} channels of sample:{sample.stem}",
                     Scale(settings["cmap"], *settings["range"], "activation value (a fixed range)"), pixels.shape[1])
    assert np.array_equal(pixels[-bar.shape[0]:], bar)  # the PNG carries its title and colour bar


@pytest.mark.parametrize("difference", [False, True])
def test_a_comparison_with_a_second_image_is_made_again(make_window, tmp_path, difference):
    first, second = sample_images()[1:3]
    window, view = activations_tab(make_window, [second, first])
    choose(view.controls.norm_box, "layer")
    view.controls.compare_box.setCurrentIndex(view.controls.compare_box.findText(f"sample:{second.stem}"))
    view.controls.difference_box.setChecked(difference)
    assert window.wait_for_jobs(WAIT_MS)
    assert len(view.result.panels) == (1 if difference else 2)
    png, sidecar = window.export_current_view(tmp_path / "gui.png")
    compare = json.loads(sidecar.read_text())["settings"]["compare"]
    assert compare == {"image": f"sample:{second.stem}", "sha256": view.result.options.compare.sha256,
                       "difference": difference}
    pixels, settings = remade(sidecar, tmp_path / "cli.png")
    assert np.array_equal(pixels, np.asarray(Image.open(png)))
    assert settings["compare"] == compare


def test_a_changed_comparison_image_or_damaged_settings_are_refused(make_window, tmp_path, capsys):
    second = tmp_path / "second.png"
    second.write_bytes(sample_images()[2].read_bytes())
    window, view = activations_tab(make_window, [second, sample_images()[1]])
    view.controls.compare_box.setCurrentIndex(view.controls.compare_box.findText(second.name))
    assert window.wait_for_jobs(WAIT_MS)
    _, sidecar = window.export_current_view(tmp_path / "gui.png")
    recorded = json.loads(sidecar.read_text())
    damaged = tmp_path / "damaged.png.json"
    recorded["settings"]["compare"]["where"] = "left"
    damaged.write_text(json.dumps(recorded))
    assert main(["export", "--from-sidecar", str(damaged), "--out", str(tmp_path / "cli.png")]) == 2
    assert "the sidecar's activations settings are damaged" in capsys.readouterr().err
    Image.open(sample_images()[0]).save(second)
    assert main(["export", "--from-sidecar", str(sidecar), "--out", str(tmp_path / "cli.png")]) == 2
    assert "the image compared with, has changed since the picture was made" in capsys.readouterr().err
