"""Hooks never outlive a capture, in-place ops don't change recordings, nothing leaks."""

from __future__ import annotations

import gc
import threading

import pytest
import torch
from torch import nn

from cnnexplorer.core.activations import capture
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import find_layer, output_tensors, record_outputs
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing


def handle_for(module: nn.Module, size: int = 8) -> ModelHandle:
    return ModelHandle("test", module, torch.device("cpu"), Preprocessing(3, (size, size), (0.0,) * 3, (1.0,) * 3),
                       [], "none", False)


class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def no_hooks(module: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in module.modules())


def live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                         nn.Conv2d(4, 4, 3), nn.ReLU())


def test_find_layer_suggests_close_names():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3)))
    assert find_layer(net, "0.0") is net[0][0]
    assert find_layer(net, "") is net
    with pytest.raises(UserError, match=r"unknown layer '0\.1'; did you mean 0\.0"):
        find_layer(net, "0.1")


def test_no_hooks_remain_and_no_tensors_leak_after_100_captures():
    handle = handle_for(small_net())
    pixels = torch.rand(3, 8, 8)
    for _ in range(3):
        capture(handle, pixels)
    before = live_tensors()
    for _ in range(100):
        recorded = capture(handle, pixels)
    del recorded
    assert no_hooks(handle.module)
    assert live_tensors() == before


def test_hooks_are_removed_and_nothing_leaks_when_the_forward_raises():
    handle = handle_for(nn.Sequential(small_net(), Boom()))
    pixels = torch.rand(3, 8, 8)
    with pytest.raises(RuntimeError, match="boom"):
        capture(handle, pixels)
    before = live_tensors()
    for _ in range(100):
        with pytest.raises(RuntimeError, match="boom"):
            capture(handle, pixels)
    assert no_hooks(handle.module)
    assert live_tensors() == before


def test_recordings_are_copies_taken_before_later_in_place_ops():
    net = small_net().eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad(), record_outputs(net, ["1", "2"]) as records:
        net(x)
        expected_bn = net[1](net[0](x))
    assert (records["1"][0][0] < 0).any(), "batch norm output lost its negatives to the in-place ReLU"
    torch.testing.assert_close(records["1"][0][0], expected_bn)
    torch.testing.assert_close(records["2"][0][0], expected_bn.relu())


def test_forward_passes_of_other_threads_are_not_recorded():
    net = small_net().eval()
    mine, theirs = torch.randn(1, 3, 8, 8), torch.randn(2, 3, 8, 8)
    with torch.no_grad(), record_outputs(net, ["0"]) as records:
        other = threading.Thread(target=lambda: net(theirs))
        other.start()
        other.join()
        net(mine)
    assert len(records["0"]) == 1
    torch.testing.assert_close(records["0"][0][0], net[0](mine))


def test_output_tensors_flattens_tuples_lists_and_dicts_in_order():
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    found = output_tensors((a, {"x": b, "skip": None}, [c, "text"]))
    assert [float(t) for t in found] == [0.0, 1.0, 2.0]
    assert output_tensors(None) == ()
