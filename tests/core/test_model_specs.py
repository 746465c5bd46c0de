"""Model spec strings: close-name suggestions, weights names, untrained torchvision, file paths."""

from __future__ import annotations

import pytest
import torch

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.models import FileOptions, load_model


def test_misspelt_torchvision_arch_suggests_close_names():
    with pytest.raises(UserError, match=r"unknown torchvision classifier 'resnet05'.*did you mean resnet50"):
        load_model("torchvision:resnet05", "cpu")


def test_misspelt_builtin_suggests_shapes():
    with pytest.raises(UserError, match=r"unknown built-in model 'shape'.*did you mean shapes\?"):
        load_model("builtin:shape", "cpu")


def test_bare_name_is_an_unknown_spec_with_a_suggestion():
    with pytest.raises(UserError, match=r"unknown model spec 'resnet18'.*did you mean .*torchvision:resnet18"):
        load_model("resnet18", "cpu")


def test_unknown_weights_name_lists_valid_ones():
    with pytest.raises(UserError, match=r"unknown weights 'IMAGENET9K' for torchvision:resnet18; "
                                        r"choose one of DEFAULT, IMAGENET1K_V1\b.*, none$"):
        load_model("torchvision:resnet18:IMAGENET9K", "cpu")


def test_torchvision_none_weights_loads_untrained():
    handle = load_model("torchvision:resnet18:none", "cpu")
    assert (handle.spec, handle.weights, handle.trained) == ("torchvision:resnet18:none", "none", False)
    assert handle.num_classes == 1000 and handle.input_size == (3, 224, 224)
    assert not handle.module.training
    with torch.no_grad():
        assert handle.module(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("spec", ["missing.pt", "models/resnet", "weights.safetensors"])
def test_path_like_spec_of_a_missing_file(tmp_path, monkeypatch, spec):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=f"model file not found: {spec}; check the path"):
        load_model(spec, "cpu")


def test_existing_file_without_suffix_is_opened_as_a_model_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").write_bytes(b"not a model")
    with pytest.raises(UserError, match="weights is not a model file"):
        load_model("weights", "cpu")


def test_unknown_arch_for_a_state_dict_suggests_close_names(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(UserError, match=r"unknown architecture 'torchvision:resnet05'.*did you mean torchvision:resnet50"):
        load_model(str(path), "cpu", FileOptions(arch="torchvision:resnet05"))
