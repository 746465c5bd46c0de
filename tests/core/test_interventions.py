"""Interventions: edits are hooks that change the layer's output only while they are on, the text
form parses and refuses clearly, and the batched sweep equals switching channels off one by one."""

from __future__ import annotations

import pytest
import torch
import torchvision

from cnnexplorer.core.builtin.shapes_data import validation_set
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.interventions import (Edit, Installed, applied, describe, parse_edit, parse_edits, sweep_job,
                                            with_means)
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing
from cnnexplorer.core.models import load_model


@pytest.fixture(scope="module")
def shapes():
    return load_model("builtin:shapes", "cpu"), validation_set(8).images


def hooks_left(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in module.modules())


def test_the_text_forms_parse_and_print_back():
    assert parse_edit("features.2.0:0,5,9-12") == Edit("features.2.0", (0, 5, 9, 10, 11, 12), "zero")
    assert parse_edit("a.b:0,5=mean") == Edit("a.b", (0, 5), "mean")
    assert parse_edit("a:3*0.5") == Edit("a", (3,), "scale", 0.5)
    assert parse_edit("a:keep=1,2") == Edit("a", (1, 2), "keep")
    for text in ("features.2.0:0,5,9-12", "a.b:0,5=mean", "a:3*0.5", "a:keep=1-2"):
        assert parse_edit(text).spec() == text
    assert describe(()) == ""
    edits = with_means(parse_edits(["a:1=mean", "b:2"]), {"a": [0.0, 0.25]})
    assert describe(edits) == "a:1=mean[0.25]; b:2" and Edit.from_json(edits[0].to_json()) == edits[0]


@pytest.mark.parametrize("text, words", [("conv", ["LAYER:CHANNELS"]), ("a:x", ["'x'", "9-12"]),
                                         ("a:5-2", ["'5-2'"]), ("a:1*z", ["'z'", "finite"])])
def test_bad_texts_are_one_clear_line(text, words):
    with pytest.raises(UserError) as caught:
        parse_edit(text)
    assert all(w in str(caught.value) for w in words) and "\n" not in str(caught.value)


def test_a_channel_out_of_range_names_the_layer_and_its_range(shapes):
    handle, images = shapes
    with pytest.raises(UserError, match=r"layer features.0.0 has channels 0-23; channel 24 does not exist"):
        with applied(handle.module, parse_edits(["features.0.0:3,24"])):
            handle.pixel_model()(images[:1])
    assert hooks_left(handle.module) == 0
    with pytest.raises(UserError, match="unknown layer"):
        with applied(handle.module, parse_edits(["features.0:1", "nope:1"])):
            pass
    assert hooks_left(handle.module) == 0


def test_each_mode_edits_exactly_its_channels(shapes):
    handle, images = shapes
    model = handle.pixel_model().eval()
    seen = {}
    layer = handle.module.features[2][0]
    record = layer.register_forward_hook(lambda m, a, out: seen.__setitem__("out", out))
    try:
        with torch.no_grad():
            model(images[:2])
            plain = seen["out"].clone()
    finally:
        record.remove()
    cases = {"features.2.0:1,3": lambda x: x.index_fill(1, torch.tensor([1, 3]), 0.0),
             "features.2.0:2*0.5": lambda x: torch.cat([x[:, :2], x[:, 2:3] * 0.5, x[:, 3:]], 1),
             "features.2.0:keep=4": lambda x: x * (torch.arange(48) == 4).view(1, -1, 1, 1)}
    for text, expected in cases.items():
        with applied(handle.module, parse_edits([text])):
            record = handle.module.features[2][1].register_forward_pre_hook(lambda m, a: seen.__setitem__("in", a[0]))
            try:
                with torch.no_grad():
                    model(images[:2])
            finally:
                record.remove()
        torch.testing.assert_close(seen["in"], expected(plain), rtol=0, atol=0)
    means = with_means(parse_edits(["features.2.0:0,5=mean"]), {"features.2.0": [float(i) for i in range(48)]})
    with applied(handle.module, means), torch.no_grad():
        record = handle.module.features[2][1].register_forward_pre_hook(lambda m, a: seen.__setitem__("in", a[0]))
        try:
            model(images[:2])
        finally:
            record.remove()
    assert torch.all(seen["in"][:, 5] == 5.0) and torch.all(seen["in"][:, 0] == 0.0)
    torch.testing.assert_close(seen["in"][:, 1:5], plain[:, 1:5], rtol=0, atol=0)


def random_resnet18() -> ModelHandle:
    torch.manual_seed(0)
    module = torchvision.models.resnet18(num_classes=10).eval()
    return ModelHandle("torchvision:resnet18", module, torch.device("cpu"),
                       Preprocessing(3, (64, 64), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
                       [str(i) for i in range(10)], "none", False)


@pytest.mark.parametrize("which", ["shapes", "resnet18"])
def test_outputs_are_bit_identical_after_any_edits_and_no_hook_is_left(shapes, which):
    handle = shapes[0] if which == "shapes" else random_resnet18()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    model = handle.pixel_model().eval()
    layers = ["features.0.2", "features.4", "features.7.relu2"] if which == "shapes" else ["relu", "layer1.0",
                                                                                            "layer3.1.bn2", "layer4"]
    with torch.no_grad():
        before = model(images)
        changed = 0
        for step, layer in enumerate(layers):
            texts = [f"{layer}:0-3", f"{layer}:1*2.5", f"{layer}:keep=0,7"][step % 3:] + [f"{layers[0]}:2"]
            with applied(handle.module, parse_edits(texts)):
                changed += int(not torch.equal(model(images), before))
            assert hooks_left(handle.module) == 0
        installed = Installed(handle.module, parse_edits([f"{layers[-1]}:0-5"]))
        changed += int(not torch.equal(model(images), before))
        installed.remove()
        after = model(images)
    assert changed == len(layers) + 1  # every edit did change the output
    assert torch.equal(before, after) and hooks_left(handle.module) == 0
    assert all(not p.requires_grad or p.grad is None for p in handle.module.parameters())


def test_the_batched_sweep_equals_switching_each_channel_off_alone(shapes):
    """Tolerance 1e-5 on probabilities: a batch of 7 and single images may sum in different orders."""
    handle, images = shapes
    result = drive(sweep_job(handle, images[0], "features.4.conv1", batch=7))
    model = handle.pixel_model().eval()
    alone = []
    with torch.no_grad():
        for channel in range(48):
            with applied(handle.module, (Edit("features.4.conv1", (channel,)),)):
                alone.append(float(torch.softmax(model(images[:1]), 1)[0, result.target]))
    assert sorted(result.channels) == list(range(48)) and hooks_left(handle.module) == 0
    for channel, prob in zip(result.channels, result.probs):
        assert prob == pytest.approx(alone[channel], abs=1e-5)
    assert list(result.drops) == sorted(result.drops, reverse=True) and result.drops[0] > 0
