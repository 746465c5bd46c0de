"""core/distributed.py in one process (the two-process runs are in tests/cli/test_train_distributed.py) and the
training data's rank shares, which must together be exactly the single process's batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnexplorer.core import distributed
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.training.data import open_data
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
    assert distributed.launched() and distributed.world().rank == 3


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
