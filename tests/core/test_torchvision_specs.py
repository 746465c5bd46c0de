"""``torchvision:ARCH[:WEIGHTS]`` specs end to end: cache, mirror download, offline fallback."""

from __future__ import annotations

import io

import pytest
import torch
import torchvision

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Progress, drive
from cnnexplorer.core.models import open_model
from cnnexplorer.core.weights import WeightsUnavailable, cache_path
from tests.conftest import closed_port_url

WEIGHTS = torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1


def saved_state(seed: int) -> tuple[bytes, dict]:
    torch.manual_seed(seed)
    state = torchvision.models.squeezenet1_1(weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), state


def test_default_weights_are_fetched_from_the_mirror_and_hash_checked(hub_dir, server, monkeypatch):
    """The download goes to $CNNEXPLORER_WEIGHTS_MIRROR; a file whose SHA-256 does not match
    the prefix in torchvision's file name is refused and not cached."""
    name = WEIGHTS.url.rsplit("/", 1)[-1]
    server.files[name] = saved_state(1)[0]
    monkeypatch.setenv("CNNEXPLORER_WEIGHTS_MIRROR", server.url(""))
    items: list = []
    with pytest.raises(UserError, match="damaged"):
        drive(open_model("torchvision:squeezenet1_1", "cpu"), items.append)
    assert server.requests == [name]
    assert any(isinstance(p, Progress) and p.message == f"downloading {name}" for p in items)
    assert not cache_path(WEIGHTS).exists()


def test_cached_weights_need_no_network(hub_dir, monkeypatch):
    monkeypatch.setenv("CNNEXPLORER_WEIGHTS_MIRROR", closed_port_url(""))
    data, state = saved_state(2)
    path = cache_path(WEIGHTS)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    handle = drive(open_model("torchvision:squeezenet1_1:IMAGENET1K_V1", "cpu"))
    assert handle.trained and handle.spec == "torchvision:squeezenet1_1:IMAGENET1K_V1"
    assert handle.class_names[0] == "tench" and len(handle.class_names) == 1000
    assert handle.preprocessing.size == (224, 224) and handle.preprocessing.resize == 256
    assert torch.equal(handle.module.state_dict()["features.0.weight"], state["features.0.weight"])


def test_offline_without_cache_is_a_clear_error(hub_dir, monkeypatch):
    monkeypatch.setenv("CNNEXPLORER_WEIGHTS_MIRROR", closed_port_url(""))
    with pytest.raises(WeightsUnavailable) as info:
        drive(open_model("torchvision:squeezenet1_1", "cpu"))
    assert info.value.arch == "squeezenet1_1"
    assert "torchvision:squeezenet1_1:none" in str(info.value)
    assert str(cache_path(WEIGHTS)) in str(info.value)
