"""The command line: subcommands, JSON contract, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tests.cli.cli_helpers import last_json, run_cli



@pytest.fixture
def image_path(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
    return path


def test_summary_json_follows_the_contract(capsys):
    code, out, _ = run_cli(capsys, "summary", "--model", "builtin:tinyvgg", "--json")
    assert code == 0
    data = last_json(out)
    from cnnexplorer.core.builtin.nets import TinyVGG

    model = TinyVGG()
    assert data["model"] == "builtin:tinyvgg"
    assert data["input_size"] == [3, 64, 64]
    assert data["total_params"] == sum(p.numel() for p in model.parameters())
    layer_keys = {"name", "type", "output_shape", "params", "macs", "rf_size", "rf_jump"}
    assert all(layer_keys <= set(layer) for layer in data["layers"])
    first_conv = next(layer for layer in data["layers"] if layer["name"] == "features.0")
    assert first_conv["output_shape"] == [10, 62, 62]
    assert first_conv["macs"] == 10 * 62 * 62 * 3 * 3 * 3


def test_summary_text_lists_layers_and_totals(capsys):
    code, out, _ = run_cli(capsys, "summary", "--model", "builtin:lenet5")
    assert code == 0
    assert "Conv2d" in out and "Tanh" in out
    assert "Total params: 61,706" in out


def test_summary_input_size_override(capsys):
    code, out, _ = run_cli(capsys, "summary", "--model", "torchvision:resnet18:none",
                           "--input-size", "3,64,64", "--json")
    assert code == 0
    data = last_json(out)
    assert data["input_size"] == [3, 64, 64]
    assert next(l for l in data["layers"] if l["name"] == "conv1")["output_shape"] == [64, 32, 32]


def test_predict_json(capsys, image_path):
    code, out, _ = run_cli(capsys, "predict", "--model", "builtin:tinyvgg", str(image_path),
                           str(image_path), "--top", "3", "--json")
    assert code == 0
    data = last_json(out)
    assert data["model"] == "builtin:tinyvgg"
    assert len(data["results"]) == 2
    top = data["results"][0]["top"]
    assert [set(t) for t in top] == [{"index", "label", "prob"}] * 3
    probs = [t["prob"] for t in top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_models_lists_builtin_and_torchvision(capsys):
    code, out, _ = run_cli(capsys, "models", "--json")
    assert code == 0
    data = last_json(out)
    assert {"builtin:shapes", "builtin:lenet5", "builtin:tinyvgg"} <= {b["spec"] for b in data["builtin"]}
    import torchvision

    assert len(data["torchvision"]) == len(torchvision.models.list_models(module=torchvision.models))


def test_export_summary_writes_png_and_sidecar(capsys, tmp_path):
    out_png = tmp_path / "summary.png"
    code, out, _ = run_cli(capsys, "export", "summary", "--model", "builtin:lenet5", "--out", str(out_png), "--json")
    assert code == 0
    data = last_json(out)
    assert data["out"] == str(out_png) and data["sidecar"] == str(out_png) + ".json"
    pixels = np.asarray(Image.open(out_png))
    from cnnexplorer.core.architecture import summarize
    from cnnexplorer.core.charts import render_summary_table
    from cnnexplorer.core.models import load_model

    handle = load_model("builtin:lenet5", "cpu")
    expected = render_summary_table(summarize(handle.module, handle.input_size, handle.device, model_name=handle.spec))
    assert np.array_equal(pixels, expected)
    sidecar = json.loads((tmp_path / "summary.png.json").read_text())
    assert sidecar["view"] == "summary" and sidecar["model"]["spec"] == "builtin:lenet5"
    assert "torch" in sidecar["versions"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_predictions_records_image_hash(capsys, tmp_path, image_path):
    import hashlib

    out_png = tmp_path / "pred.png"
    code, out, _ = run_cli(capsys, "export", "predictions", "--model", "builtin:tinyvgg",
                           "--image", str(image_path), "--out", str(out_png), "--json")
    assert code == 0
    assert len(last_json(out)["top"]) == 5
    sidecar = json.loads((tmp_path / "pred.png.json").read_text())
    assert sidecar["image"]["sha256"] == hashlib.sha256(image_path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["summary", "--model", "torchvision:resnet05"], "resnet50"),
        (["summary", "--model", "builtin:shape"], "did you mean shapes"),
        (["predict", "--model", "builtin:lenet5", "missing.png"], "missing.png"),
        (["summary", "--model", "builtin:lenet5", "--device", "cuda:7"], "cuda:7"),
        (["export", "predictions", "--model", "builtin:lenet5", "--out", "x.png"], "--image"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnexplorer: error:")
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_non_image_in_a_real_process_has_no_traceback(tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("this is not an image")
    proc = subprocess.run(
        [sys.executable, "-m", "cnnexplorer", "predict", "--model", "builtin:lenet5", str(bogus)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "notes.png" in proc.stderr


def test_the_package_makes_idle_openmp_threads_sleep_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import cnnexplorer.cli, os, sys; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.stdout.split() == ["PASSIVE", "False"]


def test_the_progress_bar_says_the_time_left_from_the_pace_since_its_first_step(monkeypatch):
    import io

    from cnnexplorer.core import jobs

    clock = iter([99.0, 100.0, 100.05, 110.0])
    monkeypatch.setattr(jobs.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    stream.isatty = lambda: True
    bar = jobs.TextProgressBar(stream)
    bar(jobs.Progress(50, 100, "indexing"))  # resumed half-way: the pace counts from here
    bar(jobs.Progress(60, 100, "indexing"))  # drawn less than 0.1 s after: skipped
    bar(jobs.Progress(75, 100, "indexing"))
    assert stream.getvalue().endswith(" 75 %  about 10 s left")
