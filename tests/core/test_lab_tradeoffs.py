"""The design trade-offs reproduce the course's figures, and real layers have the counted parameters."""

from __future__ import annotations

import pytest
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.lab.tradeoffs import (TRADEOFFS, bottleneck, depthwise_separable, factorised,
                                            inception_reduction, seven_vs_three)


def params(*layers: nn.Module) -> int:
    return sum(p.numel() for layer in layers for p in layer.parameters())


@pytest.mark.parametrize("c", [1, 16, 64])
def test_one_7x7_against_three_3x3(c):
    t = seven_vs_three(c)
    assert t.before_total == 49 * c * c + c and t.after_total == 27 * c * c + 3 * c
    assert t.before_total == params(nn.Conv2d(c, c, 7))
    assert t.after_total == params(*(nn.Conv2d(c, c, 3) for _ in range(3)))
    assert t.facts["receptive_fields"] == [3, 5, 7] and t.coefficients == (49, 27)
    if c >= 16:
        assert round(t.saving * 100) == 45


def test_bottleneck_and_factorisation_in_c_squared():
    c = 64
    b = bottleneck(c)
    assert b.before_total == 9 * c * c and b.after_total == 3.25 * c * c and b.coefficients == (9, 3.25)
    assert b.after_total == params(nn.Conv2d(c, c // 2, 1, bias=False), nn.Conv2d(c // 2, c // 2, 3, bias=False),
                                   nn.Conv2d(c // 2, c, 1, bias=False))
    f = factorised(c)
    assert f.before_total == 9 * c * c and f.after_total == 6 * c * c
    assert f.after_total == params(nn.Conv2d(c, c, (1, 3), bias=False), nn.Conv2d(c, c, (3, 1), bias=False))
    with pytest.raises(UserError, match="even"):
        bottleneck(7)


def test_depthwise_separable_19200_against_843():
    t = depthwise_separable()
    assert (t.before_total, t.after_total) == (19_200, 843)
    assert t.after_total == params(nn.Conv2d(3, 3, 5, groups=3, bias=False), nn.Conv2d(3, 256, 1, bias=False))
    assert t.facts["macs"]["before"] == 1_228_800 and t.facts["macs"]["after"] == 53_952


def test_inception_854m_naive_and_the_reduced_module():
    t = inception_reduction()
    assert t.before_total == 854_196_224 and round(t.before_total / 1e6) == 854
    assert [term.formula for term in t.after][3] == "28×28×192×3×3×64"
    assert t.after_total == 271_351_808
    assert round(t.facts["course_printed_after"] / 1e6) == 358 and "counted twice" in t.note
    assert inception_reduction(14).note == ""


def test_every_tradeoff_serialises():
    for name, make in TRADEOFFS.items():
        data = make().to_json()
        assert data["name"] == name and data["before_total"] > data["after_total"] > 0


def test_batchnorm_stats_reproduce_the_layer_at_inference():
    import numpy as np
    import torch

    from cnnexplorer.core.lab.batchnorm import batchnorm_layers, batchnorm_stats

    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4)
    bn.train()
    bn(torch.randn(8, 4, 5, 5) * 3 + 1)  # move the running statistics
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    stats = batchnorm_stats(bn, "bn")
    x = torch.randn(2, 4, 3, 3)
    expected = bn(x).detach().double().numpy()
    got = stats.scale[None, :, None, None] * x.double().numpy() + stats.shift[None, :, None, None]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert stats.running_var.shape == (4,) and stats.to_json()["channels"] == 4
    assert batchnorm_layers(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))) == ["1"]
    with pytest.raises(UserError, match="not a batch-norm layer"):
        batchnorm_stats(nn.ReLU(), "relu")
