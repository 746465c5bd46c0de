"""``cnnexplorer export atlas``: the JSON report against a brute-force pass over a small folder, the
PNG and its sidecar round trip, linear units, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.dataset.receptive import image_box, layer_field
from cnnexplorer.core.featurevis.optimize import run_to
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.model_handle import eval_mode
from cnnexplorer.core.models import open_model
from tests.cli.cli_helpers import assert_one_line_error, last_json, run_cli

SIZES = [(64, 64), (96, 80), (70, 110), (128, 64), (64, 64), (80, 80), (100, 90), (64, 72)]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """Eight shapes scenes in two class folders, at several sizes, one grey and one with alpha."""
    from cnnexplorer.core.builtin.shapes_data import validation_set

    monkeypatch.setenv("CNNEXPLORER_CACHE", str(tmp_path / "cache"))
    scenes = (validation_set(len(SIZES)).images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    root = tmp_path / "data"
    for i, (scene, size) in enumerate(zip(scenes, SIZES)):
        image = Image.fromarray(scene).resize(size, Image.BILINEAR)
        image = image.convert("L") if i == 2 else image.convert("RGBA") if i == 5 else image
        (root / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        image.save(root / f"class{i % 2}" / f"scene{i}.png")
    return root


def brute_force_top(handle, paths, layer: str, channel: int, k: int):
    """(path, value, box) of the top ``k`` images of a channel by their peak, from a plain loop."""
    field = layer_field(handle, layer)
    found = []
    for path in paths:
        image = Image.open(path)
        with torch.no_grad(), eval_mode(handle.module):
            pixels = handle.preprocessing.to_tensor(image)[None]
            out = run_to(handle.pixel_model(), handle.module, [layer], pixels)[layer]
        maps = out[0, channel] if out.dim() == 4 else out[0, channel].reshape(1, 1)
        peak = int(maps.flatten().argmax())
        y, x = divmod(peak, maps.shape[1])
        box = image_box(field.input_box(y, x, handle.preprocessing.size), handle.preprocessing, image.size)
        found.append((str(path), float(maps.flatten()[peak]), list(box)))
    return sorted(found, key=lambda entry: -entry[1])[:k]


def test_export_atlas_reports_the_top_patches_and_reproduces(capsys, folder, tmp_path, monkeypatch):
    out = tmp_path / "atlas.png"
    monkeypatch.chdir(tmp_path)  # the data named relatively: the sidecar holds its absolute path
    code, stdout, err = run_cli(capsys, "export", "atlas", "--model", "builtin:shapes", "--data", "data", "--layer",
                                "features.2.0", "--channels", "0-2", "--top-k", "4", "--out", out, "--json")
    assert code == 0, err
    report = last_json(stdout)
    assert report["layer"] == "features.2.0" and [u["index"] for u in report["units"]] == [0, 1, 2]
    handle = drive(open_model("builtin:shapes", "cpu"))
    paths = sorted(folder.rglob("*.png"))
    for unit in report["units"]:
        expected = brute_force_top(handle, paths, "features.2.0", unit["index"], 4)
        assert [t["image"] for t in unit["top"]] == [e[0] for e in expected]
        assert [t["box"] for t in unit["top"]] == [e[2] for e in expected]
        np.testing.assert_allclose([t["value"] for t in unit["top"]], [e[1] for e in expected], rtol=1e-4, atol=1e-4)
    sidecar = tmp_path / "atlas.png.json"
    picture = np.asarray(Image.open(out))
    assert picture.shape[0] > 3 * 64 and picture.shape[1] > 9 * 64
    again = tmp_path / "again.png"
    monkeypatch.chdir(folder / "class0")
    code, stdout, err = run_cli(capsys, "export", "--from-sidecar", sidecar, "--out", again, "--json")
    assert code == 0, err
    assert last_json(stdout)["units"] == report["units"]
    assert np.array_equal(np.asarray(Image.open(again)), picture)
    code, _, err = run_cli(capsys, "export", "--from-sidecar", sidecar, "--out", again, "--layer", "features.0.0")
    assert_one_line_error(code, err, "--layer does not go with --from-sidecar: the sidecar records its model")
    code, _, err = run_cli(capsys, "export", "--from-sidecar", sidecar, "--out", again, "--data", folder, "--top-k", "2")
    assert_one_line_error(code, err, "--data, --top-k do not go with --from-sidecar")
    Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / "class0" / "added.png")
    code, _, err = run_cli(capsys, "export", "--from-sidecar", sidecar, "--out", again)
    assert_one_line_error(code, err, "have changed since the atlas picture was made")


def test_linear_units_show_whole_images(capsys, folder, tmp_path):
    code, stdout, err = run_cli(capsys, "export", "atlas", "--model", "builtin:shapes", "--data", folder, "--layer",
                                "classifier", "--channels", "1", "--top-k", "3", "--out", tmp_path / "logit.png",
                                "--json")
    assert code == 0, err
    report = last_json(stdout)
    (unit,) = report["units"]
    assert len(unit["top"]) == 3 and report["featurevis"]["objective"] == "logit"
    for top in unit["top"]:
        assert top["box"] == [0, 0, *Image.open(top["image"]).size]


def test_export_atlas_refusals(capsys, folder, tmp_path):
    out = tmp_path / "refused.png"
    code, _, err = run_cli(capsys, "export", "atlas", "--model", "builtin:shapes", "--layer", "features.2.0",
                           "--out", out)
    assert_one_line_error(code, err, "--data DATASPEC")
    code, _, err = run_cli(capsys, "export", "atlas", "--model", "builtin:shapes", "--data", folder, "--layer",
                           "classifier", "--channels", "4-7", "--top-k", "2", "--out", out)
    assert_one_line_error(code, err, "pick a channel from 0 to 5")
    assert not out.exists()


def test_a_click_on_a_cell_finds_its_patch(folder, tmp_path):
    """The GUI's path: the atlas of an index it has open, and the patch under a click."""
    from cnnexplorer.core.dataset.atlas import Atlases
    from cnnexplorer.core.dataset.index import index_job
    from cnnexplorer.core.dataset.probe import open_probe_set
    from cnnexplorer.pictures.atlas import AtlasDraft, AtlasOptions, run_atlas
    from cnnexplorer.pictures.base import Inputs

    handle = drive(open_model("builtin:shapes", "cpu"))
    probe = open_probe_set(str(folder))
    index = drive(index_job(handle, probe, layers=["features.2.0"], top_k=4, cache_dir=tmp_path / "cache"))
    atlases = Atlases(handle, probe, index)
    items = []
    shown = drive(run_atlas(Inputs(handle, None, "features.2.0"), AtlasOptions(channels=(1, 2), top_k=9), atlases),
                  items.append)
    assert [unit.channel for unit in shown.units] == [1, 2] and shown.picture.settings["top_k"] == 4
    draft = items[0]  # before any reconstruction or feature visualisation is made: the patches, in place
    assert isinstance(draft, AtlasDraft) and [type(item) for item in items[1:]].count(AtlasDraft) == 0
    assert draft.units == shown.units and draft.pixels.shape == shown.picture.pixels.shape
    assert [cell.box for cell in draft.cells] == [cell.box for cell in shown.cells]
    for cell in draft.cells:
        x0, y0, x1, y1 = cell.box
        tile = draft.pixels[y0:y1, x0:x1]
        assert np.array_equal(tile, shown.picture.pixels[y0:y1, x0:x1]) if cell.kind == "patch" else (tile == 235).all()
        assert draft.hit(x0, y0) is shown.units[cell.row].patches[cell.slot]
    again = []  # made before: no draft, the whole atlas at once
    drive(run_atlas(Inputs(handle, None, "features.2.0"), AtlasOptions(channels=(1, 2), top_k=9), atlases), again.append)
    assert not any(isinstance(item, AtlasDraft) for item in again)
    for cell in shown.cells:
        x0, y0, x1, y1 = cell.box
        assert shown.hit((x0 + x1) / 2, (y0 + y1) / 2) is shown.units[cell.row].patches[cell.slot]
        if cell.kind == "patch":
            assert np.array_equal(shown.picture.pixels[y0:y1, x0:x1], shown.units[cell.row].patches[cell.slot].pixels)
    assert {cell.kind for cell in shown.cells} == {"patch", "deconvnet", "guided"} and len(shown.cells) == 2 * 3 * 4
    assert shown.hit(0, 0) is None
    assert drive(atlases.reconstructions("features.2.0", 2)) is drive(atlases.reconstructions("features.2.0", 2))


def test_each_row_shows_its_channels_feature_visualisation(folder, tmp_path):
    """The feature-vis column is the Feature vis tab's image of the channel (same preset, size and seed), made
    once per set of channels, and each image drives its own channel harder than the other rows' images do."""
    from cnnexplorer.core.dataset.atlas import FEATUREVIS_PRESET, PATCH, Atlases
    from cnnexplorer.core.dataset.index import index_job
    from cnnexplorer.core.dataset.probe import open_probe_set
    from cnnexplorer.core.featurevis import evaluate, objectives
    from cnnexplorer.core.featurevis.optimize import as_uint8
    from cnnexplorer.pictures.atlas import AtlasOptions, run_atlas
    from cnnexplorer.pictures.base import Inputs
    from cnnexplorer.pictures.featurevis import FeatureVisOptions, run_featurevis

    handle, layer, channels = drive(open_model("builtin:shapes", "cpu")), "features.2.0", (0, 2, 3)
    probe = open_probe_set(str(folder))
    index = drive(index_job(handle, probe, layers=[layer], top_k=2, cache_dir=tmp_path / "cache"))
    atlases = Atlases(handle, probe, index)
    shown = drive(run_atlas(Inputs(handle, None, layer, seed=3), AtlasOptions(channels=channels), atlases))
    assert shown.picture.settings["seed"] == 3 and shown.picture.report["featurevis"]["objective"] == "channel"
    tab = drive(run_featurevis(Inputs(handle, None, layer, seed=3),
                               FeatureVisOptions("channel", channels, FEATUREVIS_PRESET, size=PATCH)))
    expected = as_uint8(tab.result.images)
    pixels = shown.picture.pixels
    for row, image in enumerate(expected):
        assert np.array_equal(shown.featurevis.images[row], image)
        top = min(cell.box[1] for cell in shown.cells if cell.row == row)
        left = min(cell.box[0] for cell in shown.cells if cell.row == row)
        band = pixels[top: top + PATCH, :left]
        assert any(np.array_equal(band[:, x: x + PATCH], image) for x in range(left - PATCH + 1)), f"row {row}"
    np.testing.assert_allclose([u["featurevis_value"] for u in shown.picture.report["units"]], tab.result.values,
                               rtol=1e-5, atol=1e-6)
    images = torch.from_numpy(np.stack(shown.featurevis.images)).permute(0, 3, 1, 2).float() / 255
    for row, channel in enumerate(channels):
        values = evaluate(handle, objectives.channel(layer, channel), images)
        assert values.argmax() == row, (channel, values)
    again = drive(run_atlas(Inputs(handle, None, layer, seed=3), AtlasOptions(channels=channels), atlases))
    assert again.featurevis is shown.featurevis
    other = drive(run_atlas(Inputs(handle, None, layer), AtlasOptions(channels=channels, seed=4), atlases))
    assert other.picture.settings["seed"] == 4 and not np.array_equal(other.featurevis.images[0], expected[0])


def test_feature_visualisation_can_be_cancelled(folder, tmp_path):
    """The atlas job yields at every optimisation step; closed there, it leaves the model as it was and
    remembers nothing, so the next request makes the images."""
    from cnnexplorer.core.dataset.atlas import Atlases
    from cnnexplorer.core.dataset.index import index_job
    from cnnexplorer.core.dataset.probe import open_probe_set
    from cnnexplorer.core.jobs import Progress
    from cnnexplorer.pictures.atlas import AtlasOptions, run_atlas
    from cnnexplorer.pictures.base import Inputs

    handle = drive(open_model("builtin:shapes", "cpu"))
    probe = open_probe_set(str(folder))
    index = drive(index_job(handle, probe, layers=["features.2.0"], top_k=2, cache_dir=tmp_path / "cache"))
    atlases = Atlases(handle, probe, index)
    handle.module.train()
    try:
        job = run_atlas(Inputs(handle, None, "features.2.0"), AtlasOptions(channels=(1,), seed=9), atlases)
        item = next(job)
        while not (isinstance(item, Progress) and "feature visualisation" in item.message and item.done >= 3):
            item = next(job)
        job.close()
        assert handle.module.training and all(p.grad is None for p in handle.module.parameters())
    finally:
        handle.module.eval()
    again = atlases.featurevis("features.2.0", [1], 9)
    assert any(isinstance(item, Progress) for item in again)


def test_a_set_smaller_than_k_fills_only_its_own_columns(capsys, folder, tmp_path):
    for path in sorted(folder.rglob("*.png"))[2:]:
        path.unlink()  # two images left
    pictures = []
    for k in ("9", "2"):
        out = tmp_path / f"top{k}.png"
        code, stdout, err = run_cli(capsys, "export", "atlas", "--model", "builtin:shapes", "--data", folder, "--layer",
                                    "features.2.0", "--channels", "0", "--top-k", k, "--out", out, "--json")
        assert code == 0, err
        assert len(last_json(stdout)["units"][0]["top"]) == 2
        pictures.append(np.asarray(Image.open(out)))
    assert np.array_equal(*pictures), "asking for 9 of 2 images draws what asking for 2 draws"
