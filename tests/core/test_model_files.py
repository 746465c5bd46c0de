"""Model files: app checkpoints, state_dicts, safetensors and (only when trusted) pickles."""

from __future__ import annotations

import os

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from cnnexplorer.core.builtin.nets import LeNet5, TinyVGG
from cnnexplorer.core.checkpoints import (
    CHECKPOINT_FORMAT,
    NeedsTrust,
    read_model_file,
    save_checkpoint,
)
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_handle import Preprocessing
from cnnexplorer.core.models import FileOptions, load_model

SHAPES_PRE = Preprocessing(3, (64, 64), mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))


def seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for p in module.parameters():
        nn.init.normal_(p, std=0.1)
    return module.eval()


def test_app_checkpoint_round_trip_gives_same_outputs(tmp_path):
    net = seeded(TinyVGG(num_classes=3))
    names = ["circle", "square", "star"]
    path = save_checkpoint(tmp_path / "run" / "net.pt", net, "builtin:tinyvgg", names, SHAPES_PRE, extra={"epoch": 4})
    assert [p.name for p in path.parent.iterdir()] == ["net.pt"]  # no temp file left behind

    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["version"] == 1 and raw["arch"] == "builtin:tinyvgg"
    assert raw["preprocessing"] == {"channels": 3, "size": [64, 64], "mean": [0.4, 0.5, 0.6],
                                    "std": [0.2, 0.25, 0.3], "resize": None, "interpolation": "bilinear"}

    handle = load_model(str(path), "cpu")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(handle.module(x), net(x))
    assert handle.class_names == names
    assert handle.preprocessing == SHAPES_PRE
    assert (handle.spec, handle.weights, handle.trained) == (str(path), str(path), True)


def test_checkpoint_options_override_file(tmp_path):
    path = save_checkpoint(tmp_path / "n.pt", LeNet5(num_classes=2), "builtin:lenet5", ["a", "b"],
                           Preprocessing(1, (32, 32), mean=(0.5,), std=(0.5,)))
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n\n")
    handle = load_model(str(path), "cpu", FileOptions(labels=str(labels), mean=(0.1,), std=(0.2,)))
    assert handle.class_names == ["cat", "dog"]
    assert handle.preprocessing.mean == (0.1,) and handle.preprocessing.std == (0.2,)


def test_save_checkpoint_refuses_extras_that_would_need_trust(tmp_path):
    with pytest.raises(TypeError, match="extra\\['when'\\] is a object"):
        save_checkpoint(tmp_path / "n.pt", LeNet5(), "builtin:lenet5", list("0123456789"),
                        Preprocessing(1, (32, 32), mean=(0.5,), std=(0.5,)), extra={"when": object()})
    assert not (tmp_path / "n.pt").exists()


def test_state_dict_with_arch_infers_seven_classes(tmp_path):
    net = seeded(torchvision.models.resnet18(num_classes=7))
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    handle = load_model(str(path), "cpu", FileOptions(arch="torchvision:resnet18"))
    assert handle.module.fc.out_features == 7
    assert handle.class_names == [f"class {i}" for i in range(7)]
    assert handle.preprocessing.size == (224, 224) and handle.preprocessing.resize == 256
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(handle.module(x), net(x))


def test_bare_state_dict_without_arch_says_pass_arch(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(LeNet5().state_dict(), path)
    with pytest.raises(UserError, match=r"w\.pt is a bare state_dict; pass --arch SPEC \(e\.g\. --arch torchvision:resnet18\)"):
        load_model(str(path), "cpu")


def test_safetensors_file(tmp_path):
    net = seeded(LeNet5())
    path = tmp_path / "lenet.safetensors"
    save_file(net.state_dict(), str(path), metadata={"source": "test"})
    file = read_model_file(path)
    assert file.kind == "state_dict" and file.extra == {"source": "test"}
    handle = load_model(str(path), "cpu", FileOptions(arch="builtin:lenet5"))
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(handle.module(x), net(x))
    assert handle.class_names == [str(d) for d in range(10)]


def test_nested_state_dict_with_module_prefix(tmp_path):
    """A training script's {"state_dict": ...} of a DataParallel model, with its class list."""
    net = seeded(TinyVGG(num_classes=4))
    path = tmp_path / "epoch=3.ckpt"
    wrapped = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": wrapped, "classes": ["a", "b", "c", "d"]}, path)
    file = read_model_file(path)
    assert file.kind == "state_dict" and file.extra == {"epoch": 3} and file.class_names == ["a", "b", "c", "d"]
    handle = load_model(str(path), "cpu", FileOptions(arch="builtin:tinyvgg"))
    assert handle.class_names == ["a", "b", "c", "d"]
    assert any("module." in note for note in handle.notes)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(handle.module(x), net(x))


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    state = TinyVGG().state_dict()
    state["extra_head.weight"] = torch.zeros(2)
    del state["features.0.bias"]
    state["features.2.weight"] = torch.zeros(5, 10, 3, 3)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(UserError) as info:
        load_model(str(path), "cpu", FileOptions(arch="builtin:tinyvgg"))
    message = str(info.value)
    assert "does not fit builtin:tinyvgg" in message
    assert "missing keys: 1 (features.0.bias)" in message
    assert "unexpected keys: 1 (extra_head.weight)" in message
    assert "shape mismatches: 1 (features.2.weight: file 5×10×3×3, model 10×10×3×3)" in message
    assert "\n" not in message


def test_wrong_arch_lists_first_keys_with_counts(tmp_path):
    path = tmp_path / "lenet.pt"
    torch.save(LeNet5().state_dict(), path)
    with pytest.raises(UserError, match=r"missing keys: \d+ \([^)]*, … \d+ more\)"):
        load_model(str(path), "cpu", FileOptions(arch="torchvision:resnet18"))


@pytest.mark.parametrize("content", [os.urandom(4096), b"just some notes\n", b""])
def test_not_a_model_file(tmp_path, content):
    path = tmp_path / "thing.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=r"thing\.pt is not a model file") as info:
        read_model_file(path, trust=True)
    assert not isinstance(info.value, NeedsTrust) and "\n" not in str(info.value)


def test_truncated_checkpoint_is_damaged_not_untrusted(tmp_path):
    path = tmp_path / "cut.pt"
    save_checkpoint(path, LeNet5(), "builtin:lenet5", list("0123456789"), Preprocessing(1, (32, 32), mean=(0.5,), std=(0.5,)))
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(UserError, match=r"cut\.pt is not a model file") as info:
        read_model_file(path)
    assert not isinstance(info.value, NeedsTrust)


def test_missing_model_file_and_folder(tmp_path):
    with pytest.raises(UserError, match="model file not found: .*gone.pt"):
        load_model(str(tmp_path / "gone.pt"), "cpu")
    with pytest.raises(UserError, match="is a folder, not a model file"):
        load_model(str(tmp_path), "cpu")


class Payload:
    """Unpickling this creates ``marker``: stands for any code a malicious file could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_malicious_pickle_refused_without_running_and_runs_only_with_trust(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"state_dict": LeNet5().state_dict(), "payload": Payload(marker)}, path)

    with pytest.raises(NeedsTrust, match=r"model\.pt needs full unpickling \(it refers to .*os\.makedirs.*\), "
                                         r"which can run arbitrary code .*pass --trust \(CLI\) or confirm \(GUI\)"):
        read_model_file(path)
    with pytest.raises(NeedsTrust):
        load_model(str(path), "cpu", FileOptions(arch="builtin:lenet5"))
    assert not marker.exists()

    file = read_model_file(path, trust=True)
    assert marker.exists()  # the check above was real: trusting the file runs its code
    assert file.kind == "state_dict"


def test_pickled_module_needs_trust_then_loads_with_default_preprocessing(tmp_path):
    net = seeded(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)))
    path = tmp_path / "whole.pth"
    torch.save(net, path)
    with pytest.raises(NeedsTrust, match="torch.nn.modules"):
        load_model(str(path), "cpu")
    handle = load_model(str(path), "cpu", FileOptions(trust=True))
    assert handle.input_size == (3, 224, 224) and handle.preprocessing.mean == (0.485, 0.456, 0.406)
    assert handle.class_names == [f"class {i}" for i in range(5)]
    assert any("no preprocessing" in note for note in handle.notes)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(handle.module(x), net(x))


def test_pickled_module_that_rejects_default_size_asks_for_input_size(tmp_path):
    path = tmp_path / "lenet.pth"
    torch.save(LeNet5(), path)
    with pytest.raises(UserError, match=r"does not accept a 3×224×224 input .*pass --input-size"):
        load_model(str(path), "cpu", FileOptions(trust=True))
    handle = load_model(str(path), "cpu", FileOptions(trust=True, input_size=(1, 32, 32), mean=(0.5,), std=(0.5,)))
    assert handle.num_classes == 10 and handle.preprocessing.resize is None


def test_labels_file(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), path)
    labels = tmp_path / "labels.txt"
    labels.write_text("ant\nbee\ncicada\n")
    options = FileOptions(arch="torchvision:resnet18", labels=str(labels))
    assert load_model(str(path), "cpu", options).class_names == ["ant", "bee", "cicada"]

    labels.write_text("ant\nbee\n")
    with pytest.raises(UserError, match=r"labels\.txt has 2 class names but the model has 3 classes"):
        load_model(str(path), "cpu", options)
    with pytest.raises(UserError, match="labels file not found"):
        load_model(str(path), "cpu", FileOptions(arch="torchvision:resnet18", labels=str(tmp_path / "none.txt")))


def test_torchvision_state_dict_with_1000_classes_gets_imagenet_names(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    handle = load_model(str(path), "cpu", FileOptions(arch="torchvision:resnet18"))
    expected = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]
    assert handle.num_classes == 1000 and handle.class_names == list(expected)


def test_a_bare_googlenet_state_dict_with_auxiliary_weights_fits_the_pretrained_structure(tmp_path):
    """torchvision's published GoogLeNet file holds aux1/aux2, which its pretrained model leaves out."""
    import torchvision

    from cnnexplorer.core.models import FileOptions, load_model

    torch.manual_seed(0)
    full = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    path = tmp_path / "googlenet.pth"
    torch.save(full.state_dict(), path)
    handle = load_model(str(path), "cpu", FileOptions(arch="torchvision:googlenet:IMAGENET1K_V1"))
    assert handle.module.aux1 is None and any("left out the weights of aux1, aux2" in n for n in handle.notes)
    full.eval()
    images = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(handle.module(images), full(images), atol=1e-5, rtol=0)
