"""The course's design blocks found in real torchvision models (built on the meta device: no weights, no cost)."""

from __future__ import annotations

from collections import Counter

import torch
import torchvision
from torch import nn

from cnnexplorer.core.lab.blocks import find_blocks


def meta_model(arch: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, arch)(**kwargs)


def kinds(blocks) -> Counter:
    return Counter(b.kind for b in blocks)


def test_resnet50_bottlenecks_and_resnet18_stacked_pairs():
    blocks = find_blocks(meta_model("resnet50"), (3, 64, 64))
    assert kinds(blocks) == {"bottleneck": 16}
    assert blocks[0].layers == ("layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3") and blocks[0].layer == "layer1.0.conv1"
    pairs = find_blocks(meta_model("resnet18"), (3, 64, 64))
    assert kinds(pairs) == {"stacked_3x3": 8}  # the residual add ends each pair
    assert pairs[-1].layers == ("layer4.1.conv1", "layer4.1.conv2")


def test_vgg16_stacks_of_two_and_three():
    blocks = find_blocks(meta_model("vgg16"), (3, 64, 64))
    assert [len(b.layers) for b in blocks] == [2, 2, 3, 3, 3] and kinds(blocks) == {"stacked_3x3": 5}
    assert blocks[2].layers == ("features.10", "features.12", "features.14")


def test_mobilenet_v2_depthwise_separable_pairs():
    blocks = find_blocks(meta_model("mobilenet_v2"), (3, 64, 64))
    assert kinds(blocks) == {"depthwise_separable": 17}
    assert blocks[1].layers == ("features.2.conv.1.0", "features.2.conv.2")


def test_inception_v3_reductions_and_factorised_pairs():
    blocks = find_blocks(meta_model("inception_v3", init_weights=False), (3, 299, 299))
    found = {(b.kind, b.layers) for b in blocks}
    assert ("reduction_1x1", ("Mixed_5b.branch5x5_1.conv", "Mixed_5b.branch5x5_2.conv")) in found
    assert ("factorised", ("Mixed_6b.branch7x7_2.conv", "Mixed_6b.branch7x7_3.conv")) in found  # 1×7 then 7×1
    assert ("factorised", ("Mixed_7b.branch3x3_2a.conv", "Mixed_7b.branch3x3_2b.conv")) in found  # side by side
    assert kinds(blocks)["reduction_1x1"] >= 15 and kinds(blocks)["factorised"] >= 10
    assert all(b.text for b in blocks)
