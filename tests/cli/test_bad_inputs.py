"""Bad numbers, bad files and broken models: one line, exit code 2, never a traceback or a hang."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnexplorer.core.builtin import BUILTIN_MODELS
from cnnexplorer.core.checkpoints import save_checkpoint
from cnnexplorer.resource_files import resource_path
from tests.cli.cli_helpers import assert_one_line_error, run_cli

SHAPES = ("--model", "builtin:shapes")
WEIGHTS = str(resource_path("weights", "shapes.pt"))
AS_FILE = ("--model", WEIGHTS, "--arch", "builtin:shapes")


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    shutil.copy(resource_path("samples", "circle.png"), tmp_path / "in.png")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("argv, words", [
    (["predict", *SHAPES, "in.png", "--top=-3"], ["--top", "at least 1"]),
    (["predict", *SHAPES, "in.png", "--top", "0"], ["--top"]),
    (["predict", *SHAPES, "in.png", "--seed", "123456789012345678901234"], ["--seed", "4294967295"]),
    (["predict", *SHAPES, "in.png", "--seed", "-1"], ["--seed"]),
    (["export", "adversarial", *SHAPES, "--image", "in.png", "--attack", "pgd-l2", "--eps", "1e300", "--out", "a.png"],
     ["--eps", "[0, 10000]", "1e+300"]),
    (["export", "adversarial", *SHAPES, "--image", "in.png", "--eps", "2", "--out", "a.png"], ["--eps", "[0, 1]", "2.0"]),
    (["export", "adversarial", *SHAPES, "--image", "in.png", "--step-size", "0", "--out", "a.png"],
     ["--step-size", "(0, 1]"]),
    (["export", "adversarial", *SHAPES, "--image", "in.png", "--attack", "bim", "--step-size", "3", "--out", "a.png"],
     ["--step-size"]),
    (["export", "adversarial", *SHAPES, "--image", "in.png", "--attack", "ascent", "--step-size", "0", "--out", "a.png"],
     ["--step-size"]),
    (["export", "adversarial", *SHAPES, "--image", "in.png", "--attack", "fgsm", "--eps", "0", "--out", "a.png"],
     ["--eps"]),
    (["export", "featurevis", *SHAPES, "--layer", "features.0", "--channels", "0-100000000", "--out", "f.png"],
     ["--channels", "4096"]),
    (["export", "featurevis", *SHAPES, "--layer", "features.0", "--channels", "9-3", "--out", "f.png"],
     ["--channels", "backwards"]),
    (["predict", *AS_FILE, "--input-size", "3,0,0", "in.png"], ["input size 0×0", "1 to 4096"]),
    (["predict", *AS_FILE, "--input-size", "7,64,64", "in.png"], ["7 channels"]),
    (["predict", *AS_FILE, "--input-size", "3,64,100000", "in.png"], ["64×100000"]),
    (["predict", *AS_FILE, "--std", "0,0,0", "in.png"], ["std", "above 0"]),
    (["predict", *AS_FILE, "--mean", "nan,0,0", "in.png"], ["finite"]),
    (["predict", *AS_FILE, "--mean", "0.5", "in.png"], ["3 values"]),
    (["predict", *AS_FILE, "--labels", "/dev/zero", "in.png"], ["/dev/zero", "not a regular file"]),
    (["predict", "--model", "/dev/zero", "in.png"], ["/dev/zero", "not a regular file"]),
    (["predict", *AS_FILE, "--labels", ".", "in.png"], ["is a folder"]),
    (["predict", *SHAPES, "/dev/zero"], ["/dev/zero", "not a regular file"]),
    (["evaluate", *SHAPES, "--data", ".", "--labels", "in.png"], ["--labels only applies to a model file",
                                                                  "builtin:shapes brings its own"]),
    (["predict", "--model", "torchvision:resnet18:none", "--mean", "0.5,0.5,0.5", "--std", "1,1,1", "in.png"],
     ["--mean, --std only apply to a model file", "leave them out"]),
])
def test_bad_options_and_files_are_one_line(folder, capsys, argv, words):
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, *words)
    assert not out and sorted(p.name for p in folder.iterdir()) == ["in.png"]


def test_featurevis_asking_for_more_memory_than_there_is_is_one_line(folder, capsys):
    code, _, err = run_cli(capsys, "export", "featurevis", *SHAPES, "--layer", "features.0", "--size", "100000",
                           "--steps", "1", "--out", "f.png")
    assert_one_line_error(code, err, "--size")


def _crafted(path: Path, **preprocessing) -> Path:
    module = BUILTIN_MODELS["shapes"].build()
    entry = BUILTIN_MODELS["shapes"]
    save_checkpoint(path, module, "builtin:shapes", entry.class_names, entry.preprocessing)
    payload = torch.load(path, weights_only=True)
    payload["preprocessing"].update(preprocessing)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("preprocessing, words", [
    ({"size": [0, 0]}, ["damaged", "0×0"]),
    ({"channels": 7}, ["damaged", "7 channels"]),
    ({"std": [0.0, 0.0, 0.0]}, ["damaged", "std"]),
    ({"resize": -5}, ["damaged", "resize"]),
])
def test_crafted_checkpoint_preprocessing_is_refused(folder, capsys, preprocessing, words):
    model = _crafted(folder / "crafted.pt", **preprocessing)
    code, _, err = run_cli(capsys, "predict", "--model", model, "in.png")
    assert_one_line_error(code, err, "crafted.pt", *words)


def test_nan_weights_are_said_not_shown_as_nan_percent(folder, capsys):
    module = BUILTIN_MODELS["shapes"].build()
    with torch.no_grad():
        module.classifier.weight.fill_(float("nan"))
    entry = BUILTIN_MODELS["shapes"]
    save_checkpoint(folder / "nan.pt", module, "builtin:shapes", entry.class_names, entry.preprocessing)
    code, out, err = run_cli(capsys, "predict", "--model", folder / "nan.pt", "in.png")
    assert_one_line_error(code, err, "non-finite", "NaN")
    assert "nan" not in out


@pytest.mark.parametrize("argv", [
    ["predict", "builtin:shapes", "fifo.png"],
    ["predict", "fifo.pt", "in.png"],
    ["predict", "builtin:shapes", "in.png", "--labels", "fifo.txt"],
    ["export", "heatmap", "--image", "fifo.png", "--out", "h.png", "--model", "builtin:shapes"],
])
def test_a_pipe_as_image_model_or_labels_never_blocks(folder, argv):
    for name in ("fifo.png", "fifo.pt", "fifo.txt"):
        os.mkfifo(folder / name)
    argv = [a if a != "builtin:shapes" or argv[0] != "predict" else a for a in argv]
    if argv[0] == "predict":
        argv = ["predict", "--model", argv[1], *argv[2:]]
        if "--labels" in argv:
            argv = ["predict", "--model", WEIGHTS, "--arch", "builtin:shapes", *argv[3:]]
    code = "import sys; from cnnexplorer.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=folder, capture_output=True, text=True, timeout=120)
    assert_one_line_error(done.returncode, done.stderr, "fifo", "not a regular file")


def test_shipped_samples_are_images_by_name(folder, capsys):
    code, out, err = run_cli(capsys, "predict", *SHAPES, "sample:circle", "sample:star", "--top", "1", "--json")
    assert code == 0, err
    results = json.loads(out.strip().splitlines()[-1])["results"]
    assert [r["top"][0]["label"] for r in results] == ["circle", "star"]
    code, _, err = run_cli(capsys, "predict", *SHAPES, "sample:hexagon")
    assert_one_line_error(code, err, "no sample image 'hexagon'", "sample:circle")
    shipped = resource_path("samples", "circle.png")
    before = shipped.read_bytes()
    code, _, err = run_cli(capsys, "export", "heatmap", *SHAPES, "--image", "sample:circle", "--out", shipped)
    assert_one_line_error(code, err, "same file as the input --image")
    assert shipped.read_bytes() == before
