"""Weights cache and downloads, against an HTTP server the test runs on 127.0.0.1."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torchvision

from cnnexplorer.core.errors import UserError
from tests.conftest import closed_port_url
from cnnexplorer.core.jobs import Progress, drive
from cnnexplorer.core.weights import (
    WeightsUnavailable,
    cache_path,
    download,
    hash_prefix,
    fetch_weights,
    is_cached,
    pretrained_torchvision,
)

RESNET18 = torchvision.models.ResNet18_Weights.IMAGENET1K_V1


@pytest.fixture
def tiny_file(tmp_path) -> tuple[str, bytes, dict]:
    """A real saved state_dict, named ``tiny-<sha256 prefix>.pth`` like torchvision's files."""
    torch.manual_seed(0)
    state = torch.nn.Linear(64, 32).state_dict()
    path = tmp_path / "tiny.pth"
    torch.save(state, path)
    data = path.read_bytes()
    return f"tiny-{hashlib.sha256(data).hexdigest()[:8]}.pth", data, state


def collect(job) -> tuple[list[Progress], object]:
    items: list[Progress] = []
    result = drive(job, items.append)
    return items, result


def test_cache_path_follows_torch_hub(hub_dir):
    assert cache_path(RESNET18) == hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    assert hash_prefix(cache_path(RESNET18).name) == "f37072fd"
    assert not is_cached(RESNET18)


def test_download_reports_progress_and_caches(hub_dir, server, tiny_file):
    name, data, state = tiny_file
    server.files[name] = data
    items, path = collect(fetch_weights(RESNET18, url=server.url(name)))
    loaded = torch.load(path, weights_only=True)

    downloads = [p.done for p in items if p.message == f"downloading {name}"]
    assert downloads == sorted(downloads) and downloads[0] == 0 and downloads[-1] == len(data)
    assert all(p.total == len(data) for p in items if p.message.startswith("downloading"))
    assert (hub_dir / "checkpoints" / name).read_bytes() == data
    assert sorted(loaded) == sorted(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)

    assert drive(fetch_weights(RESNET18, url=server.url(name))) == path
    assert server.requests == [name]


def test_small_chunks_give_many_progress_steps(hub_dir, server, tiny_file):
    name, data, _ = tiny_file
    server.files[name] = data
    dest = hub_dir / "checkpoints" / name
    items, result = collect(download(server.url(name), dest, hash_prefix(name), chunk=1024))
    assert result == dest and dest.read_bytes() == data
    assert [p.done for p in items] == [min(i * 1024, len(data)) for i in range(len(items))]


def test_hash_mismatch_is_rejected_and_nothing_cached(hub_dir, server, tiny_file):
    _, data, _ = tiny_file
    wrong = "tiny-00000000.pth"
    server.files[wrong] = data
    with pytest.raises(UserError, match="damaged"):
        drive(fetch_weights(RESNET18, url=server.url(wrong)))
    assert list((hub_dir / "checkpoints").iterdir()) == []


def test_no_network_names_cache_path_and_random_fallback(hub_dir):
    with pytest.raises(WeightsUnavailable) as info:
        drive(fetch_weights(RESNET18, url=closed_port_url("resnet18-f37072fd.pth")))
    message = str(info.value)
    assert str(cache_path(RESNET18)) in message
    assert "no network" in message and "torchvision:resnet18:none" in message
    assert info.value.arch == "resnet18"
    assert list((hub_dir / "checkpoints").iterdir()) == []


def test_dropped_connection_leaves_no_partial_file(hub_dir, server, tiny_file):
    name, data, _ = tiny_file
    server.files[name] = data
    server.drop.add(name)
    with pytest.raises(WeightsUnavailable, match="connection closed"):
        drive(fetch_weights(RESNET18, url=server.url(name)))
    assert list((hub_dir / "checkpoints").iterdir()) == []


def test_closing_the_job_midway_leaves_no_file(hub_dir, server, tiny_file):
    name, data, _ = tiny_file
    server.files[name] = data
    dest = hub_dir / "checkpoints" / name
    job = download(server.url(name), dest, chunk=1024)
    next(job), next(job), next(job)
    assert len(list(dest.parent.iterdir())) == 1
    job.close()
    assert list(dest.parent.iterdir()) == []


def test_cached_torchvision_weights_load_without_network(hub_dir):
    """torchvision's own builder finds the file in the cache and loads it."""
    state = torchvision.models.resnet18(weights=None).state_dict()
    cache_path(RESNET18).parent.mkdir(parents=True)
    torch.save(state, cache_path(RESNET18))
    assert is_cached(RESNET18)
    loaded = drive(pretrained_torchvision("resnet18", RESNET18)).state_dict()
    assert torch.equal(loaded["fc.weight"], state["fc.weight"])


def test_damaged_cache_file_is_a_user_error(hub_dir):
    cache_path(RESNET18).parent.mkdir(parents=True)
    cache_path(RESNET18).write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="delete it"):
        drive(pretrained_torchvision("resnet18", RESNET18))
