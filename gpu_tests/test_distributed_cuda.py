"""Distributed training on CUDA: ``make test-gpu`` on a machine with a GPU (not run by CI).

Two processes under torchrun: with two or more GPUs, one each on nccl; with one GPU, both share it
on gloo (nccl refuses two processes on one GPU). The recipe is CPU tests' (LeNet-5: no batch norm,
no dropout, SGD, constant rate), so the two-process weights must be a single CUDA process's with the
same global batch, within 1e-4 (cuDNN's convolution backward sums in an order of its own). A
batch-norm model with ``--sync-bn`` must train and write a checkpoint that loads as a plain model.
"""

from __future__ import annotations

import pytest
import torch

import cnnexplorer  # noqa: F401 - first, as in the app: it sets the OpenMP wait policy before torch loads
from cnnexplorer.cli import main
from cnnexplorer.core.checkpoints import read_model_file
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.state import read_resume
from tests.cli.test_train import make_folder

TOLERANCE = 1e-4


@pytest.fixture(scope="module", autouse=True)
def cuda():
    assert torch.cuda.is_available(), "make test-gpu needs a CUDA GPU; on a machine without one, run make test"


def _backend() -> str:
    return "nccl" if torch.cuda.device_count() >= 2 else "gloo"


def test_two_cuda_processes_train_as_one(tmp_path):
    data = make_folder(tmp_path / "pets")
    recipe = ["train", "--model", "builtin:lenet5", "--data", f"folder:{data}", "--optimizer", "sgd", "--lr", "0.05",
              "--schedule", "none", "--epochs", "3", "--device", "cuda", "--precision", "fp32"]
    assert main([*recipe, "--batch-size", "16", "--out", str(tmp_path / "one.pt")]) == 0
    assert main([*recipe, "--batch-size", "8", "--out", str(tmp_path / "two.pt"), "--nproc-per-node", "2",
                 "--backend", _backend()]) == 0
    one, two = (read_model_file(tmp_path / f"{n}.pt").state_dict for n in ("one", "two"))
    assert max(float((one[k] - two[k]).abs().max() / (one[k].abs().max() + 1e-12)) for k in one) < TOLERANCE
    assert read_resume(tmp_path / "two.pt")[0]["epochs_done"] == 3


def test_sync_batch_norm_trains_and_its_checkpoint_is_a_plain_model(tmp_path):
    out = tmp_path / "bn.pt"
    assert main(["train", "--model", "builtin:shapes", "--scratch", "--data", "builtin:shapes", "--epochs", "1",
                 "--batch-size", "32", "--device", "cuda", "--sync-bn", "--nproc-per-node", "2", "--backend",
                 _backend(), "--out", str(out)]) == 0
    handle = load_model(str(out), "cuda")
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in handle.module.modules())
    assert read_resume(out)[0]["val_acc"] > 1 / 6


def test_two_cuda_processes_evaluate_as_one(tmp_path, capfd):
    from tests.cli.cli_helpers import last_json

    command = ["evaluate", "--model", "builtin:shapes", "--data", "builtin:shapes", "--device", "cuda", "--json"]
    assert main(command) == 0
    single = last_json(capfd.readouterr().out)
    assert main([*command, "--nproc-per-node", "2", "--backend", _backend()]) == 0
    merged = last_json(capfd.readouterr().out)
    assert merged["count"] == single["count"] and merged["confusion"] == single["confusion"]
