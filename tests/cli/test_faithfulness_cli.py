"""``cnnexplorer faithfulness``: the methods × metrics table with its random row, in JSON and text,
and one-line refusals of unknown methods and damaged box files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.builtin.shapes_data import validation_set
from tests.cli.cli_helpers import assert_one_line_error, forked_ranks, last_json, run_cli


def test_the_table_has_every_metric_and_the_random_row(capsys, tmp_path):
    """An unlabelled folder of two shapes (each image's top prediction explained), one image measured."""
    for i, image in enumerate(validation_set(2).images):
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(tmp_path / f"{i}.png")
    code, out, _ = run_cli(capsys, "faithfulness", "--model", "builtin:shapes", "--data", tmp_path,
                           "--methods", "gradcam", "--steps", "4", "--limit", "1", "--json")
    report = last_json(out)
    assert code == 0 and report["count"] == 1 and list(report["methods"]) == ["gradcam", "random"]
    for row in report["methods"].values():
        assert set(row) == {"deletion_auc", "insertion_auc", "road_morf", "road_lerf"}
        assert all(0 <= v <= 1 for v in row.values())
    gradcam = report["methods"]["gradcam"]
    assert gradcam["road_morf"] < gradcam["road_lerf"]  # removing the relevant pixels first hurts more


def test_unknown_methods_and_damaged_boxes_are_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "faithfulness", "--model", "builtin:shapes", "--data", "builtin:shapes",
                           "--methods", "gradcam,nope")
    assert_one_line_error(code, err, "unknown heatmap method 'nope'")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("0,1,2,3\n")  # a file name and three numbers: not a box
    code, _, err = run_cli(capsys, "faithfulness", "--model", "builtin:shapes", "--data", "builtin:shapes",
                           "--boxes", boxes)
    assert_one_line_error(code, err, "not a box file")


def test_the_sanity_picture_reports_its_stages_and_round_trips(capsys, tmp_path):
    image = tmp_path / "shape.png"
    Image.fromarray((validation_set(1).images[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(image)
    code, out, _ = run_cli(capsys, "export", "sanity", "--model", "builtin:shapes", "--image", image,
                           "--out", tmp_path / "sanity.png", "--json")
    stages = last_json(out)["stages"]
    assert code == 0 and len(stages) == 6 and stages[-1]["randomised"] == 15
    assert run_cli(capsys, "export", "--from-sidecar", tmp_path / "sanity.png.json", "--out", tmp_path / "again.png")[0] == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), np.asarray(Image.open(tmp_path / "sanity.png")))


def test_two_processes_measure_what_one_does(capsys, tmp_path):
    """Five images in batches of two: rank 0 scores batches 1-2, rank 1 batch 3 (its random maps and ROAD noise
    seeded by the batch, as in one process); the merged table equals one process's within 1e-5 (the ranks run
    their float32 forwards on one thread each, the single process on two)."""
    data = tmp_path / "shapes"
    data.mkdir()
    for i, image in enumerate(validation_set(5).images):
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(data / f"{i}.png")
    argv = ["faithfulness", "--model", "builtin:shapes", "--data", data, "--methods", "saliency", "--steps", "4",
            "--batch-size", "2", "--device", "cpu", "--json"]
    code, out, _ = run_cli(capsys, *argv)
    single = last_json(out)
    first, second = forked_ranks(argv, tmp_path)
    merged = last_json(first)
    assert code == 0 and second == "" and merged["count"] == single["count"] == 5
    for method, row in single["methods"].items():
        assert merged["methods"][method] == pytest.approx(row, rel=1e-5, abs=1e-6)
