"""The dataset explorer on CUDA: ``make test-gpu`` on a machine with a GPU (not run by CI).

The index, the evaluation, the atlas and the neighbours run end to end on the GPU through the
command line and give the CPU's answers, up to the GPU's float arithmetic (convolutions may use
TF32): the same predictions, top-k values within 1 % of the layer's range, and nearly the same
top-k images (two images whose peaks differ by less than that rounding may swap).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnexplorer  # noqa: F401 - first, as in the app: it sets the OpenMP wait policy before torch loads
from cnnexplorer.core.dataset.index import index_job
from cnnexplorer.core.dataset.probe import open_probe_set
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from tests.cli.cli_helpers import last_json, run_cli

MODEL, DATA, LAYER = "builtin:shapes", "builtin:shapes", "features.7.conv2"
DEVICES = ("cpu", "cuda")


@pytest.fixture(scope="module", autouse=True)
def cuda():
    assert torch.cuda.is_available(), "make test-gpu needs a CUDA GPU; on a machine without one, run make test"


def test_index_evaluate_atlas_and_neighbours_on_the_gpu_match_the_cpu(capsys, tmp_path, monkeypatch):
    probe = open_probe_set(DATA)
    cpu, gpu = (drive(index_job(load_model(MODEL, device), probe, cache_dir=tmp_path / device))
                for device in DEVICES)
    assert cpu.count == gpu.count == len(probe) and list(cpu.layers) == list(gpu.layers)
    assert (cpu.top5[:, 0] == gpu.top5[:, 0]).mean() >= 0.99
    for name, layer in cpu.layers.items():
        other = gpu.layers[name]
        scale = float(layer.maximum.max() - min(layer.hist_edges[0], 0)) or 1.0
        np.testing.assert_allclose(other.top_values, layer.top_values, atol=1e-2 * scale)
        np.testing.assert_allclose(other.mean, layer.mean, atol=1e-2 * scale)
        same = [len(set(a) & set(b)) / len(a) for a, b in zip(layer.top_images.tolist(), other.top_images.tolist())]
        assert np.mean(same) >= 0.9, (name, np.mean(same))
        assert (other.hist_counts.sum(1) == layer.hist_counts.sum(1)).all()

    evaluations = {}
    for device in DEVICES:
        code, out, err = run_cli(capsys, "evaluate", "--model", MODEL, "--data", DATA, "--device", device, "--json")
        assert code == 0, err
        evaluations[device] = last_json(out)
    assert abs(evaluations[DEVICES[0]]["top1"] - evaluations[DEVICES[1]]["top1"]) <= 0.01
    assert evaluations[DEVICES[1]]["top1"] >= 0.9  # the built-in model knows its own shapes

    monkeypatch.setenv("CNNEXPLORER_CACHE", str(tmp_path / "exports"))
    code, out, err = run_cli(capsys, "export", "atlas", "--model", MODEL, "--data", DATA, "--layer", LAYER,
                             "--channels", "0-3", "--device", DEVICES[1],
                             "--out", tmp_path / "atlas.png", "--json")
    assert code == 0, err
    units = last_json(out)["units"]
    assert [u["index"] for u in units] == [0, 1, 2, 3] and all(len(u["top"]) == 9 for u in units)
    assert (tmp_path / "atlas.png").stat().st_size > 0

    probe.image(0).save(tmp_path / "query.png")
    code, out, err = run_cli(capsys, "export", "neighbours", "--model", MODEL, "--data", DATA, "--image",
                             tmp_path / "query.png", "--layer", LAYER, "--device", DEVICES[1],
                             "--out", tmp_path / "neighbours.png", "--json")
    assert code == 0, err
    found = last_json(out)
    assert len(found["feature"]) == 8 and found["feature"][0]["distance"] == pytest.approx(0, abs=1e-3)
    assert found["feature_knn_acc"] > found["pixel_knn_acc"]
