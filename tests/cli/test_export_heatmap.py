"""``cnnexplorer export heatmap``: the JSON report, the core renderer's pixels over the original
image with the title and colour bar below, the raw map."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.attribution import compute_heatmap, render_heatmap
from cnnexplorer.core.images import load_image
from cnnexplorer.core.models import load_model
from cnnexplorer.gui.window_jobs import sample_images
from tests.cli.cli_helpers import run_cli


def test_export_heatmap_reports_target_score_and_peak_and_saves_the_map(capsys, tmp_path):
    image = sample_images()[0]
    out, raw = tmp_path / "heat.png", tmp_path / "maps" / "heat.npy"
    code, stdout, _ = run_cli(capsys, "export", "heatmap", "--model", "builtin:shapes", "--image", str(image),
                              "--method", "gradcam++", "--target", "square", "--alpha", "0.6", "--cmap", "jet",
                              "--clip", "2", "--map-only",
                              "--out", str(out), "--save-map", str(raw), "--json")
    assert code == 0
    report = json.loads(stdout.strip().splitlines()[-1])
    handle = load_model("builtin:shapes", "cpu")
    loaded = load_image(image)
    pixels = handle.preprocessing.to_tensor(loaded.image)
    heatmap = compute_heatmap(handle, pixels, "gradcam++", target=1)
    assert report["method"] == "gradcam++" and report["target"] == {"index": 1, "label": "square"}
    assert report["score"] == pytest.approx(heatmap.score, rel=1e-5)
    assert report["peak"] == list(heatmap.peak()) and report["layer"] == heatmap.layer
    width, height = loaded.image.size
    x, y = report["peak"]
    assert report["peak_image"] == pytest.approx([(x + 0.5) * width / 64 - 0.5, (y + 0.5) * height / 64 - 0.5])
    np.testing.assert_allclose(np.load(raw), heatmap.map, rtol=1e-5, atol=1e-7)
    assert report["saturates_at"] == pytest.approx(heatmap.scale(2.0), rel=1e-5)
    drawn = np.asarray(Image.open(out))
    assert drawn.shape[0] > height and drawn.shape[1] >= width  # the colour bar and title below
    np.testing.assert_array_equal(drawn[:height, :width], render_heatmap(
        pixels, heatmap, 0.6, "jet", 2.0, background=np.asarray(loaded.image), box=(0, 0, width, height),
        overlay=False))
    sidecar = json.loads((tmp_path / "heat.png.json").read_text())
    assert sidecar["view"] == "heatmap" and sidecar["settings"]["method"] == "gradcam++"
    assert sidecar["settings"]["clip"] == 2.0 and sidecar["settings"]["overlay"] is False


def test_export_heatmap_user_errors_exit_2(capsys, tmp_path):
    image = str(sample_images()[0])
    code, _, err = run_cli(capsys, "export", "heatmap", "--model", "builtin:shapes", "--image", image,
                           "--method", "saliency", "--layer", "features", "--out", str(tmp_path / "a.png"))
    assert code == 2 and "leave out the layer" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "export", "heatmap", "--model", "builtin:shapes", "--image", image,
                           "--save-map", str(tmp_path / "m.txt"), "--out", str(tmp_path / "b.png"))
    assert code == 2 and ".npy" in err
    code, _, err = run_cli(capsys, "export", "heatmap", "--model", "builtin:shapes", "--image", image,
                           "--alpha", "1.5", "--out", str(tmp_path / "c.png"))
    assert code == 2 and "opacity goes from 0" in err
    code, _, err = run_cli(capsys, "export", "heatmap", "--model", "builtin:shapes", "--image", image,
                           "--clip", "100", "--out", str(tmp_path / "d.png"))
    assert code == 2 and "saturate" in err


def test_export_heatmap_lrp_reports_the_relevance_sum_beside_the_logit(capsys, tmp_path):
    from tests.cli.cli_helpers import last_json

    image = str(sample_images()[0])
    out = tmp_path / "lrp.png"
    code, stdout, _ = run_cli(capsys, "export", "heatmap", "--model", "builtin:shapes", "--image", image,
                              "--method", "lrp", "--composite", "epsilon", "--out", str(out), "--json")
    report = last_json(stdout)
    handle = load_model("builtin:shapes", "cpu")
    heatmap = compute_heatmap(handle, handle.pixels(load_image(image)), "lrp", composite="epsilon")
    assert code == 0 and report["composite"] == "epsilon"
    assert report["relevance_sum"] == pytest.approx(heatmap.info["relevance_sum"], rel=1e-4)
    assert report["logit"] == pytest.approx(heatmap.info["logit"], rel=1e-5)
    code, stdout, _ = run_cli(capsys, "export", "--from-sidecar", f"{out}.json", "--out", str(tmp_path / "again.png"),
                              "--json")
    assert code == 0 and last_json(stdout)["composite"] == "epsilon"


def test_export_heatmap_reduce_rgb_keeps_the_three_colour_channels(capsys, tmp_path):
    image = str(sample_images()[0])
    raw = tmp_path / "rgb.npy"
    code, _, _ = run_cli(capsys, "export", "heatmap", "--model", "builtin:shapes", "--image", image, "--method",
                         "saliency", "--reduce", "rgb", "--out", str(tmp_path / "rgb.png"), "--save-map", str(raw))
    handle = load_model("builtin:shapes", "cpu")
    pixels = handle.pixels(load_image(image))
    assert code == 0 and np.load(raw).shape == (64, 64, 3)
    np.testing.assert_allclose(np.load(raw), compute_heatmap(handle, pixels, "saliency", reduce="rgb").map, rtol=1e-5,
                               atol=1e-8)
    mean = compute_heatmap(handle, pixels, "saliency", reduce="mean").map
    np.testing.assert_allclose(np.load(raw).mean(axis=2), mean, rtol=1e-4, atol=1e-7)
