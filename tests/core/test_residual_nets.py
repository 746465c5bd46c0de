"""The residual net for the shapes and its plain twin: same layers, a shortcut switch, and they train."""

from __future__ import annotations

import pytest
import torch

from cnnexplorer.core.builtin import BUILTIN_MODELS
from cnnexplorer.core.builtin.residual_nets import ResidualShapesNet, depth_blocks


def weight_layers(module: torch.nn.Module) -> int:
    return sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in module.modules())


def test_twins_have_the_same_layers_and_differ_only_in_shortcuts():
    residual, plain = BUILTIN_MODELS["resnet-shapes-20"].build(), BUILTIN_MODELS["plainnet-shapes-20"].build()
    assert residual.shortcuts and not plain.shortcuts
    assert weight_layers(residual) == weight_layers(plain) == residual.depth == 20
    assert [(n, p.shape) for n, p in residual.named_parameters()] == [(n, p.shape) for n, p in plain.named_parameters()]
    assert weight_layers(BUILTIN_MODELS["plainnet-shapes-8"].build()) == 8
    plain.load_state_dict(residual.state_dict())
    x = torch.rand(2, 3, 64, 64)
    residual.eval(), plain.eval()
    with torch.no_grad():
        assert not torch.allclose(residual(x), plain(x))
        plain.shortcuts = True  # the switch makes the plain twin the residual net
        torch.testing.assert_close(residual(x), plain(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="6·n \\+ 2"):
        depth_blocks(21)


def test_one_training_step_lowers_the_loss_on_a_batch():
    torch.manual_seed(0)
    net = ResidualShapesNet(6, blocks=1)
    x, y = torch.rand(16, 3, 64, 64), torch.randint(0, 6, (16,))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert net(x).shape == (16, 6) and losses[-1] < losses[0]
    assert all(p.grad is not None for p in net.parameters())
