"""``cnnexplorer train``: the JSON contract, outputs, resume and errors (the default shapes recipe's accuracy and time are benchmarks/bench_shapes_recipe.py)."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.state import read_resume
from tests.cli.cli_helpers import last_json, run_cli


def make_folder(root, per_class: int = 24):
    rng = np.random.default_rng(0)
    for name, axis in (("cats", 0), ("dogs", 1)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            wave = (np.arange(32) // 3 % 2) * 160 + 40
            image = np.repeat(wave[:, None] if axis == 0 else wave[None, :], 32, axis=1 - axis)
            image = np.clip(image + rng.normal(0, 25, (32, 32)), 0, 255).astype(np.uint8)
            Image.fromarray(image).convert("RGB").save(root / name / f"{i}.png")
    return root


def test_train_json_plot_csv_and_a_loadable_checkpoint(tmp_path, capsys):
    data = make_folder(tmp_path / "pets")
    out = tmp_path / "run.pt"
    code, stdout, _ = run_cli(capsys, "train", "--model", "builtin:lenet5", "--data", f"folder:{data}", "--epochs", "2",
                              "--batch-size", "16", "--optimizer", "sgd", "--lr", "0.05", "--schedule", "step",
                              "--augment", "shift=0.05", "--out", str(out), "--plot", str(tmp_path / "c.png"),
                              "--csv", str(tmp_path / "m.csv"), "--precision", "bf16", "--channels-last", "on", "--json")
    assert code == 0
    assert read_resume(out)[1].precision == "bf16" and read_resume(out)[1].channels_last == "on"
    report = last_json(stdout)
    assert {"out", "epochs", "best_val_acc", "final_val_acc", "final_val_loss"} <= report.keys()
    assert report["epochs"] == 2 and report["best_val_acc"] >= report["final_val_acc"] > 0
    handle = load_model(str(out), "cpu")
    assert handle.class_names == ["cats", "dogs"] and handle.module.classifier[-1].out_features == 2
    assert (tmp_path / "run.best.pt").exists()
    assert Image.open(tmp_path / "c.png").size[0] > 600
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert len(rows) == 2 * 3 and rows[2]["val_acc"] and not rows[0]["val_acc"]  # 38 images / 16 = 3 batches

    code, stdout, _ = run_cli(capsys, "train", "--resume", str(out), "--epochs", "3", "--out", str(out), "--json")
    assert code == 0 and last_json(stdout)["epochs"] == 3


def test_train_user_errors_are_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "builtin:lenet5", "--data", f"cifar10:{tmp_path}",
                           "--out", str(tmp_path / "x.pt"))
    assert code == 2 and "--download" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "train", "--model", "builtin:lenet5", "--out", str(tmp_path / "x.pt"))
    assert code == 2 and "--data" in err
    code, _, err = run_cli(capsys, "train", "--resume", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.pt"))
    assert code == 2 and "not found" in err


def test_train_reports_its_plan_and_batch_progress_on_a_pipe_before_the_first_epoch_ends(tmp_path):
    """Run as a subprocess writing to a pipe (no terminal): the plan, then a progress line with the loss,
    then the epoch's line; the final report says where the model started."""
    import subprocess
    import sys

    data = make_folder(tmp_path / "pets")
    done = subprocess.run([sys.executable, "-m", "cnnexplorer", "train", "--model", "builtin:lenet5", "--data",
                           f"folder:{data}", "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "r.pt"),
                           "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    plan = next(k for k, line in enumerate(lines) if "replaced by a new one for the data's 2 classes" in line)
    progress = next(k for k, line in enumerate(lines) if line.startswith("step 1/") and "loss" in line)
    epoch = next(k for k, line in enumerate(lines) if line.startswith("epoch 1/1"))
    assert plan < progress < epoch, done.stderr
    assert 0 <= last_json(done.stdout)["start_val_acc"] <= 1
