"""The layer table: parameter and MAC figures, receptive fields, and leaving the model untouched."""

from __future__ import annotations

import json
from collections import namedtuple

import pytest
import torch
import torchvision
from torch import nn

from cnnexplorer.core.architecture import summarize
from cnnexplorer.core.builtin.nets import ShapesNet, TinyVGG
from cnnexplorer.core.errors import UserError


@pytest.fixture(scope="module")
def resnet50():
    model = torchvision.models.resnet50(weights=None)
    return model, summarize(model, (3, 224, 224), model_name="resnet50")


@pytest.fixture(scope="module")
def vgg16():
    model = torchvision.models.vgg16(weights=None)
    return model, summarize(model, (3, 224, 224), model_name="vgg16")


def rf(summary, name):
    layer = summary.layer(name)
    return layer.rf_size, layer.rf_jump


def test_resnet50_params_and_macs(resnet50):
    model, summary = resnet50
    assert summary.total_params == sum(p.numel() for p in model.parameters()) == 25_557_032
    assert summary.trainable_params == summary.total_params
    assert summary.macs == pytest.approx(4.09e9, rel=0.02)
    assert summary.layer("fc").macs == 2048 * 1000
    assert summary.layer("conv1").macs == 64 * 112 * 112 * 3 * 7 * 7


def test_vgg16_params_macs_and_formula(vgg16):
    model, summary = vgg16
    assert summary.total_params == sum(p.numel() for p in model.parameters()) == 138_357_544
    assert summary.macs == pytest.approx(15.5e9, rel=0.02)
    assert summary.layer("features.0").param_formula == "64 × (3·3·3 + 1) = 1,792"
    assert summary.layer("features").params == sum(p.numel() for p in model.features.parameters())
    assert summary.layer("features").macs == sum(summary.layer(f"features.{i}").macs for i in range(31))


def test_vgg16_receptive_fields(vgg16):
    _, summary = vgg16
    assert rf(summary, "features.0") == (3, 1)
    assert rf(summary, "features.4") == (6, 2)  # pool1
    assert rf(summary, "features.28") == (196, 16)  # conv5_3
    assert rf(summary, "features.30") == (212, 32)  # pool5
    layer = summary.layer("features.30")
    assert (layer.kernel_size, layer.stride, layer.padding) == ((2, 2), (2, 2), (0, 0))
    assert summary.layer("features.30").output_shape == (512, 7, 7)


def test_alexnet_receptive_fields():
    summary = summarize(torchvision.models.alexnet(weights=None), (3, 224, 224))
    assert rf(summary, "features.0") == (11, 4)
    assert rf(summary, "features.2") == (19, 8)
    assert rf(summary, "features.10") == (163, 16)
    assert rf(summary, "features.12") == (195, 32)


def test_resnet50_layer4_receptive_field_follows_the_main_path(resnet50):
    model, summary = resnet50
    # The stem and every bottleneck's conv1-conv2-conv3 form the longest path; shortcuts are shorter.
    chain = [model.conv1, model.maxpool] + [
        conv for stage in (model.layer1, model.layer2, model.layer3, model.layer4)
        for block in stage for conv in (block.conv1, block.conv2, block.conv3)
    ]
    size, jump = 1, 1
    for layer in chain:
        kernel, stride = (v[0] if isinstance(v, tuple) else v for v in (layer.kernel_size, layer.stride))
        size, jump = size + (kernel - 1) * jump, jump * stride
    assert (size, jump) == (427, 32)
    assert rf(summary, "layer4") == (size, jump)
    assert rf(summary, "layer4.0.downsample") < rf(summary, "layer4.0.conv3")


class Branchy(nn.Module):
    """Pooling, dilation, a concatenation, a stride and a residual add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.left = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
        self.right = nn.Conv2d(4, 4, 1)
        self.down = nn.Conv2d(8, 4, 3, stride=2, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = self.down(torch.cat([self.left(x), self.right(x)], 1))
        return x + self.conv2(self.conv1(x))


def test_receptive_field_matches_the_gradient_of_one_unit():
    torch.manual_seed(0)
    model = Branchy()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_().add_(0.01)  # all-positive: every pixel in the field gets a non-zero gradient
    summary = summarize(model, (1, 64, 64))

    def support(row, col):
        x = torch.ones(1, 1, 64, 64, requires_grad=True)
        model(x)[0, :, row, col].sum().backward()
        rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
        cols = torch.nonzero(x.grad[0, 0].abs().sum(0)).flatten()
        return int(rows[0]), int(rows[-1] - rows[0] + 1), int(cols[0]), int(cols[-1] - cols[0] + 1)

    top, height, left, width = support(8, 8)
    _, _, next_left, _ = support(8, 9)
    assert 0 < top and 0 < left and top + height < 64  # the field lies inside the image
    assert rf(summary, "") == (height, next_left - left) == (width, next_left - left) == (32, 4)


def test_reused_relu_appears_once_with_its_call_count(resnet50):
    _, summary = resnet50
    names = [layer.name for layer in summary.layers]
    assert len(names) == len(set(names))
    relu = summary.layer("layer1.0.relu")
    assert relu.calls == 3
    assert relu.output_shape == (64, 56, 56)  # the first call, after bn1 (the last one has 256)
    assert summary.layer("layer1.0.conv1").calls == 1


def test_model_without_convolutions():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 4))
    summary = summarize(model, (3, 8, 8))
    assert summary.macs == 192 * 16 + 16 * 4
    assert summary.layer("1").output_shape == (16,)
    assert summary.layer("1").param_formula == "16 × (192 + 1) = 3,088"
    assert all(layer.rf_size is None and layer.kernel_size is None for layer in summary.layers)


class WithUnusedBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.unused = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        return self.conv(x)


def test_module_not_called_in_the_probe():
    summary = summarize(WithUnusedBranch(), (3, 10, 10))
    unused = summary.layer("unused")
    assert unused.output_shape is None and unused.rf_size is None
    assert (unused.calls, unused.macs, unused.params) == (0, 0, 4 * 4 * 9 + 4)
    assert summary.layer("conv").output_shape == (4, 8, 8)


Outputs = namedtuple("Outputs", "logits aux")


class TupleOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        features = self.conv(x)
        return Outputs(self.pool(features).flatten(1), features)


def test_tuple_output_uses_the_first_tensor():
    summary = summarize(TupleOutput(), (3, 12, 12))
    assert summary.layer("").output_shape == (5,)
    assert rf(summary, "") == (12, 12)  # global pooling sees the whole input
    assert rf(summary, "conv") == (3, 1)


def test_attention_macs_and_field():
    class Patches(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 8, 4, stride=4)
            self.attention = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            tokens = self.embed(x).flatten(2).transpose(1, 2)
            return self.attention(tokens, tokens, tokens, need_weights=False)[0]

    summary = summarize(Patches(), (3, 16, 16))
    tokens, dim = 16, 8
    assert summary.layer("embed").macs == tokens * dim * 3 * 4 * 4
    assert summary.layer("attention").macs == 4 * tokens * dim * dim + 2 * tokens * tokens * dim
    assert rf(summary, "embed") == (4, 4)
    assert summary.layer("attention").rf_size == 16


def test_model_state_is_left_alone_and_hooks_removed():
    torch.manual_seed(0)
    model = ShapesNet(4)
    model.train()
    model.features[0].eval()
    for p in model.features[0].parameters():
        p.requires_grad_(False)
    training = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}

    summary = summarize(model, (3, 64, 64))

    assert [m.training for m in model.modules()] == training
    assert [p.requires_grad for p in model.parameters()] == grads
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # BN stats untouched
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    frozen = sum(p.numel() for p in model.features[0].parameters())
    assert summary.total_params - summary.trainable_params == frozen == summary.layer("features.0").frozen_params


def test_wrong_input_size_is_a_user_error_and_cleans_up():
    model = TinyVGG()
    with pytest.raises(UserError, match="3×32×32"):
        summarize(model, (3, 32, 32), model_name="builtin:tinyvgg")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert model.training


def test_json_follows_the_cli_contract():
    summary = summarize(TinyVGG(), (3, 64, 64), model_name="builtin:tinyvgg")
    data = json.loads(json.dumps(summary.to_json()))
    assert {"model", "input_size", "total_params", "trainable_params", "macs", "layers"} <= set(data)
    assert data["input_size"] == [3, 64, 64] and data["model"] == "builtin:tinyvgg"
    assert all({"name", "type", "output_shape", "params", "macs", "rf_size", "rf_jump"} <= set(layer)
               for layer in data["layers"])
    conv = next(layer for layer in data["layers"] if layer["name"] == "features.0")
    assert conv["output_shape"] == [10, 62, 62] and conv["macs"] == 10 * 62 * 62 * 27
    assert (conv["rf_size"], conv["rf_jump"]) == (3, 1)
    assert data["layers"][0]["name"] == "" and data["macs"] == data["layers"][0]["macs"]


def test_vgg16_conv_and_fully_connected_split_as_the_course_tabulates(vgg16):
    _, summary = vgg16
    assert summary.conv_params == 14_714_688 and round(summary.conv_params / 1e5) / 10 == 14.7
    assert summary.fc_params == 123_642_856 and round(summary.fc_params / 1e5) / 10 == 123.6
    assert summary.conv_params + summary.fc_params == summary.total_params
    assert summary.fc_macs == 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert summary.conv_macs + summary.fc_macs == summary.macs
    assert summary.to_json()["conv_params"] == summary.conv_params


def test_lenet5_split():
    from cnnexplorer.core.builtin.nets import LeNet5

    summary = summarize(LeNet5(), (1, 32, 32))
    assert (summary.conv_params, summary.fc_params) == (156 + 2416 + 48_120, 10_164 + 850)
    assert summary.conv_macs == 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 120 * 400


def test_floored_output_sizes_are_marked_from_the_layers_own_arithmetic():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.MaxPool2d(2), nn.MaxPool2d(2, ceil_mode=True),
                          nn.Conv2d(4, 4, 3, padding=1))
    summary = summarize(model, (3, 10, 14))
    first = summary.layer("0")  # 10×14 input: (10 − 3)/2 + 1 = 4.5 along the height, 6.5 along the width
    assert first.floored and "(10 − 3 + 2·0)/2 + 1 = 4.5 (along the height)" in first.floor_note
    assert "floors it to 4" in first.floor_note and first.output_shape == (4, 4, 6)
    assert summary.layer("1").floored is False  # 4×6 → 2×3
    assert summary.layer("2").floored and "ceil_mode rounds it up to 2" in summary.layer("2").floor_note
    assert summary.layer("3").floored is False and summary.layer("").floored is None
    alexnet = summarize(torchvision.models.alexnet(weights=None), (3, 224, 224))
    assert alexnet.layer("features.0").floored and "55.25" in alexnet.layer("features.0").floor_note
    assert [layer.name for layer in alexnet.layers if layer.floored] == ["features.0"]
