"""The Feature vis tab, driven through the real window on builtin:shapes: a live grid that
updates while optimising, cancel, tile enlargement with its curve, export (which the CLI makes
again from its sidecar), the diversity objective, and the activation grid's "Visualise channel k"."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF, Qt

from cnnexplorer.cli import main
from cnnexplorer.core.featurevis import render_featurevis_picture
from cnnexplorer.gui.session import Unit
from cnnexplorer.gui.views.activations_view import ActivationsView
from cnnexplorer.gui.views.featurevis_view import FeatureVisView
from tests.gui.gui_helpers import shapes_window
from tests.picture_checks import assert_same_picture

WAIT_MS = 60_000
LAYER = "features.2"



def quick(view: FeatureVisView, steps: int = 8, channels: str = "0-3") -> None:
    controls = view.controls
    controls.preset.setCurrentText("quick")
    controls.steps.setValue(steps)
    controls.size.setValue(32)
    controls.channels.setCurrentText("range")
    controls.channel_text.setText(channels)


def viewport_point(canvas, x: float, y: float):
    return canvas.mapFromScene(canvas.view_box.mapViewToScene(QPointF(x, y)))


def test_a_quick_run_updates_the_grid_live_and_exports_what_it_shows(make_window, qtbot, tmp_path):
    window = shapes_window(make_window)
    window.session.set_layer(LAYER)
    view = window.show_view(FeatureVisView)
    quick(view)
    grids = []
    view.grid.image_item.sigImageChanged.connect(lambda: grids.append(view.grid.image_item.image.copy()))
    view.controls.start_button.click()
    assert view.controls.cancel_button.isEnabled() and view.controls.start_button.text() == "Restart"
    assert window.wait_for_jobs(WAIT_MS)

    assert view.steps_seen == 4, "8 steps, a preview every 2"
    changed = sum(not np.array_equal(a, b) for a, b in zip(grids, grids[1:]))
    assert changed >= 3, "the grid changes while the optimisation runs"
    result = view.finished.result
    assert result.units == [0, 1, 2, 3] and result.layer == LAYER and result.history.shape == (8, 4)
    np.testing.assert_array_equal(view.grid.image_item.image, render_featurevis_picture(result.images, [0, 1, 2, 3]))
    assert not view.controls.cancel_button.isEnabled() and "channels 0–3 of features.2" in view.message.text()
    # the caption says which value is which: the final images' objective, and the curve's last (transformed) step
    assert f"{np.mean(result.values):.4g} on the final images" in view.message.text()
    assert f"on a transformed copy: {np.mean(result.history[-1]):.4g}" in view.message.text()

    layout = view.finished.layout
    qtbot.mouseClick(view.grid.viewport(), Qt.MouseButton.LeftButton,
                     pos=viewport_point(view.grid, layout.tile_w * 1.5 + layout.gap, layout.tile_h / 2))
    assert view.selected == 1
    assert view.tile.image_item.image.shape == (32, 32, 3)
    xs, ys = view.curve.curve.getData()
    assert list(xs) == list(range(1, 9)) and np.allclose(ys, result.history[:, 1])
    assert "channel 1" in view.tile_title.text()

    png, side = window.export_current_view(tmp_path / "grid.png")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), view.finished.picture.pixels)
    sidecar = json.loads(side.read_text())
    assert sidecar["view"] == "featurevis" and sidecar["layer"] == LAYER
    assert sidecar["settings"]["seed"] == 0 and sidecar["settings"]["steps"] == 8
    assert sidecar["settings"]["units"] == [0, 1, 2, 3]
    png, side = view.export_tile(tmp_path / "one.png")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), render_featurevis_picture(result.images[1:2], [1]))
    assert json.loads(side.read_text())["settings"]["units"] == [1]


def test_cancel_stops_the_run_and_leaves_no_hooks(make_window, qtbot):
    window = shapes_window(make_window)
    window.session.set_layer(LAYER)
    view = window.show_view(FeatureVisView)
    quick(view, steps=2000)
    view.controls.start_button.click()
    qtbot.waitUntil(lambda: view.steps_seen >= 1, timeout=WAIT_MS)
    view.controls.cancel_button.click()
    assert window.wait_for_jobs(WAIT_MS)
    assert view.finished is None and view.steps_seen < 100
    assert "Cancelled" in view.message.text() and not view.controls.cancel_button.isEnabled()
    module = window.session.model.module
    assert sum(len(m._forward_hooks) for m in module.modules()) == 0

    view.controls.start_button.click()  # the status bar's Cancel stops it too
    qtbot.waitUntil(lambda: view.steps_seen >= 1, timeout=WAIT_MS)
    window.jobs.cancel_all()
    assert window.wait_for_jobs(WAIT_MS)
    assert "Cancelled" in view.message.text() and not view.controls.cancel_button.isEnabled()
    assert all(p.requires_grad for p in module.parameters())


def test_visualise_this_channel_in_the_activation_grid_switches_tab_and_targets_it(make_window, qtbot):
    window = shapes_window(make_window)
    activations = window.show_view(ActivationsView)
    window.session.set_layer(LAYER)
    assert window.wait_for_jobs(WAIT_MS)
    view = window.view(FeatureVisView)
    view.controls.steps.setValue(4)
    view.controls.size.setValue(32)

    layout = activations.result.panels[0].layout
    x, y = layout.tile_origin(5)
    centre = viewport_point(activations.canvas, x + layout.tile_w / 2, y + layout.tile_h / 2)
    qtbot.mouseClick(activations.canvas.viewport(), Qt.MouseButton.RightButton, pos=centre)
    actions = {a.text(): a for a in activations.context_menu.actions()}
    actions["Visualise channel 5"].trigger()
    activations.context_menu.close()

    assert window.tabs.currentWidget() is view
    assert window.session.unit == Unit(LAYER, 5)
    assert window.wait_for_jobs(WAIT_MS)
    result = view.finished.result
    assert result.kind == "channel" and result.layer == LAYER and result.units == [5]


def test_a_missing_layer_or_image_is_said_not_raised(make_window):
    window = shapes_window(make_window)
    view = window.show_view(FeatureVisView)
    view.controls.start_button.click()
    assert "Select a layer" in view.message.text() and view.finished is None
    window.session.set_layer(LAYER)
    quick(view)
    view.controls.channels.setCurrentText("current unit")  # with no unit of this layer: the range, and a word why
    view.controls.start_button.click()
    assert f"no channel of {LAYER} is selected" in view.message.text()
    assert window.wait_for_jobs(WAIT_MS)
    assert view.finished.result.units == [0, 1, 2, 3]


def test_deepdream_starts_from_the_current_image_and_shows_it_live(make_window):
    window = shapes_window(make_window)
    window.session.set_layer(LAYER)
    view = window.show_view(FeatureVisView)
    view.controls.set_kind("deepdream")
    assert not view.controls.channels.isEnabled() and not view.controls.param.isEnabled()
    view.controls.steps.setValue(6)
    view.controls.start_button.click()
    assert window.wait_for_jobs(WAIT_MS)
    result = view.finished.result
    assert result.kind == "deepdream" and result.units == [None] and result.images.shape == (1, 3, 64, 64)
    assert view.steps_seen >= 3 and result.settings["param"] == "pixel"
    assert result.values[0] > result.image_values[0], "the dream raises the layer's energy over the image's"


def test_the_gui_export_is_made_again_from_its_sidecar(make_window, tmp_path, capsys):
    window = shapes_window(make_window)
    window.session.set_layer(LAYER)
    view = window.show_view(FeatureVisView)
    quick(view, steps=4, channels="2")
    view.controls.set_kind("diversity")  # four images of one channel, with a smoothness penalty
    view.controls.tv.setValue(0.5)
    view.controls.seed.setValue(7)
    view.controls.start_button.click()
    assert window.wait_for_jobs(WAIT_MS)
    assert view.finished.result.units == [2, 2, 2, 2] and view.steps_seen == 4

    png, side = window.export_current_view(tmp_path / "gui.png")
    sidecar = json.loads(side.read_text())
    settings = sidecar["settings"]
    assert sidecar["seed"] == 7
    assert (settings["objective"], settings["units"], settings["tv"]) == ("diversity", [2], 0.5)
    assert main(["export", "--from-sidecar", str(side), "--out", str(tmp_path / "cli.png")]) == 0
    capsys.readouterr()
    assert_same_picture(Image.open(png), Image.open(tmp_path / "cli.png"))  # made again on another thread


def test_captions_name_the_units_they_visualise():
    from cnnexplorer.gui.views.featurevis_view import units_text

    assert units_text("channel", [5]) == "channel 5"
    assert units_text("channel", [0, 1, 2, 3]) == "channels 0–3"
    assert units_text("logit", [3, 7]) == "classes 3, 7"
    assert units_text("neuron", [2]) == "neuron 2"
    assert units_text("diversity", [4, 4, 4, 4]) == "channel 4"
    assert units_text("deepdream", None) == "deepdream"


def test_the_course_recipe_and_the_regulariser_weights_reach_the_options(qtbot):
    from cnnexplorer.gui.widgets.featurevis_controls import FeatureVisControls

    controls = FeatureVisControls()
    qtbot.addWidget(controls)
    controls.set_kind("logit")
    controls.preset.setCurrentText("course")
    controls.class_l2.setValue(0.0)
    assert controls.class_l2.isEnabled() and not controls.inversion_tv.isEnabled()
    options = controls.options()
    assert (options.param, options.step, options.transforms, options.logit_l2) == ("grey", "normalised", False, 0.0)
    assert options.settings().lr == 0.01
    controls.set_kind("inversion")
    controls.inversion_alpha.setValue(2.0)
    controls.inversion_alpha_weight.setValue(0.5)
    controls.inversion_tv.setValue(0.2)
    assert not controls.class_l2.isEnabled() and controls.inversion_tv.isEnabled()
    settings = controls.options().settings()
    assert (settings.alpha, settings.alpha_weight, settings.inversion_tv) == (2.0, 0.5, 0.2)
    controls.preset.setCurrentText("default")
    assert (controls.param.currentText(), controls.step.currentText(), controls.transforms.isChecked()) == ("fft", "adam", True)
