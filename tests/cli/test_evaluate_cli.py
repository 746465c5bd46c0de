"""``cnnexplorer evaluate``: the report equals predicting each image on its own; unreadable files and
labels the model does not know are listed; unlabelled or unrelated data are one clear error. ``export
confusion`` draws the same evaluation and is made again from its sidecar, from any working folder."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES
from cnnexplorer.core.images import load_image
from cnnexplorer.core.models import load_model
from cnnexplorer.core.predict import predict_images
from tests.cli.cli_helpers import assert_one_line_error, last_json, run_cli
from tests.core.test_neighbours import shapes_folder


def test_evaluate_reports_what_predicting_each_image_gives(capsys, tmp_path):
    files = shapes_folder(tmp_path / "data", 14)
    (tmp_path / "data" / "circle" / "broken.png").write_bytes(b"not a picture")
    extra = tmp_path / "data" / "Hexagon" / "h.png"  # a label the model has no class for
    extra.parent.mkdir()
    Image.new("RGB", (20, 20), (9, 9, 9)).save(extra)
    code, out, _ = run_cli(capsys, "evaluate", "--model", "builtin:shapes", "--data", tmp_path / "data",
                           "--batch-size", "4", "--json")
    assert code == 0
    report = last_json(out)
    handle = load_model("builtin:shapes", "cpu")
    truth = [SHAPE_CLASSES.index(f.parent.name) for f in files]
    tops = [predict_images(handle, [load_image(f).image], top=5)[0] for f in files]
    predicted = [top[0].index for top in tops]
    shown = sorted(set(truth) | set(predicted))
    confusion = [[sum(1 for t, p in zip(truth, predicted) if (t, p) == (a, b)) for b in shown] for a in shown]
    assert report["count"] == 14 and report["classes"] == [SHAPE_CLASSES[c] for c in shown]
    assert report["confusion"] == confusion
    assert report["top1"] == sum(t == p for t, p in zip(truth, predicted)) / 14
    assert report["top5"] == sum(t in [s.index for s in top] for t, top in zip(truth, tops)) / 14
    assert list(report["skipped"]) == [str(tmp_path / "data" / "circle" / "broken.png")]
    assert report["unmatched_labels"] == ["Hexagon"] and report["left_out"] == 1 and report["unlabelled"] == 0
    wrong = sorted(((-top[0].prob, str(f)) for f, t, top in zip(files, truth, tops) if top[0].index != t))
    assert [m["image"] for m in report["mistakes"]] == [f for _, f in wrong]
    Image.new("RGB", (20, 20), (9, 90, 9)).save(tmp_path / "data" / "loose.png")  # no class folder: unlabelled
    code, out, _ = run_cli(capsys, "evaluate", "--model", "builtin:shapes", "--data", f"folder:{tmp_path / 'data'}")
    assert code == 0 and "top-1" in out and "confusion (rows: true class" in out
    assert "left out: 1 image with a label that names no class of the model (Hexagon)" in out
    assert "left out: 1 unlabelled image (directly in the folder" in out


def test_evaluate_refuses_unlabelled_or_unrelated_data_in_one_line(capsys, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (16, 16)).save(flat / "a.png")
    code, _, err = run_cli(capsys, "evaluate", "--model", "builtin:shapes", "--data", flat)
    assert_one_line_error(code, err, "no labels")
    shapes_folder(tmp_path / "pets", 2, classes=("cat", "dog", "cow", "hen", "pig", "owl"))
    code, _, err = run_cli(capsys, "evaluate", "--model", "builtin:shapes", "--data", tmp_path / "pets")
    assert_one_line_error(code, err, "match none of the model's classes")
    code, _, err = run_cli(capsys, "evaluate", "--model", "builtin:shapes", "--data", tmp_path / "nothing")
    assert_one_line_error(code, err, "not found")
    code, _, err = run_cli(capsys, "evaluate", "--model", "builtin:shapes", "--data", flat, "--batch-size", "0")
    assert_one_line_error(code, err, "out of range")


def test_export_confusion_draws_the_evaluation_and_is_made_again_from_its_sidecar(capsys, tmp_path):
    shapes_folder(tmp_path / "data", 8)
    code, out, _ = run_cli(capsys, "evaluate", "--model", "builtin:shapes", "--data", tmp_path / "data", "--json")
    evaluated = last_json(out)
    code, out, _ = run_cli(capsys, "export", "confusion", "--model", "builtin:shapes", "--data", tmp_path / "data",
                           "--out", tmp_path / "c.png", "--json")
    assert code == 0
    report = last_json(out)
    assert all(report[key] == evaluated[key] for key in ("count", "top1", "top5", "classes", "confusion", "skipped"))
    code, out, _ = run_cli(capsys, "export", "--from-sidecar", tmp_path / "c.png.json", "--out", tmp_path / "d.png")
    assert code == 0
    drawn = np.asarray(Image.open(tmp_path / "c.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "d.png")), drawn)
    assert drawn.shape[0] > 6 * 28 and drawn.shape[1] > 6 * 28  # six classes' cells of at least 28 pixels
    code, _, err = run_cli(capsys, "export", "confusion", "--model", "builtin:shapes", "--out", tmp_path / "e.png")
    assert_one_line_error(code, err, "--data")


def test_a_sidecar_names_its_folder_from_any_working_folder(capsys, tmp_path, monkeypatch):
    shapes_folder(tmp_path / "data", 4)
    monkeypatch.chdir(tmp_path)
    code, _, _ = run_cli(capsys, "export", "confusion", "--model", "builtin:shapes", "--data", "data",
                         "--out", tmp_path / "c.png")
    assert code == 0
    assert json.loads((tmp_path / "c.png.json").read_text())["settings"]["data"] == f"folder:{tmp_path / 'data'}"
    monkeypatch.chdir(tmp_path / "data")
    code, _, _ = run_cli(capsys, "export", "--from-sidecar", tmp_path / "c.png.json", "--out", tmp_path / "d.png")
    assert code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "d.png")), np.asarray(Image.open(tmp_path / "c.png")))
