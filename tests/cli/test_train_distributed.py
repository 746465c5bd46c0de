"""``train``/``evaluate --nproc-per-node 2``: two gloo processes on 127.0.0.1 give a single process's results.

The recipe is LeNet-5 (no batch norm, no dropout) with SGD, no augmentation and a constant learning
rate, so the only randomness is the data order, which the DistributedSampler draws as the single
process does: two ranks of 8 images see exactly the single process's batches of 16. What differs is
the order of float sums (two half-batch gradients all-reduced instead of one sum over 16, a loss as a
count-weighted mean), about 1e-7 relative per step; after a few dozen steps the weights agree to 1e-5.
A torchrun launch costs three Python processes importing torch, so there is one (training, killed part-way);
the evaluation's two ranks are forked from the test process instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnexplorer.cli import build_parser
from cnnexplorer.cli_train import add_parser, worker_argv
from cnnexplorer.core.checkpoints import read_model_file
from cnnexplorer.core.distributed import Launch, launch_command
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.state import read_resume
from tests.cli.cli_helpers import forked_ranks, last_json, run_cli
from tests.cli.test_train import make_folder

TOLERANCE = 1e-5  # float summation order only (see above)


def _workers(parent: int) -> dict[int, int]:
    """The rank → pid of ``parent``'s child processes that are torchrun workers."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == parent:
            ranks = [e[5:] for e in environ if e.startswith(b"RANK=")]
            if ranks:
                found[int(ranks[0])] = int(stat.parent.name)
    return found


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_model_file(path).state_dict


def test_two_processes_train_as_one_and_a_killed_rank_stops_the_run(tmp_path, capsys):
    data = make_folder(tmp_path / "pets")  # 38 training images (19 per rank), 10 for validation
    recipe = ["--model", "builtin:lenet5", "--data", f"folder:{data}", "--optimizer", "sgd", "--lr", "0.05",
              "--momentum", "0.5", "--schedule", "none", "--seed", "3"]
    two, progress = tmp_path / "two.pt", tmp_path / "progress.jsonl"
    args = build_parser().parse_args(["train", *recipe, "--epochs", "60", "--batch-size", "8", "--out", str(two),
                                      "--progress-jsonl", str(progress), "--nproc-per-node", "2"])
    argv = worker_argv(args, "train", add_parser)
    assert "--nproc-per-node" not in argv and argv[argv.index("--batch-size") + 1] == "8"
    torchrun = subprocess.Popen(launch_command(argv, Launch(nproc_per_node=2)), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(r["kind"] == "epoch" and r["epoch"] >= 2 for r in _records(progress)):
            assert torchrun.poll() is None and time.monotonic() < deadline, torchrun.communicate()[0][-3000:]
            time.sleep(0.1)
        workers = _workers(torchrun.pid)
        os.kill(workers[1], signal.SIGKILL)  # one rank dies: torchrun stops the other and fails
        log = torchrun.communicate(timeout=60)[0]
    finally:
        if torchrun.poll() is None:
            torchrun.kill()
    assert torchrun.returncode != 0, log
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers.values())
    records = _records(progress)
    ready = records[0]
    assert ready["kind"] == "ready" and ready["processes"] == 2 and ready["global_batch"] == 16
    assert "a global batch of 16 = 8 per process × 2" in log
    epochs = read_resume(two)[0]["epochs_done"]  # the last checkpoint rank 0 wrote whole (atomically)
    assert 1 <= epochs < 60 and load_model(str(two), "cpu").class_names == ["cats", "dogs"]

    one = tmp_path / "one.pt"
    code, stdout, _ = run_cli(capsys, "train", *recipe, "--epochs", str(epochs), "--batch-size", "16", "--out", one,
                              "--gradient-csv", tmp_path / "g.csv", "--json")
    assert code == 0 and last_json(stdout)["global_batch"] == 16
    a, b = _weights(one), _weights(two)
    assert max(float((a[k] - b[k]).abs().max() / (a[k].abs().max() + 1e-12)) for k in a) < TOLERANCE
    # the logged figures: each step's loss over the global batch, and each epoch's validation accuracy
    single = read_resume(one)[0]["history"]
    batches = [r for r in records if r["kind"] == "batch" and r["epoch"] <= epochs + 1e-9]
    assert np.allclose([r["loss"] for r in batches], single["loss"].numpy(), rtol=TOLERANCE, atol=1e-6)
    assert [r["val_acc"] for r in records if r["kind"] == "epoch"][:epochs] == single["val_acc"].tolist()

    # resumed in one process: the checkpoint holds the plain module's weights, whatever the process count
    code, stdout, _ = run_cli(capsys, "train", "--resume", two, "--epochs", str(epochs + 1), "--out", two, "--json")
    assert code == 0 and last_json(stdout)["epochs"] == epochs + 1 and last_json(stdout)["processes"] == 1


def test_evaluate_in_two_processes_reports_what_one_process_does(tmp_path, capsys):
    """Noise images labelled 0-2 for LeNet-5's digit classes give many mistakes of many confidences, so the merged
    mistakes, confusion and per-class figures are all exercised; 31 images split 16/15 between the ranks, across
    batch boundaries (batch 4). The ranks are forked from this process (no torch import to pay), with the
    environment torchrun gives, so they run the same code path as under torchrun."""
    rng = np.random.default_rng(0)
    for i in range(31):
        folder = tmp_path / "noise" / str(i % 3)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    command = ["evaluate", "--model", "builtin:lenet5", "--data", str(tmp_path / "noise"), "--batch-size", "4",
               "--device", "cpu", "--json"]
    code, stdout, _ = run_cli(capsys, *command)
    single = last_json(stdout)
    first, second = forked_ranks(command, tmp_path)
    merged = last_json(first)
    assert second == ""  # only rank 0 reports
    assert code == 0 and single["count"] == 31 and len(single["mistakes"]) > 5
    for entry in (single, merged):
        for mistake in entry["mistakes"]:
            mistake["prob"] = round(mistake["prob"], 5)  # float32 softmax of the same image: equal to ~1e-7
    assert merged == single


def test_a_user_error_under_nproc_per_node_is_one_line_and_status_2(capfd, tmp_path):
    from cnnexplorer.cli import main

    code = main(["evaluate", "--model", "builtin:shapes", "--data", str(tmp_path / "missing"), "--nproc-per-node", "2"])
    out, err = capfd.readouterr()
    assert code == 2 and out == ""
    lines = err.splitlines()  # said once, with no report of failed processes after it
    assert len(lines) == 1 and lines[0].startswith(f"cnnexplorer: error: data folder not found: {tmp_path / 'missing'};")
