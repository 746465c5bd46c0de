"""``cnnexplorer export layers``: every layer's channels in one picture, the ±2σ recipe, the sidecar round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.pictures.layers import scaled_channels
from tests.cli.cli_helpers import assert_one_line_error, last_json, run_cli


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_sigma2_is_the_keras_recipe():
    torch.manual_seed(0)
    output = torch.relu(torch.randn(1, 3, 5, 6) * 2)
    output[0, 1] = 0  # a dead channel
    got = scaled_channels(output, "sigma2", 3)
    x = output[0, 0].double().numpy()
    keras = np.clip((x - x.mean()) / x.std() * 64 + 128, 0, 255) / 255
    np.testing.assert_allclose(got[0], keras, atol=1e-6)
    assert got.shape == (3, 5, 6) and (got[1] == 0).all()
    assert scaled_channels(output, "channel", 2).shape == (2, 5, 6)
    layer = scaled_channels(output, "layer", 3)
    assert layer.max() == pytest.approx(1.0) and layer[1].max() == 0


def test_export_layers_stacks_every_layer_and_round_trips(capsys, tmp_path, image_path):
    out = tmp_path / "all.png"
    code, stdout, err = run_cli(capsys, "export", "layers", "--model", "builtin:shapes", "--image", image_path,
                                "--per-row", "8", "--max-channels", "16", "--tile", "16", "--out", out, "--json")
    assert code == 0, err
    report = last_json(stdout)
    names = [row["layer"] for row in report["layers"]]
    assert names[:2] == ["features.0.2", "features.1"] and names[-1] == "features.7.relu2"
    assert all(row["shown"] == min(16, row["shape"][0]) for row in report["layers"])
    picture = np.asarray(Image.open(out))
    assert picture.shape[1] == 2 * 8 + 8 * 18 - 2
    assert picture.shape[0] == 22 * (1 + len(names)) + sum(2 * 18 for _ in names)  # 16 channels: two rows of 8
    again = tmp_path / "again.png"
    code, stdout, err = run_cli(capsys, "export", "--from-sidecar", f"{out}.json", "--out", again, "--json")
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(again)), picture)
    code, _, err = run_cli(capsys, "export", "layers", "--model", "builtin:shapes", "--out", tmp_path / "x.png")
    assert_one_line_error(code, err, "needs an image")
