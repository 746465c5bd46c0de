"""The Adversarial tab, driven through the real window on the trained shapes model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import Qt

from cnnexplorer.cli import main
from cnnexplorer.core.adversarial import as_uint8
from cnnexplorer.core.builtin.shapes_data import VALIDATION_SEED, generate_shapes
from cnnexplorer.core.images import load_image
from cnnexplorer.core.interventions import parse_edits
from cnnexplorer.gui.views.adversarial_view import AdversarialView

WAIT_MS = 60_000


@pytest.fixture
def circle_png(tmp_path):
    """A validation circle at the model's 64×64 input size (a PNG round trip is exact)."""
    batch = generate_shapes(12, VALIDATION_SEED)
    index = int((batch.labels == 0).nonzero()[0])
    path = tmp_path / "circle.png"
    Image.fromarray(as_uint8(batch.images[index]).permute(1, 2, 0).numpy()).save(path)
    return path


def adversarial_tab(make_window, image) -> tuple[object, AdversarialView]:
    window = make_window()
    window.load_model("builtin:shapes", "cpu")
    window.open_files([str(image)])
    assert window.wait_for_jobs(WAIT_MS)
    view = window.show_view(AdversarialView)
    return window, view


def predict(window, path) -> torch.Tensor:
    handle = window.session.model
    pixels = handle.preprocessing.to_tensor(load_image(path).image)[None]
    with torch.no_grad():
        return torch.softmax(handle.pixel_model()(pixels), dim=1)[0]


def test_attack_fills_the_curve_shows_success_and_saves_an_image_that_fools(make_window, qtbot, circle_png,
                                                                            tmp_path, capsys):
    window, view = adversarial_tab(make_window, circle_png)
    assert view.controls.name() == "pgd" and view.picture() is None
    qtbot.mouseClick(view.controls.run_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS)

    curve = view.curve
    assert curve.iterations == list(range(11))  # the start and 10 steps, one point each as they came
    assert curve.true_probs[0] > 0.9 and curve.true_probs[-1] < 0.1
    assert curve.target_probs[-1] > 0.5
    assert view.attacked.result.success.all()
    assert view.message.text().startswith("fooled: circle") and "L∞ 8/255" in view.message.text()
    assert view.save_button.isEnabled()

    saved = view.save_adversarial_image(tmp_path / "adv.png")
    probs = predict(window, saved)
    assert int(probs.argmax()) != 0 and int(probs.argmax()) == int(view.attacked.result.after[0].argmax())
    levels = np.asarray(Image.open(saved), dtype=int) - np.asarray(Image.open(circle_png), dtype=int)
    assert np.abs(levels).max() == 8

    png, _ = window.export_current_view(tmp_path / "gui.png")
    code = main(["export", "adversarial", "--model", "builtin:shapes", "--image", str(circle_png),
                 "--out", str(tmp_path / "cli.png")])
    capsys.readouterr()
    assert code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(tmp_path / "cli.png")))


def test_targeted_attack_defaults_to_the_runner_up_and_follows_the_clicked_class(make_window, qtbot, circle_png):
    window, view = adversarial_tab(make_window, circle_png)
    controls = view.controls
    controls.targeted.setChecked(True)
    assert controls.target.currentData() == window.session.predictions[1].index
    window.session.set_target(3)  # a click on "star" in the predictions panel
    assert controls.target.currentData() == 3
    qtbot.mouseClick(controls.run_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS)
    result = view.attacked.result
    assert bool(result.success[0]) and int(result.after[0].argmax()) == 3
    assert view.curve.target_probs[-1] > view.curve.target_probs[0]

    controls.set_attack("deepfool")  # untargeted only
    assert not controls.targeted.isChecked() and not controls.targeted.isEnabled()
    assert not controls.eps.isEnabled()


def test_step_size_reaches_the_attack_and_only_attacks_that_take_one_offer_it(make_window, qtbot, circle_png):
    window, view = adversarial_tab(make_window, circle_png)
    controls = view.controls
    controls.set_attack("fgsm")
    assert not controls.alpha.isEnabled()
    controls.set_attack("bim")  # no random start: after k steps of α no pixel moved more than k·α
    assert controls.alpha.isEnabled() and controls.alpha.value() == 2
    controls.alpha.setValue(1)
    controls.steps.setValue(3)
    qtbot.mouseClick(controls.run_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS)
    result = view.attacked.result
    assert result.settings["alpha"] == 1 / 255
    assert 0 < float(result.linf[0]) <= 3 / 255 + 1e-9 < result.eps


def test_the_target_class_can_be_typed(make_window, qtbot, circle_png):
    window, view = adversarial_tab(make_window, circle_png)
    controls = view.controls
    controls.targeted.setChecked(True)
    controls.target.setEditText("tri")  # only "2: triangle" contains it
    assert controls.options().target == 2 and controls.target.currentData() == 2
    controls.target.setEditText("3: star")
    assert controls.options().target == 3
    controls.target.setEditText("r")  # circle, square, triangle, star, cross, ring
    qtbot.mouseClick(controls.run_button, Qt.MouseButton.LeftButton)
    assert "6 classes match 'r'" in view.message.text() and view.attacked is None
    controls.target.setEditText("hexagon")
    qtbot.mouseClick(controls.run_button, Qt.MouseButton.LeftButton)
    assert "unknown class 'hexagon'" in view.message.text() and controls.run_button.isEnabled()


def test_a_user_error_is_shown_in_the_tab(make_window, qtbot, circle_png):
    window, view = adversarial_tab(make_window, circle_png)
    view.controls.targeted.setChecked(True)
    view.controls.set_target(0)  # the model already says circle
    qtbot.mouseClick(view.controls.run_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS)
    assert "already predicts circle" in view.message.text()
    assert view.attacked is None and view.controls.run_button.isEnabled()


def test_robustness_curve_is_one_job_and_pgd_is_below_fgsm(make_window, qtbot, circle_png):
    window, view = adversarial_tab(make_window, circle_png)
    panel = view.robustness
    view.tabs.setCurrentWidget(panel)
    panel.levels.setText("0, 2, 8")
    panel.steps.setValue(5)
    panel.limit.setValue(32)
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS)
    data, curve = view.curve_result
    assert len(data.labels) == 32 and data.labelled == 32
    x, fgsm = panel.curves["fgsm"].getData()
    _, pgd = panel.curves["pgd"].getData()
    assert list(x) == [0, 2, 8]
    assert fgsm[0] == pgd[0] >= 0.9 and pgd[2] <= fgsm[2] and pgd[2] <= 0.1
    assert "32 images from builtin:shapes" in panel.caption.text()
    panel.measure.setCurrentText("true-class probability")  # the same job's other measures
    _, pgd_true = panel.curves["pgd"].getData()
    assert list(pgd_true) == list(curve.true_class["pgd"]) != list(curve.accuracy["pgd"])
    assert "clean true-class probability" in panel.caption.text()
    assert panel.plot.getPlotItem().getAxis("left").labelText == "P(true class)"
    panel.measure.setCurrentText("top-1 confidence")
    assert list(panel.curves["pgd"].getData()[1]) == list(curve.confidence["pgd"])
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    window.session.set_interventions(parse_edits(["features.7.conv2:keep=0"]))  # the edited model: measured again
    assert window.wait_for_jobs(WAIT_MS)
    assert view.curve_result is not None and view.curve_result[1].true_class["pgd"] != curve.true_class["pgd"]


def test_attack_then_explain_shows_gradcam_and_the_layer_for_both_images(make_window, qtbot, circle_png):
    window, view = adversarial_tab(make_window, circle_png)
    window.session.set_layer("features.4")
    assert window.wait_for_jobs(WAIT_MS)
    qtbot.mouseClick(view.controls.run_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS)
    explained = view.explained
    assert explained is not None and explained.layer == "features.4"
    assert explained.classes[0] == 0 and explained.classes[1] == int(view.attacked.result.after[0].argmax())
    assert view.gradcam_canvas.image_item.image.shape == explained.gradcam.shape
    assert view.activations_canvas.image_item.image.shape == explained.activations.shape
    window.session.set_layer("features.0")  # another layer: the comparison follows
    assert window.wait_for_jobs(WAIT_MS)
    assert view.explained.layer == "features.0"


def test_the_gui_export_is_made_again_from_its_sidecar(make_window, qtbot, circle_png, tmp_path, capsys):
    window, view = adversarial_tab(make_window, circle_png)
    controls = view.controls
    controls.set_attack("bim")  # another attack, budget, step size and steps, towards a typed class
    controls.eps.setValue(6)
    controls.alpha.setValue(1)
    controls.steps.setValue(4)
    controls.targeted.setChecked(True)
    controls.target.setEditText("star")
    qtbot.mouseClick(controls.run_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS)

    png, side = window.export_current_view(tmp_path / "gui.png")
    settings = json.loads(side.read_text())["settings"]
    assert (settings["attack"], settings["eps"], settings["alpha"]) == ("bim", 6 / 255, 1 / 255)
    assert (settings["steps"], settings["target"]) == (4, 3)
    assert main(["export", "--from-sidecar", str(side), "--out", str(tmp_path / "cli.png")]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(tmp_path / "cli.png")))


def test_a_new_image_or_model_leaves_no_curve_or_caption_of_the_old_one(make_window, qtbot, circle_png, tmp_path):
    window, view = adversarial_tab(make_window, circle_png)
    qtbot.mouseClick(view.controls.run_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS) and view.curve.iterations
    window.open_files([str(write_other_image(tmp_path))])
    assert window.wait_for_jobs(WAIT_MS)
    assert view.curve.iterations == [] and view.curve.true_curve.getData()[0] is None  # nothing drawn
    assert view.attacked is None and "press Attack" in view.message.text()

    panel = view.robustness
    panel.levels.setText("0, 8")
    panel.steps.setValue(2)
    panel.limit.setValue(8)
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS) and "8 images from builtin:shapes" in panel.caption.text()
    window.load_model("builtin:tinyvgg", "cpu")
    assert window.wait_for_jobs(WAIT_MS)
    assert "images from" not in panel.caption.text() and panel.curves["pgd"].getData()[0] is None


def write_other_image(folder):
    path = folder / "other.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(path)
    return path


def test_the_panel_is_shown_near_its_own_size_on_a_small_screen(make_window, qtbot, circle_png):
    """On 1280×720 the three-panel picture keeps the tab's width, so its text is not shrunk away."""
    window, view = adversarial_tab(make_window, circle_png)
    window.resize(1260, 660)
    qtbot.mouseClick(view.controls.run_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS)
    assert view.tabs.currentWidget() is view.curve and view.curve.iterations
    view.tabs.setCurrentIndex(view.tabs.indexOf(view.gradcam_canvas.parentWidget().parentWidget()))
    qtbot.wait(50)
    for canvas, least in ((view.canvas, 0.85), (view.gradcam_canvas, 0.75), (view.activations_canvas, 0.75)):
        (left, right), _ = canvas.view_box.viewRange()
        scale = canvas.view_box.width() / (right - left)
        assert scale >= least, f"a picture is drawn at {scale:.2f} of its size"
