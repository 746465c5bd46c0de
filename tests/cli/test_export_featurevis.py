"""``cnnexplorer export featurevis``: PNG + sidecar, the JSON report, the same pixels as the core."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.builtin.shapes_data import generate_shapes
from cnnexplorer.core.featurevis import preset, render_featurevis_picture, visualise
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from tests.cli.cli_helpers import run_cli
from tests.picture_checks import assert_same_picture

MODEL = "builtin:shapes"


@pytest.fixture(scope="module")
def shapes():
    return load_model(MODEL, "cpu")


def test_export_featurevis_channels_writes_the_core_picture_and_report(capsys, tmp_path, shapes):
    out = tmp_path / "fv.png"
    code, stdout, _ = run_cli(capsys, "export", "featurevis", "--model", MODEL, "--layer", "features.2",
                              "--channels", "0-2,5", "--steps", "6", "--size", "32", "--preset", "quick",
                              "--seed", "3", "--out", str(out), "--json")
    assert code == 0
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["out"] == str(out) and report["layer"] == "features.2" and report["objective"] == "channel"
    assert [c["index"] for c in report["channels"]] == [0, 1, 2, 5]
    assert all(set(c) == {"index", "value", "noise_value", "image_value"} for c in report["channels"])
    assert all(c["image_value"] is None for c in report["channels"])

    result = drive(visualise(shapes, "channel", "features.2", [0, 1, 2, 5],
                             settings=preset("quick", steps=6, size=32), seed=3))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), render_featurevis_picture(result.images, [0, 1, 2, 5]))
    assert [c["value"] for c in report["channels"]] == pytest.approx(result.values.tolist())
    assert [c["noise_value"] for c in report["channels"]] == pytest.approx(result.noise_values.tolist())

    sidecar = json.loads((tmp_path / "fv.png.json").read_text())
    assert sidecar["view"] == "featurevis" and sidecar["seed"] == 3 and sidecar["layer"] == "features.2"
    settings = sidecar["settings"]
    assert (settings["steps"], settings["size"], settings["param"], settings["objective"]) == (6, 32, "fft", "channel")
    assert settings["units"] == [0, 1, 2, 5] and settings["preset"] == "quick"


def test_export_featurevis_logit_target_and_inversion_with_image(capsys, tmp_path):
    code, stdout, _ = run_cli(capsys, "export", "featurevis", "--model", MODEL, "--objective", "logit",
                              "--target", "star", "--steps", "4", "--size", "32", "--out", str(tmp_path / "l.png"),
                              "--json")
    report = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and report["layer"] == "" and [c["index"] for c in report["channels"]] == [3]

    image = tmp_path / "shape.png"
    Image.fromarray((generate_shapes(1, seed=4).images[0].permute(1, 2, 0).numpy() * 255).round()
                    .astype(np.uint8)).save(image)
    code, stdout, _ = run_cli(capsys, "export", "featurevis", "--model", MODEL, "--objective", "inversion",
                              "--layer", "features.0", "--image", str(image), "--steps", "30",
                              "--out", str(tmp_path / "inv.png"), "--json")
    report = json.loads(stdout.strip().splitlines()[-1])
    channel = report["channels"][0]
    assert code == 0 and report["objective"] == "inversion" and channel["index"] is None
    assert channel["noise_value"] < channel["value"] <= channel["image_value"]
    assert Image.open(tmp_path / "inv.png").size == (64, 64)


def test_export_featurevis_user_errors(capsys, tmp_path):
    code, _, err = run_cli(capsys, "export", "featurevis", "--model", MODEL, "--objective", "deepdream",
                           "--layer", "features.2", "--out", str(tmp_path / "d.png"))
    assert code == 2 and "needs an image" in err
    code, _, err = run_cli(capsys, "export", "featurevis", "--model", MODEL, "--layer", "features.2",
                           "--channels", "40-50", "--out", str(tmp_path / "c.png"))
    assert code == 2 and "units 0 to 47" in err


def test_export_featurevis_diversity_shows_several_images_of_one_channel(capsys, tmp_path):
    code, stdout, _ = run_cli(capsys, "export", "featurevis", "--model", MODEL, "--layer", "features.2",
                              "--objective", "diversity", "--channels", "2", "--steps", "4", "--size", "32",
                              "--out", str(tmp_path / "div.png"), "--json")
    report = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and [c["index"] for c in report["channels"]] == [2, 2, 2, 2]
    sidecar = json.loads((tmp_path / "div.png.json").read_text())
    assert sidecar["settings"]["diversity"] == 3.0 and sidecar["settings"]["kind"] == "diversity"


def test_a_layer_after_a_flatten_is_visualised_at_the_models_own_size(shapes):
    """A Flatten into a Linear takes the model's input size only: the picture is made at that size without the
    size-changing transforms (and says so in its settings); an oblong input size cannot be visualised."""
    from dataclasses import replace

    import torch

    from cnnexplorer.core.errors import UserError
    from cnnexplorer.pictures.base import Inputs
    from cnnexplorer.pictures.featurevis import FeatureVisOptions, run_featurevis

    def flat(height, width):
        module = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.Flatten(),
                                     torch.nn.Linear(2 * height * width, 3)).eval()
        return replace(shapes, module=module, preprocessing=replace(shapes.preprocessing, size=(height, width),
                                                                   resize=None))

    options = FeatureVisOptions("channel", (0, 2), "quick", steps=3)
    made = drive(run_featurevis(Inputs(flat(24, 24), layer="2"), options))
    assert made.picture.settings["size"] == 24 and made.picture.settings["transforms"] is False
    assert [c["index"] for c in made.picture.report["channels"]] == [0, 2]
    with pytest.raises(UserError, match="runs only at the model's 24×30 input, which is not square"):
        drive(run_featurevis(Inputs(flat(24, 30), layer="2"), options))


def test_export_featurevis_course_recipe_without_l2_round_trips(capsys, tmp_path):
    out = tmp_path / "course.png"
    code, stdout, _ = run_cli(capsys, "export", "featurevis", "--model", MODEL, "--objective", "logit", "--target",
                              "circle", "--preset", "course", "--class-l2", "0", "--steps", "3", "--size", "32",
                              "--out", str(out), "--json")
    assert code == 0
    settings = json.loads((tmp_path / "course.png.json").read_text())["settings"]
    assert (settings["param"], settings["step"], settings["logit_l2"], settings["transforms"]) == ("grey", "normalised",
                                                                                                  0.0, False)
    again = tmp_path / "again.png"
    code, _, _ = run_cli(capsys, "export", "--from-sidecar", str(out) + ".json", "--out", str(again))
    assert code == 0
    assert_same_picture(Image.open(again), Image.open(out))
