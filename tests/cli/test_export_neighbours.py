"""``cnnexplorer export neighbours``: the report equals a brute-force search over an index made image by
image; the picture is made again from its sidecar, from the cached index; bad requests are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.dataset.probe import open_probe_set
from cnnexplorer.core.models import load_model
from tests.cli.cli_helpers import assert_one_line_error, last_json, run_cli
from tests.core.test_neighbours import brute_force_index, brute_knn_accuracy, brute_nearest, shapes_folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNEXPLORER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "index"


def test_export_neighbours_reports_a_brute_force_search_and_is_made_again_from_its_sidecar(capsys, tmp_path, cache):
    files = shapes_folder(tmp_path / "data", 16)
    query = files[3]
    out = tmp_path / "n.png"
    code, stdout, _ = run_cli(capsys, "export", "neighbours", "--model", "builtin:shapes", "--data", tmp_path / "data",
                              "--image", query, "--layer", "features", "--k", "3", "--out", out, "--json")
    assert code == 0
    report = last_json(stdout)
    handle = load_model("builtin:shapes", "cpu")
    probe = open_probe_set(str(tmp_path / "data"))
    index = brute_force_index(handle, probe, ["features"])
    position = probe.sources.index(str(query))
    features = index.features["features"]
    expected = brute_nearest(features, features[position], 3, leave_out=position)  # the query is one of the set's
    assert report["layer"] == "features" and report["k"] == 3 and report["query_in_set"] == str(query)
    assert [n["image"] for n in report["feature"]] == [probe.source(i) for _, i in expected]
    np.testing.assert_allclose([n["distance"] for n in report["feature"]], [d for d, _ in expected], atol=1e-4)
    assert [n["label"] for n in report["feature"]] == [probe.label_names[probe.label(i)] for _, i in expected]
    thumbs = index.thumbnails.reshape(16, -1).astype(np.float32) / 255
    expected = brute_nearest(thumbs, thumbs[position], 3, leave_out=position)
    assert [n["image"] for n in report["pixel"]] == [probe.source(i) for _, i in expected]
    assert report["feature_knn_acc"] == brute_knn_accuracy(features, index.labels, 3)
    assert report["pixel_knn_acc"] == brute_knn_accuracy(thumbs, index.labels, 3)
    sidecar = json.loads((tmp_path / "n.png.json").read_text())
    assert sidecar["view"] == "neighbours" and sidecar["layer"] == "features"
    assert sidecar["settings"]["data"] == f"folder:{tmp_path / 'data'}" and sidecar["settings"]["k"] == 3
    assert sidecar["settings"]["fingerprint"] == probe.fingerprint()
    cached = sorted((f.name, f.stat().st_mtime_ns) for f in cache.iterdir())
    again = tmp_path / "again.png"
    code, stdout, _ = run_cli(capsys, "export", "--from-sidecar", tmp_path / "n.png.json", "--out", again, "--json")
    assert code == 0  # the index was read back, not made again:
    assert sorted((f.name, f.stat().st_mtime_ns) for f in cache.iterdir()) == cached
    assert {k: v for k, v in last_json(stdout).items() if k not in ("out", "sidecar")} == \
        {k: v for k, v in report.items() if k not in ("out", "sidecar")}
    np.testing.assert_array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out)))
    Image.new("RGB", (30, 30)).save(tmp_path / "data" / "circle" / "new.png")
    code, _, err = run_cli(capsys, "export", "--from-sidecar", tmp_path / "n.png.json", "--out", again)
    assert_one_line_error(code, err, "have changed since")


def test_a_query_from_outside_the_set_is_not_left_out_and_one_from_a_generated_set_is(capsys, tmp_path, cache):
    files = shapes_folder(tmp_path / "data", 10)
    copy = tmp_path / "copy.png"
    copy.write_bytes(files[4].read_bytes())  # the same pixels as image 4, but not the set's file
    code, stdout, _ = run_cli(capsys, "export", "neighbours", "--model", "builtin:shapes", "--data", tmp_path / "data",
                              "--image", copy, "--layer", "features", "--k", "2", "--out", tmp_path / "n.png", "--json")
    assert code == 0
    report = last_json(stdout)
    assert report["query_in_set"] is None and report["pixel"][0]["image"] == str(files[4])
    assert report["pixel"][0]["distance"] == 0 and report["feature"][0]["distance"] < 1e-5
    code, stdout, _ = run_cli(capsys, "export", "neighbours", "--model", "builtin:shapes", "--data", "builtin:shapes",
                              "--image", "builtin:shapes#7", "--layer", "features", "--k", "2", "--out",
                              tmp_path / "m.png", "--json")
    assert code == 0
    report = last_json(stdout)
    assert report["query_in_set"] == 7 and 7 not in [n["image"] for n in report["feature"] + report["pixel"]]


def test_export_neighbours_refuses_bad_requests_in_one_line(capsys, tmp_path, cache):
    files = shapes_folder(tmp_path / "data", 3)
    common = ["export", "neighbours", "--model", "builtin:shapes", "--out", tmp_path / "n.png", "--image", files[0]]
    code, _, err = run_cli(capsys, *common, "--layer", "features")
    assert_one_line_error(code, err, "--data")
    code, _, err = run_cli(capsys, *common, "--data", tmp_path / "data")
    assert_one_line_error(code, err, "--layer")
    code, _, err = run_cli(capsys, *common, "--data", tmp_path / "data", "--layer", "features", "--k", "0")
    assert_one_line_error(code, err, "--k")
    code, _, err = run_cli(capsys, *common, "--data", tmp_path / "data", "--layer", "featurez")
    assert_one_line_error(code, err, "unknown layer")



def test_a_dataset_picture_names_the_files_it_skipped_and_a_missing_download_says_which_commands_fetch(
        capsys, tmp_path, cache):
    files = shapes_folder(tmp_path / "data", 4)
    (tmp_path / "data" / "circle" / "notes.png").write_bytes(b"not an image")
    code, _, err = run_cli(capsys, "export", "neighbours", "--model", "builtin:shapes", "--data", tmp_path / "data",
                           "--image", files[0], "--layer", "features", "--k", "2", "--out", tmp_path / "n.png")
    assert code == 0
    assert f"cnnexplorer: skipped {tmp_path / 'data' / 'circle' / 'notes.png'}: " in err
    code, _, err = run_cli(capsys, "evaluate", "--model", "builtin:lenet5", "--data", f"mnist:{tmp_path / 'none'}")
    assert_one_line_error(code, err, "mnist was not found", "--download (cnnexplorer index and train take it)")
