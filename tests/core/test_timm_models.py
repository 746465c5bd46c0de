"""timm models: specs, timm's own preprocessing, local weights offline, the views on timm CNNs, the zoo's figures."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from cnnexplorer.core.activations.recording import capture
from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.arch_specs import architecture
from cnnexplorer.core.attribution import compute_heatmap
from cnnexplorer.core.checkpoints import read_model_file, save_checkpoint
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.models import load_model
from cnnexplorer.core.timm_models import class_names, timm_preprocessing
from cnnexplorer.core.zoo import TIMM_ZOO
from tests.core.test_torchvision_parity import PHOTO_SIZES, photo

# the four families the views must handle, small variants, and a layer of each in its third stage
CNNS = {"resnet18": "layer3", "efficientnet_b0": "blocks.4", "convnext_atto": "stages.2", "regnetx_002": "s3"}


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache that timm may not download into."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("name", [*CNNS, "cspdarknet53", "dla34"])  # bicubic and bilinear, crop_pct 0.875 to 0.95
def test_preprocessing_is_timms_evaluation_transform(name):
    with torch.device("meta"):
        module = timm.create_model(name, pretrained=False)
    pre, notes = timm_preprocessing(module)
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=module))
    mean, std = torch.tensor(pre.mean).view(3, 1, 1), torch.tensor(pre.std).view(3, 1, 1)
    assert not notes
    for seed, size in enumerate(PHOTO_SIZES):
        image = photo(size, seed)
        assert torch.equal((pre.to_tensor(image) - mean) / std, transform(image)), size


def test_a_local_weights_file_opens_offline_with_imagenet_names(tmp_path, offline_hub):
    torch.manual_seed(0)
    reference = timm.create_model("resnet18", pretrained=False).eval()
    path = tmp_path / "resnet18-weights.pth"
    torch.save(reference.state_dict(), path)
    handle = load_model(f"timm:resnet18:{path}", "cpu")
    assert handle.spec == f"timm:resnet18:{path}" and handle.weights == str(path) and handle.trained
    assert handle.class_names[0] == "tench" and len(handle.class_names) == 1000
    assert handle.preprocessing.interpolation == "bicubic" and handle.preprocessing.resize == 235  # 224 / 0.95
    assert handle.describe()["preprocessing"]["interpolation"] == "bicubic"
    assert handle.about.startswith("timm's resnet18") and "11.7 M parameters" in handle.about
    pixels = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference((pixels - handle.pixel_model().mean) / handle.pixel_model().std)
        assert torch.equal(handle.pixel_model()(pixels), expected)


def test_pretrained_weights_offline_is_one_clear_line(offline_hub):
    with pytest.raises(UserError) as info:
        load_model("timm:resnet18", "cpu")
    message = str(info.value)
    assert "\n" not in message and "no network" in message
    assert "timm:resnet18:PATH" in message and "timm:resnet18:none" in message


@pytest.mark.parametrize("spec, words", [
    ("timm:resnet19", "did you mean resnet18"),
    ("timm:resnet18:/no/such/weights.pth", "does not exist"),
])
def test_bad_timm_specs_are_user_errors(spec, words):
    with pytest.raises(UserError, match=words):
        load_model(spec, "cpu")


def test_a_weights_file_of_another_model_is_refused(tmp_path):
    path = tmp_path / "regnet.pth"
    torch.save(timm.create_model("regnetx_002", pretrained=False).state_dict(), path)
    with pytest.raises(UserError, match="does not hold weights that fit timm's resnet18"):
        load_model(f"timm:resnet18:{path}", "cpu")


@pytest.mark.parametrize("name", CNNS)
def test_the_views_work_on_timm_cnns(name):
    handle = load_model(f"timm:{name}:none", "cpu")
    summary = summarize_handle(handle)
    assert summary.total_params == sum(p.numel() for p in handle.module.parameters())
    assert CNNS[name] in [layer.name for layer in summary.layers]
    pixels = handle.preprocessing.to_tensor(photo((320, 240), 1))
    maps = capture(handle, pixels, [CNNS[name]]).output(CNNS[name])
    assert maps.ndim == 4 and maps.shape[0] == 1 and maps.shape[2] > 1
    heatmap = compute_heatmap(handle, pixels, "gradcam", layer=CNNS[name])
    assert heatmap.map.shape == handle.preprocessing.size and np.isfinite(heatmap.map).all()


def test_checkpoints_of_timm_models_record_and_rebuild_the_architecture(tmp_path):
    handle = load_model("timm:regnetx_002:none", "cpu")
    path = save_checkpoint(tmp_path / "tuned.pt", handle.module, "timm:regnetx_002:pretrained", handle.class_names,
                           handle.preprocessing)
    found = read_model_file(path)
    assert found.preprocessing == handle.preprocessing and found.preprocessing.interpolation == "bicubic"
    rebuilt = architecture(found.arch)
    module = rebuilt.build(10)
    assert module.num_classes == 10 and class_names(module) == [f"class {i}" for i in range(10)]
    assert rebuilt.preprocessing == handle.preprocessing and len(rebuilt.class_names) == 1000
    older = torch.load(path, weights_only=True)
    del older["preprocessing"]["interpolation"]
    torch.save(older, tmp_path / "older.pt")
    assert read_model_file(tmp_path / "older.pt").preprocessing.interpolation == "bilinear"  # as all were then


def test_the_zoo_figures_are_timms():
    for model in TIMM_ZOO:
        with torch.device("meta"):
            module = timm.create_model(model.name, pretrained=False)
        assert (model.tag, model.params) == (module.pretrained_cfg["tag"], sum(p.numel() for p in module.parameters()))


def test_cnnexplorer_models_lists_the_timm_models(capsys):
    from tests.cli.cli_helpers import last_json, run_cli

    code, out, _ = run_cli(capsys, "models", "--json")
    listed = {entry["spec"]: entry for entry in last_json(out)["timm"]}
    assert code == 0 and set(listed) == {f"timm:{m.name}" for m in TIMM_ZOO}
    assert listed["timm:resnet18"]["params"] == 11_689_512 and listed["timm:resnet18"]["acc1"] is None
