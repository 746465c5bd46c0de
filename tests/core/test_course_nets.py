"""The course's networks as built-ins: the parameter counts and map sizes the course gives, and what the tree says."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import AlexNet_Weights

from cnnexplorer.core.builtin import BUILTIN_MODELS
from cnnexplorer.core.layers import SigmoidPair
from cnnexplorer.core.models import load_model

# name: (parameters, input C×H×W, classes, the spatial sizes of the conv and pooling outputs in order)
COURSE = {
    "keras_mnist": (93_322, (1, 28, 28), 10, [26, 13, 11, 5, 3]),
    "keras_mnist_dropout": (1_199_882, (1, 28, 28), 10, [26, 24, 12]),
    "cats_dogs": (3_453_121, (3, 150, 150), 2, [148, 74, 72, 36, 34, 17, 15, 7]),
    "zfnet": (62_357_608, (3, 224, 224), 1000, [110, 55, 26, 13, 13, 13, 13, 6]),
    "alexnet_original": (60_965_224, (3, 227, 227), 1000, [55, 27, 27, 13, 13, 13, 13, 6]),
}


def map_sizes(module: nn.Module, input_size: tuple[int, int, int]) -> tuple[list[int], torch.Size]:
    """The side of every conv and pooling output, and the output's shape, for one image on the meta device."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
             for m in module.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
    try:
        out = module.eval()(torch.empty(1, *input_size, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return sizes, out.shape


@pytest.mark.parametrize("name", list(COURSE))
def test_parameter_counts_map_sizes_and_description_match_the_course(name):
    params, input_size, classes, maps = COURSE[name]
    entry = BUILTIN_MODELS[name]
    with torch.device("meta"):  # no memory or time for the 60 M-parameter nets
        module = entry.build()
    assert sum(p.numel() for p in module.parameters()) == params
    sizes, out_shape = map_sizes(module, input_size)
    assert sizes == maps and tuple(out_shape) == (1, classes)
    assert entry.preprocessing.input_size == input_size and len(entry.class_names) == classes
    assert f"{params:,} parameters" in entry.description and "untrained" in entry.description
    assert entry.weights is None


def test_imagenet_nets_use_imagenet_preprocessing_and_class_names():
    categories = AlexNet_Weights.DEFAULT.meta["categories"]
    for name in ("zfnet", "alexnet_original"):
        entry = BUILTIN_MODELS[name]
        assert list(entry.class_names) == categories
        assert entry.preprocessing.mean == pytest.approx((0.485, 0.456, 0.406))
        assert entry.preprocessing.std == pytest.approx((0.229, 0.224, 0.225))
        assert entry.preprocessing.resize == 256


def test_original_alexnet_has_lrn_and_two_gpu_groups_zfnet_one():
    with torch.device("meta"):
        alexnet, zfnet = BUILTIN_MODELS["alexnet_original"].build(), BUILTIN_MODELS["zfnet"].build()
    convs = [m for m in alexnet.modules() if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs[:1]] == [(96, (11, 11), (4, 4))]
    lrns = [m for m in alexnet.modules() if isinstance(m, nn.LocalResponseNorm)]
    assert [(n.size, n.alpha, n.beta, n.k) for n in lrns] == [(5, 1e-4, 0.75, 2.0)] * 2
    first = next(m for m in zfnet.modules() if isinstance(m, nn.Conv2d))
    assert (first.out_channels, first.kernel_size, first.stride) == (96, (7, 7), (2, 2))
    assert all(m.groups == 1 for m in zfnet.modules() if isinstance(m, nn.Conv2d))
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in zfnet.modules()) == 2


def test_cats_dogs_has_one_sigmoid_output_shown_as_two_class_scores():
    handle = load_model("builtin:cats_dogs", "cpu")
    assert handle.class_names == ["cats", "dogs"] and not handle.trained and "sigmoid" in handle.about
    assert isinstance(handle.module.classifier[-1], SigmoidPair)
    assert handle.module.classifier[-2].out_features == 1
    pixels = torch.rand(2, 3, 150, 150)
    with torch.no_grad():
        scores = handle.pixel_model()(pixels)
        logit = handle.module.classifier[:-1](handle.module.flatten(handle.module.features(pixels)))
    # softmax of the pair is [1 − σ(z), σ(z)] (float rounding: 1e-6)
    assert torch.allclose(scores.softmax(1)[:, 1], torch.sigmoid(logit[:, 0]), atol=1e-6)
    with torch.device("meta"):
        three_way = BUILTIN_MODELS["cats_dogs"].build(3)
    assert three_way.classifier[-1].out_features == 3  # other class counts get one output each


@pytest.mark.parametrize("name", ["keras_mnist", "keras_mnist_dropout"])
def test_keras_mnist_nets_read_digits_as_keras_does(name):
    handle = load_model(f"builtin:{name}", "cpu")
    assert handle.class_names == [str(d) for d in range(10)] and handle.input_size == (1, 28, 28)
    assert handle.preprocessing.mean == (0.0,) and handle.preprocessing.std == (1.0,)  # rescale=1/255 only
    assert handle.about == BUILTIN_MODELS[name].description
    with torch.no_grad():
        assert handle.pixel_model()(torch.rand(3, 1, 28, 28)).shape == (3, 10)
