"""Transfer learning as the course teaches it: a new head on the convolutional base (VGG16 at 150 px with
Flatten → Dense 256 → Dense 1 has 16,812,353 parameters), the base frozen, then trained from a named layer on
at a rate of its own; a checkpoint of such a model reopens with its head and predicts the same."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torchvision
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.layers import SigmoidPair
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.data import open_data
from cnnexplorer.core.training.heads import NewHead, apply_head, parse_head, top_children
from cnnexplorer.core.training.loop import train
from cnnexplorer.core.training.state import read_resume
from cnnexplorer.core.training.transfer import (base_layers, layers_from, parameter_groups, prepare_model,
                                                set_trainable)
from tests.core.test_training import SMALL, _stripes


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta(build, **kwargs) -> nn.Module:
    """A torchvision model's layout without its weights' memory or initialisation time."""
    with torch.device("meta"):
        return build(weights=None, **kwargs)


def test_head_specs_parse_or_say_which_token_is_wrong():
    assert parse_head("256, relu,dropout=0.5,bn,64,gelu") == ("256", "relu", "dropout=0.5", "bn", "64", "gelu")
    assert parse_head("") == () and parse_head("avgpool,128,tanh") == ("avgpool", "128", "tanh")
    for spec, words in (("256,relux", "'relux' is not a layer; did you mean relu?"),
                        ("256,dropout=1.5", "dropout=1.5 is not a probability"),
                        ("256,avgpool", "avgpool can only come first"), ("0,relu", "from 1 to 1000000"),
                        ("256,,relu", "'(empty)' is not a layer")):
        with pytest.raises(UserError, match="cannot read the head spec") as caught:
            parse_head(spec)
        assert words in str(caught.value) and "\n" not in str(caught.value)


def test_the_courses_vgg16_recipe_has_its_parameter_count_and_unfreezes_block5():
    vgg = meta(torchvision.models.vgg16)
    base = count(vgg.features)
    assert base == 14_714_688
    apply_head(vgg, "256,relu", True, 2, (3, 150, 150))  # include_top=False at 150 px: the base gives 4×4×512
    assert isinstance(vgg.avgpool, NewHead) and isinstance(vgg.classifier, nn.Identity)
    assert count(vgg) == 16_812_353 == base + (8192 * 256 + 256) + (256 + 1)
    assert isinstance(vgg.avgpool[-1], SigmoidPair)

    assert set_trainable(vgg, freeze_base=True) == ["avgpool"]
    assert sum(p.numel() for p in vgg.parameters() if p.requires_grad) == 2_097_665
    assert set_trainable(vgg, freeze_base=True, unfreeze_top=3) == ["features.24", "features.26", "features.28",
                                                                    "avgpool"]  # block5's convolutions
    assert layers_from(vgg, "features.24") == ["features.24", "features.26", "features.28"]  # block5_conv1 on
    set_trainable(vgg, freeze_base=True, unfreeze_from="features.24")
    groups = parameter_groups(vgg, 1e-3, 1e-5)
    assert [g["lr"] for g in groups] == [1e-3, 1e-5]
    assert [sum(p.numel() for p in g["params"]) for g in groups] == [2_097_665, 3 * (512 * 512 * 9 + 512)]
    with pytest.raises(UserError, match=r"no layer 'features\.42' to unfreeze from; did you mean features\.4"):
        layers_from(vgg, "features.42")


@pytest.mark.parametrize("build, top", [
    (torchvision.models.resnet18, ["avgpool", "fc"]), (torchvision.models.densenet121, ["classifier"]),
    (torchvision.models.efficientnet_b0, ["avgpool", "classifier"]), (torchvision.models.mobilenet_v2, ["classifier"]),
])
def test_every_family_has_its_top_after_the_convolutional_base(build, top):
    model = meta(build)
    assert top_children(model) == top
    apply_head(model, "avgpool,64,relu", False, 5, (3, 64, 64))
    assert isinstance(model.get_submodule(top[0]), NewHead)
    assert not any(base_layers(model)[-1].startswith(t) for t in top)  # the base ends before the top


def test_the_builtins_tops_and_a_model_without_one():
    for name, top in (("shapes", ["pool", "flatten", "classifier"]), ("lenet5", ["flatten", "classifier"]),
                      ("tinyvgg", ["flatten", "classifier"])):
        assert top_children(load_model(f"builtin:{name}", "cpu").module) == top
    squeezenet = meta(torchvision.models.squeezenet1_1)
    assert top_children(squeezenet) == []
    with pytest.raises(UserError, match="SqueezeNet's last part holds a convolution"):
        apply_head(squeezenet, "256,relu", False, 2, (3, 224, 224))
    with pytest.raises(UserError, match="needs exactly 2 classes, not 3"):
        apply_head(meta(torchvision.models.resnet18), "256", True, 3, (3, 64, 64))


def test_binary_without_a_spec_makes_the_final_layer_one_sigmoid_unit():
    lenet = load_model("builtin:lenet5", "cpu")
    binary = prepare_model(lenet, ["a", "b"], head="", binary=True).module
    assert isinstance(binary.classifier[2], NewHead) and binary.classifier[2][1].out_features == 1
    scores = binary(torch.rand(3, 1, 32, 32))
    assert torch.allclose(scores.softmax(1)[:, 1], torch.sigmoid(scores[:, 1] - scores[:, 0]), atol=1e-6)


def test_config_refuses_impossible_transfer_settings():
    for settings, words in (({"head": "256,relux"}, "relux"), ({"base_lr": 0.0}, "base-lr"),
                            ({"unfreeze_from": "features.24"}, "unfreeze-from NAME needs freeze-base"),
                            ({"unfreeze_top": 2}, "unfreeze-top N needs freeze-base"),
                            ({"freeze_base": True, "unfreeze_top": 2, "unfreeze_from": "x"}, "not both"),
                            ({"binary": "yes"}, "binary")):
        with pytest.raises(UserError, match=words):
            TrainConfig(**settings)


def test_a_new_head_trains_on_a_frozen_base_saves_reopens_and_resumes_at_its_own_rate(tmp_path):
    torch.manual_seed(0)
    handle = load_model("builtin:tinyvgg", "cpu")
    data = open_data("builtin:shapes", handle.input_size, **SMALL)
    config = TrainConfig(epochs=1, batch_size=32, head="16,relu,bn,dropout=0.2", freeze_base=True,
                         unfreeze_from="features.5", base_lr=1e-4, snapshots=False)
    model = prepare_model(handle, data.class_names, head=config.head)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    result = drive(train(model, data, config, arch="builtin:tinyvgg", out=tmp_path / "run.pt"))
    after = result.handle.module.state_dict()
    changed = {k.rsplit(".", 1)[0] for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"features.5", "features.7", "flatten.1", "flatten.3", "flatten.5"}  # the base before: frozen

    reopened = load_model(str(tmp_path / "run.pt"), "cpu")
    assert isinstance(reopened.module.flatten, NewHead) and reopened.class_names == data.class_names
    images = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(reopened.module(images), result.handle.module(images), atol=1e-6)

    training, saved = read_resume(tmp_path / "run.pt")
    assert saved.base_lr == 1e-4 and [g["initial_lr"] for g in training["optimizer"]["param_groups"]] == [4e-3, 1e-4]
    resumed = drive(train(reopened, data, replace(saved, epochs=2), arch="builtin:tinyvgg", out=tmp_path / "run.pt",
                          resume=training))
    assert resumed.epochs_done == 2


def test_a_binary_head_round_trips_through_its_checkpoint(tmp_path):
    _stripes(tmp_path / "data", 8, 0)
    torch.manual_seed(0)
    handle = load_model("builtin:lenet5", "cpu")
    data = open_data(f"folder:{tmp_path / 'data'}", handle.input_size, val_fraction=0.25)
    config = TrainConfig(epochs=1, batch_size=8, head="8,tanh", binary=True, snapshots=False)
    result = drive(train(prepare_model(handle, data.class_names, head=config.head, binary=True), data, config,
                         arch="builtin:lenet5", out=tmp_path / "run.pt"))
    reopened = load_model(str(tmp_path / "run.pt"), "cpu")
    assert reopened.class_names == ["horizontal", "vertical"] and count(reopened.module) == count(result.handle.module)
    images = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(reopened.module(images), result.handle.module(images), atol=1e-6)
    three = prepare_model(reopened, ["a", "b", "c"]).module  # other data: the same head's layers, for 3 classes
    assert isinstance(three.flatten, NewHead) and not three.flatten.binary and three(images).shape == (4, 3)


def test_auxiliary_classifiers_answer_for_the_datas_classes_too():
    shapes = load_model("builtin:shapes", "cpu")
    googlenet = replace(shapes, module=meta(torchvision.models.googlenet, aux_logits=True, init_weights=False))
    three = prepare_model(googlenet, ["a", "b", "c"]).module  # as torchvision builds it for num_classes=3
    assert three.fc.out_features == three.aux1.fc2.out_features == three.aux2.fc2.out_features == 3
    binary = prepare_model(googlenet, ["a", "b"], head="64,relu", binary=True).module
    assert isinstance(binary.avgpool, NewHead) and binary.aux1.fc2.out_features == 2


def test_a_single_sigmoid_output_stays_one_for_two_new_classes_and_becomes_scores_for_more():
    from cnnexplorer.core.builtin.course_nets import CatsDogs
    from cnnexplorer.core.training.transfer import replace_head

    model = CatsDogs(2)
    two = replace_head(model, 2)
    assert two.classifier[2].out_features == 1 and isinstance(two.classifier[3], SigmoidPair)
    assert two(torch.rand(1, 3, 150, 150)).shape == (1, 2)
    three = replace_head(model, 3)
    assert three.classifier[2].out_features == 3 and not any(isinstance(m, SigmoidPair) for m in three.modules())
    assert three(torch.rand(1, 3, 150, 150)).shape == (1, 3)
    assert isinstance(model.classifier[3], SigmoidPair)  # the original is left as it was
