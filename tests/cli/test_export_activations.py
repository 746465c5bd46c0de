"""``cnnexplorer export activations|filters``: files, JSON report, same pixels as the core."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.activations import activation_grid, capture, render_activation_picture
from cnnexplorer.core.colour_bar import Scale, colour_bar
from cnnexplorer.core.filters import filter_view, render_filter_picture
from cnnexplorer.core.images import load_image
from cnnexplorer.core.models import load_model
from tests.cli.cli_helpers import run_cli

MODEL = "builtin:tinyvgg"


def cli_model():
    """The model as the CLI loads it: random weights drawn after ``torch.manual_seed(--seed)``."""
    torch.manual_seed(0)
    return load_model(MODEL, "cpu")


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(path)
    return path


def test_export_activations_writes_the_core_picture_and_the_report(capsys, tmp_path, image_path):
    out = tmp_path / "act.png"
    code, stdout, _ = run_cli(capsys, "export", "activations", "--model", MODEL, "--image", str(image_path),
                              "--layer", "features.3", "--sort", "max", "--cmap", "magma", "--out", str(out), "--json")
    assert code == 0
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["out"] == str(out) and report["layer"] == "features.3"
    assert report["shape"] == [10, 60, 60]
    assert [c["index"] for c in report["channels"]] == list(range(10))
    assert all(set(c) == {"index", "mean", "max"} for c in report["channels"])

    handle = cli_model()
    pixels = handle.preprocessing.to_tensor(load_image(image_path).image)
    output = capture(handle, pixels, ["features.3"]).output("features.3")
    grid = activation_grid(output, sort="max", cmap="magma")
    exported, grids = np.asarray(Image.open(out)), render_activation_picture(grid)
    height, width = grids.shape[:2]
    np.testing.assert_array_equal(exported[:height, :width], grids)
    scale = Scale("magma", None, None, "each channel on its own: its mean -/+ 3 standard deviations",
                  ("mean - 3 sd", "mean + 3 sd"))
    title = f"features.3: 10 channels of {image_path.name}"
    np.testing.assert_array_equal(exported[height:], colour_bar(title, scale, exported.shape[1]))
    assert report["channels"][4]["max"] == pytest.approx(float(output[0, 4].max()))

    sidecar = json.loads((tmp_path / "act.png.json").read_text())
    assert sidecar["view"] == "activations" and sidecar["layer"] == "features.3"
    assert sidecar["settings"]["sort"] == "max" and sidecar["settings"]["norm"] == "channel"
    assert sidecar["image"]["sha256"] == load_image(image_path).sha256


def test_export_activations_fixed_range(capsys, tmp_path, image_path):
    code, stdout, _ = run_cli(capsys, "export", "activations", "--model", MODEL, "--image", str(image_path),
                              "--layer", "classifier", "--range=-1,1", "--out", str(tmp_path / "a.png"), "--json")
    assert code == 0
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["shape"] == [10, 1, 1] and report["norm"] == "fixed" and report["range"] == [-1.0, 1.0]
    exported = np.asarray(Image.open(tmp_path / "a.png"))
    bar = colour_bar(f"classifier: 10 units of {image_path.name}",
                     Scale(report["cmap"], -1.0, 1.0, "activation value (a fixed range)"), exported.shape[1])
    np.testing.assert_array_equal(exported[-bar.shape[0]:], bar)  # the colour bar reads -1, 0 and 1


def test_export_filters_writes_the_core_picture(capsys, tmp_path):
    out = tmp_path / "filters.png"
    code, stdout, _ = run_cli(capsys, "export", "filters", "--model", MODEL, "--layer", "features.0",
                              "--out", str(out), "--json")
    assert code == 0
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["layer"] == "features.0" and report["shape"] == [10, 3, 3, 3] and report["mode"] == "rgb"
    handle = cli_model()
    expected = render_filter_picture(filter_view(handle.module, "features.0"))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)
    assert json.loads((tmp_path / "filters.png.json").read_text())["layer"] == "features.0"
    code, stdout, _ = run_cli(capsys, "export", "filters", "--model", MODEL, "--layer", "features",
                              "--out", str(tmp_path / "block.png"), "--json")
    assert code == 0 and json.loads(stdout.strip().splitlines()[-1])["layer"] == "features.0"  # a block: its first conv
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "block.png")), expected)


@pytest.mark.parametrize("argv,message", [
    (["activations", "--image", "IMG"], "needs a layer: pass --layer NAME"),
    (["activations", "--layer", "features.1"], "needs an image: pass --image IMG"),
    (["activations", "--image", "IMG", "--layer", "feature.1"], "unknown layer 'feature.1'; did you mean features.1"),
    (["activations", "--image", "IMG", "--layer", "features.1", "--norm", "layer", "--range", "0,1"],
     "--range goes with the fixed normalisation, not --norm layer"),
    (["activations", "--image", "IMG", "--layer", "features.1", "--output-index", "1"],
     "layer 'features.1' has 1 output tensor(s); choose an output index from 0 to 0"),
    (["filters"], "needs a layer: pass --layer NAME"),
    (["filters", "--layer", "features.1"], r"layer features.1 (ReLU) has no weights"),
])
def test_user_errors_are_one_line_with_exit_code_2(capsys, tmp_path, image_path, argv, message):
    argv = [str(image_path) if a == "IMG" else a for a in argv]
    code, _, err = run_cli(capsys, "export", *argv, "--model", MODEL, "--out", str(tmp_path / "x.png"))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_a_sidecar_replays_from_any_folder_and_after_moving_with_its_image(capsys, tmp_path, image_path, monkeypatch):
    made = tmp_path / "made"
    made.mkdir()
    monkeypatch.chdir(tmp_path)
    code, _, _ = run_cli(capsys, "export", "activations", "--model", MODEL, "--image", image_path.name,
                         "--layer", "features.3", "--out", "made/act.png")  # the image given relative to this folder
    assert code == 0
    recorded = json.loads((made / "act.png.json").read_text())["image"]["path"]
    assert recorded == str(image_path), "recorded absolute"
    picture = np.asarray(Image.open(made / "act.png"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = run_cli(capsys, "export", "--from-sidecar", made / "act.png.json", "--out", "again.png")
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(elsewhere / "again.png")), picture)
    code, _, err = run_cli(capsys, "export", "--from-sidecar", made / "act.png.json", "--out=-dash.png")
    assert code == 0, err  # an --out that starts with a dash
    assert np.array_equal(np.asarray(Image.open(elsewhere / "-dash.png")), picture)
    moved = tmp_path / "moved"
    moved.mkdir()
    image_path.rename(moved / image_path.name)  # the image and its sidecar carried to another folder
    (made / "act.png.json").rename(moved / "act.png.json")
    code, _, err = run_cli(capsys, "export", "--from-sidecar", moved / "act.png.json", "--out", "moved.png")
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(elsewhere / "moved.png")), picture)


def test_an_image_of_a_data_set_is_exported_by_its_reference_and_made_again(capsys, tmp_path):
    out, again = tmp_path / "digit.png", tmp_path / "again.png"
    code, stdout, _ = run_cli(capsys, "export", "activations", "--model", "builtin:lenet5", "--image",
                              "builtin:digits#7", "--layer", "features.0", "--out", str(out), "--json")
    assert code == 0
    sidecar = json.loads((tmp_path / "digit.png.json").read_text())
    assert sidecar["image"]["path"] == "builtin:digits#7"
    assert sidecar["image"]["sha256"] == load_image("builtin:digits#7").sha256
    code, _, _ = run_cli(capsys, "export", "--from-sidecar", str(tmp_path / "digit.png.json"), "--out", str(again))
    assert code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out)))
