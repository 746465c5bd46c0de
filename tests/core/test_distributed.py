"""core/distributed.py in one process, the training data's rank shares (together exactly the single process's
batches), and a NaN or an out-of-memory on one of two forked gloo ranks stopping both (the torchrun launches are
in tests/cli/test_train_distributed.py)."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnnexplorer.core import distributed
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.data import DataSource, open_data
from cnnexplorer.core.training.loop import train
from cnnexplorer.core.training.transfer import prepare_model
from tests.cli.test_train import make_folder


def test_shards_are_contiguous_balanced_and_cover_every_item_once():
    for n in range(12):
        for size in range(1, 5):
            parts = [distributed.shard_range(n, rank, size) for rank in range(size)]
            assert [i for part in parts for i in part] == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_one_process_is_rank_0_of_1_and_every_reduction_is_the_identity(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.world() == distributed.World(0, 1, 0) and distributed.is_main() and not distributed.launched()
    values = np.array([1.5, 2.0])
    assert np.array_equal(distributed.all_reduce_sum(values), values)
    rows = np.arange(6).reshape(3, 2)
    assert distributed.gather_in_order(rows) is rows
    assert distributed.gather_objects({"a": 1}) == [{"a": 1}]
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    assert distributed.flags_by_rank(2).tolist() == [2]
    with distributed.process_group() as here:  # outside torchrun: nothing to join
        assert here.size == 1
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert distributed.launched() and distributed.world().size == 1  # not joined yet: no rank to wait for


def test_launch_settings_and_command():
    command = distributed.launch_command(["train", "--epochs", "1"], distributed.Launch(nproc_per_node=2, master_port=29511))
    assert command[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=2" in command
    assert "--master-port=29511" in command and command[-5:] == ["-m", "cnnexplorer", "train", "--epochs", "1"]
    with pytest.raises(UserError, match="--master-addr"):
        distributed.Launch(nproc_per_node=1, nnodes=2)
    with pytest.raises(UserError, match="node-rank"):
        distributed.Launch(nnodes=2, node_rank=2, master_port=29500)
    assert 0 < distributed.free_port() < 65536


@pytest.mark.parametrize("kind", ["folder", "digits"])
def test_two_ranks_of_b_images_see_exactly_the_single_batches_of_2b(tmp_path, kind):
    """A folder goes through the DistributedSampler (38 training images: an uneven last batch), the digits through
    slices of the global batch; validation shares cover the validation part once, in order."""
    spec = f"folder:{make_folder(tmp_path / 'pets')}" if kind == "folder" else "builtin:digits"
    data = open_data(spec, (1, 32, 32), seed=5)
    for epoch in (0, 1):
        single = list(data.train_batches(16, 5, epoch))
        ranks = [list(data.train_batches(8, 5, epoch, rank, 2)) for rank in (0, 1)]
        assert len(ranks[0]) == len(ranks[1]) == len(single) == data.steps_per_epoch(8, 2)
        for whole, part0, part1 in zip(single, *ranks):
            joined = torch.cat([part0[0], part1[0]])
            order = torch.argsort(joined.flatten(1).sum(1) * 1e3 + torch.cat([part0[1], part1[1]]))
            expected = torch.argsort(whole[0].flatten(1).sum(1) * 1e3 + whole[1])
            assert torch.equal(joined[order], whole[0][expected])
    val = torch.cat([images for images, _ in data.val_batches(4)])
    shared = torch.cat([images for rank in (0, 1) for images, _ in data.val_batches(4, rank, 2)])
    assert torch.equal(torch.sort(val.flatten(1).sum(1))[0], torch.sort(shared.flatten(1).sum(1))[0])


class _FailsOnRank1(nn.Module):
    """LeNet-5 whose forward pass on rank 1 runs out of memory (torch's own error) at its third training step."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, x):
        self.calls += self.training
        if self.training and self.calls == 3 and distributed.world().rank == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.module(x)


def _train_rank(rank: int, port: int, problem: str, out: str) -> None:
    """A forked rank (torchrun's environment, gloo) training LeNet-5 on noise where rank 1 meets ``problem`` at
    step 3; writes how its run ended and exits at once."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    torch.set_num_threads(1)
    ended = "finished"
    try:
        with distributed.process_group("gloo", "cpu"):
            handle = load_model("builtin:lenet5", "cpu")
            gen = torch.Generator().manual_seed(0)
            images, labels = torch.rand(40, 1, 32, 32, generator=gen), torch.arange(40) % 2

            def shard(batch, seed, epoch, rank_, size):
                for step, start in enumerate(range(0, 32, batch * size)):
                    part = images[start + rank_ * batch: start + (rank_ + 1) * batch].clone()
                    if problem == "nan" and rank_ == 1 and step == 2:
                        part[0, 0, 0, 0] = float("nan")
                    yield part, labels[start + rank_ * batch: start + (rank_ + 1) * batch]

            data = DataSource("noise", ["a", "b"], 32, 8, lambda *a: iter(()),
                              lambda batch: iter([(images[32:], labels[32:])]), _train_shard=shard)
            handle = prepare_model(handle, data.class_names)
            if problem == "oom":
                handle = replace(handle, module=_FailsOnRank1(handle.module))
            result = drive(train(handle, data, TrainConfig(epochs=1, batch_size=4, snapshots=False), arch="x"))
            ended = result.stopped or "finished"
    except UserError as exc:
        ended = f"error: {exc}"
    finally:
        Path(out).write_text(ended)
        os._exit(0)


@pytest.mark.parametrize("problem", ["nan", "oom"])
def test_a_nan_or_out_of_memory_on_one_rank_stops_both_at_the_same_step(tmp_path, problem):
    """Two ranks forked from this process (no torch import to pay) with torchrun's environment."""
    fork = multiprocessing.get_context("fork")
    port = distributed.free_port()
    ranks = [fork.Process(target=_train_rank, args=(rank, port, problem, str(tmp_path / f"{rank}.txt")))
             for rank in (0, 1)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(60)
    ended = [(tmp_path / f"{rank}.txt").read_text() for rank in (0, 1)]
    assert ended[0] == ended[1], ended
    if problem == "nan":
        assert ended[0].startswith("the loss became non-finite on rank 1 at step 3 (epoch 1)"), ended
    else:
        assert ended[0].startswith("error: rank 1 ran out of memory at step 3 (epoch 1) with 4 images per process"), ended
        assert "--batch-size 2" in ended[0]


def test_rank_0s_progress_lines_come_back_as_the_loops_items_and_a_half_line_waits(tmp_path):
    from cnnexplorer.core.training.gradient_flow import GradientFlow
    from cnnexplorer.core.training.loop import BatchMetrics
    from cnnexplorer.core.training.progress_log import ProgressTail, ProgressWriter, item_of, record_of

    path = tmp_path / "p.jsonl"
    tail, writer = ProgressTail(path), ProgressWriter(path)
    assert tail.read() == []
    batch = BatchMetrics(1, 0.5, 0.7, 0.5, 1e-3, 100.0, 0.2, None, 2)
    flow = GradientFlow(1, ("a", "b"), np.array([0.5, 0.0]), np.array([1e-3, np.nan]))
    writer.write(record_of(batch))
    writer.write(record_of(flow))
    writer.file.write('{"kind": "done", "epo')  # rank 0 is still writing this line
    writer.file.flush()
    items = [item_of(r) for r in tail.read()]
    assert items[0] == batch and items[1].layers == flow.layers and np.isnan(items[1].update_ratios[1])
    writer.file.write('chs": 1}\n')
    writer.close()
    assert tail.read() == [{"kind": "done", "epochs": 1}]
