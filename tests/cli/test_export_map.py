"""``cnnexplorer export map``: the points are the first two principal components (an SVD here) of a
brute-force index's pooled features, coloured as the report says; the picture is made again from its
sidecar; a changed set and a colouring the data cannot have are one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.dataset.probe import open_probe_set
from cnnexplorer.core.models import load_model
from cnnexplorer.pictures.map import PALETTE
from tests.cli.cli_helpers import assert_one_line_error, last_json, run_cli
from tests.core.test_neighbours import brute_force_index, shapes_folder

TOL = 1e-3  # features pooled in another batch: float32 rounding only


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNEXPLORER_CACHE", str(tmp_path / "cache"))


def svd_points(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The features' coordinates on their first two principal directions (signs free), and each one's share
    of the variance."""
    centred = features.astype(np.float64) - features.mean(axis=0)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    return centred @ directions[:2].T, singular[:2] ** 2 / (singular**2).sum()


def exported_map(capsys, tmp_path, out, *flags) -> dict:
    """``export map`` of the shapes model's ``features`` over 16 generated images with ``flags``: its report."""
    shapes_folder(tmp_path / "data", 16)
    code, stdout, err = run_cli(capsys, "export", "map", "--model", "builtin:shapes", "--data", tmp_path / "data",
                                "--layer", "features", *flags, "--out", out, "--json")
    assert code == 0, err
    return last_json(stdout)


def test_export_map_draws_the_principal_components_and_is_made_again_from_its_sidecar(capsys, tmp_path, cache):
    out = tmp_path / "map.png"
    report = exported_map(capsys, tmp_path, out, "--colour-by", "prediction")
    handle = load_model("builtin:shapes", "cpu")
    probe = open_probe_set(str(tmp_path / "data"))
    index = brute_force_index(handle, probe, ["features"])
    expected, variance = svd_points(index.features["features"])
    points = np.asarray(report["points"])
    assert report["layer"] == "features" and report["count"] == 16 and points.shape == (16, 2)
    for c in range(2):
        sign = np.sign(points[:, c] @ expected[:, c])
        np.testing.assert_allclose(points[:, c], sign * expected[:, c], atol=TOL)
    np.testing.assert_allclose(report["variance"], variance, atol=TOL)
    predicted = [handle.class_names[c] for c in index.top5[:, 0]]
    assert report["point_groups"] == predicted
    assert report["point_images"] == [probe.source(i) for i in range(16)]  # folder data: each point's file
    assert {g["name"]: g["count"] for g in report["groups"]} == {n: predicted.count(n) for n in set(predicted)}
    pixels = np.asarray(Image.open(out))
    colours = {tuple(p) for p in pixels.reshape(-1, 3)}
    for name in set(predicted):
        assert PALETTE[handle.class_names.index(name) % len(PALETTE)] in colours, name
    sidecar = json.loads((tmp_path / "map.png.json").read_text())
    assert sidecar["view"] == "map" and sidecar["settings"]["colour_by"] == "prediction"
    assert sidecar["settings"]["data"] == f"folder:{tmp_path / 'data'}"
    assert sidecar["settings"]["fingerprint"] == probe.fingerprint()
    again = tmp_path / "again.png"
    code, stdout, err = run_cli(capsys, "export", "--from-sidecar", tmp_path / "map.png.json", "--out", again, "--json")
    assert code == 0, err
    assert {k: v for k, v in last_json(stdout).items() if k not in ("out", "sidecar")} == \
        {k: v for k, v in report.items() if k not in ("out", "sidecar")}
    np.testing.assert_array_equal(np.asarray(Image.open(again)), pixels)
    Image.new("RGB", (30, 30)).save(tmp_path / "data" / "circle" / "new.png")
    code, _, err = run_cli(capsys, "export", "--from-sidecar", tmp_path / "map.png.json", "--out", again)
    assert_one_line_error(code, err, "have changed since the map picture was made")


def test_colouring_by_correctness_needs_labels(capsys, tmp_path, cache):
    shapes_folder(tmp_path / "flat", 4, classes=None)
    code, _, err = run_cli(capsys, "export", "map", "--model", "builtin:shapes", "--data", tmp_path / "flat",
                           "--layer", "features", "--colour-by", "correct", "--out", tmp_path / "map.png")
    assert_one_line_error(code, err, "correctness needs labels", "--colour-by prediction")
    assert not (tmp_path / "map.png").exists()


def test_map_picture_colours_by_correctness_on_an_open_index(tmp_path):
    """The GUI's path: the map of an index it has open; each point is right or wrong as its prediction is."""
    from cnnexplorer.pictures.map import map_picture

    files = shapes_folder(tmp_path / "data", 8)
    moved = [folder for folder in sorted((tmp_path / "data").iterdir()) if folder != files[0].parent][0]
    files[0].rename(moved / files[0].name)  # one image under another class's name: a wrong prediction
    handle = load_model("builtin:shapes", "cpu")
    probe = open_probe_set(str(tmp_path / "data"))
    index = brute_force_index(handle, probe, ["features"])
    picture = map_picture(handle, probe, index, "features", "correct")
    truth = [handle.class_names.index(probe.label_names[probe.label(i)]) for i in range(8)]
    expected = ["right" if index.top5[i, 0] == truth[i] else "wrong" for i in range(8)]
    assert picture.report["point_groups"] == expected and {"right", "wrong"} <= set(expected)
    assert picture.settings["colour_by"] == "correct" and picture.layer == "features"
    from cnnexplorer.core.dataset.projection import pca_2d

    from dataclasses import replace

    projection = pca_2d(index.features["features"])  # the GUI's plot has it: the picture takes it, no second PCA
    again = map_picture(handle, probe, index, "features", "correct", projection)
    assert np.array_equal(again.pixels, picture.pixels)
    given = map_picture(handle, probe, index, "features", "correct", replace(projection, variance=(0.5, 0.25)))
    assert given.report["variance"] == [0.5, 0.25]


def test_the_legend_names_the_largest_groups_in_their_own_order():
    from cnnexplorer.pictures.map import MAX_LEGEND, legend_groups

    groups = [(number, f"class {number}", count) for number, count in enumerate([5, 1, 9, 3])]
    assert [number for number, _, _ in legend_groups(groups)] == [0, 1, 2, 3], "all of them, in class order"
    many = [(number, f"class {number}", (number * 7) % 31 + 1) for number in range(MAX_LEGEND + 8)]
    named = legend_groups(many)
    assert [n for n, _, _ in named] == sorted(n for n, _, _ in named) and len(named) == MAX_LEGEND
    assert min(c for _, _, c in named) >= max(c for n, _, c in many if n not in {m for m, _, _ in named})


def test_export_map_by_tsne_says_so_and_keeps_it_in_its_sidecar(capsys, tmp_path, cache):
    out = tmp_path / "tsne.png"
    report = exported_map(capsys, tmp_path, out, "--projection", "tsne")
    assert report["projection"] == "tsne" and report["variance"] is None and np.asarray(report["points"]).shape == (16, 2)
    assert json.loads((tmp_path / "tsne.png.json").read_text())["settings"]["projection"] == "tsne"
    again = tmp_path / "again.png"
    code, stdout, err = run_cli(capsys, "export", "--from-sidecar", str(out) + ".json", "--out", again, "--json")
    assert code == 0, err
    assert last_json(stdout)["projection"] == "tsne"
    np.testing.assert_allclose(last_json(stdout)["points"], report["points"], atol=1e-3)
