"""``cnnexplorer export adversarial``: picture, sidecar, JSON report and a saved image that fools."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.adversarial import PGD, as_uint8, render_adversarial_panel
from cnnexplorer.core.builtin.shapes_data import generate_shapes
from cnnexplorer.core.images import load_image
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from tests.cli.cli_helpers import run_cli

MODEL = "builtin:shapes"
KEYS = {"out", "sidecar", "attack", "eps", "before", "after", "linf", "l2", "iterations", "success", "psnr", "ssim"}


@pytest.fixture(scope="module")
def handle():
    return load_model(MODEL, "cpu")


@pytest.fixture
def shape_png(tmp_path):
    """A circle (class 0) at the model's 64×64 input size, so it round-trips exactly."""
    batch = generate_shapes(6, 11)
    index = int((batch.labels == 0).nonzero()[0])
    path = tmp_path / "circle.png"
    Image.fromarray(as_uint8(batch.images[index]).permute(1, 2, 0).numpy()).save(path)
    return path


def reload(handle, path) -> torch.Tensor:
    return handle.preprocessing.to_tensor(load_image(path).image)[None]


def test_export_writes_the_core_panel_the_report_and_an_image_that_fools(capsys, tmp_path, shape_png, handle):
    out, adv = tmp_path / "adv_panel.png", tmp_path / "adversarial.png"
    code, stdout, _ = run_cli(capsys, "export", "adversarial", "--model", MODEL, "--image", shape_png,
                              "--save-adversarial", adv, "--out", out, "--json")
    assert code == 0
    report = json.loads(stdout.strip().splitlines()[-1])
    assert KEYS <= set(report)
    assert report["attack"] == "pgd" and report["eps"] == 8 / 255 and report["iterations"] == 10
    assert report["before"]["index"] == 0 and report["before"]["label"] == "circle"
    assert set(report["before"]) == set(report["after"]) == {"index", "label", "prob"}
    assert report["success"] is True and report["after"]["index"] != 0
    assert report["linf"] <= report["eps"] and report["l2"] > 0 and 0 < report["ssim"] < 1

    original = reload(handle, shape_png)
    adversarial = reload(handle, adv)
    assert Image.open(adv).format == "PNG"
    assert int((as_uint8(adversarial).int() - as_uint8(original).int()).abs().max()) <= 8
    with torch.no_grad():
        probs = torch.softmax(handle.pixel_model()(adversarial), dim=1)[0]
    assert int(probs.argmax()) == report["after"]["index"]
    assert float(probs.max()) == pytest.approx(report["after"]["prob"], abs=1e-5)

    result = drive(PGD().run(handle.pixel_model(), original, seed=0))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), render_adversarial_panel(result, handle.class_names))
    sidecar = json.loads((tmp_path / "adv_panel.png.json").read_text())
    assert sidecar["view"] == "adversarial"
    assert sidecar["settings"]["attack"] == "pgd" and sidecar["settings"]["alpha"] == 2 / 255
    assert sidecar["settings"]["resolution"] == [64, 64] and sidecar["seed"] == 0


def test_targeted_export_by_class_name(capsys, tmp_path, shape_png):
    code, stdout, _ = run_cli(capsys, "export", "adversarial", "--model", MODEL, "--image", shape_png,
                              "--target", "star", "--steps", "20", "--eps", "0.03", "--out", tmp_path / "t.png",
                              "--json")
    assert code == 0
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["target"] == {"index": 3, "label": "star"} and report["eps"] == 0.03
    assert report["success"] is True and report["after"]["index"] == 3
    assert report["linf"] <= 7 / 255  # 0.03 is 7.65 grey levels: 7 fit


def test_deepfool_export_has_no_budget(capsys, tmp_path, shape_png):
    code, stdout, _ = run_cli(capsys, "export", "adversarial", "--model", MODEL, "--image", shape_png,
                              "--attack", "deepfool", "--out", tmp_path / "d.png", "--json")
    report = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and report["eps"] is None and report["success"] is True
    assert report["l2"] < 2.0


@pytest.mark.parametrize("argv,message", [
    (["--attack", "pgd"], "needs an image: pass --image IMG"),
    (["--image", "IMG", "--attack", "ascent"], "ascent needs a target class: pass --target CLASS"),
    (["--image", "IMG", "--target", "circle"], "already predicts circle"),
    (["--image", "IMG", "--target", "hexagon"], "unknown class 'hexagon'"),
    (["--image", "IMG", "--target", "9"], "class 9 is out of range"),
    (["--image", "IMG", "--attack", "fgsm", "--steps", "3"], "fgsm takes no --steps"),
    (["--image", "IMG", "--attack", "deepfool", "--step-size", "1/255"], "deepfool takes no --step-size"),
    (["--image", "IMG", "--save-adversarial", "adv.jpg"], "save the adversarial image as a .png file"),
])
def test_user_errors_are_one_line_with_exit_code_2(capsys, tmp_path, shape_png, argv, message):
    argv = [str(shape_png) if a == "IMG" else a for a in argv]
    code, _, err = run_cli(capsys, "export", "adversarial", "--model", MODEL, *argv, "--out", tmp_path / "x.png")
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
