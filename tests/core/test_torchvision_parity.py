"""torchvision classifiers exactly as torchvision ships them: structure, preprocessing and predictions.

Offline: the weight files are placed in a temporary torch hub cache under their published names,
holding random values in the published layout. Every zoo classifier's structure is checked on the
meta device (no memory, no time); predictions end to end for a representative set (the benchmark
benchmarks/torchvision_parity.py does them all).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.models.regnet import BlockParams

from cnnexplorer.core.architecture import parameter_counts
from cnnexplorer.core.checkpoints import save_checkpoint
from cnnexplorer.core.models import (
    load_model,
    preprocessing_from_weights,
    torchvision_architecture,
    torchvision_builder_flags,
    torchvision_classifiers,
)
from cnnexplorer.core.weights import cache_path

ALL_WEIGHTS = [(arch, weights) for arch in torchvision_classifiers()
               for weights in torchvision.models.get_model_weights(arch)]
PHOTO_SIZES = [(640, 480), (480, 640), (1000, 300)]
END_TO_END = ["googlenet", "inception_v3", "resnet18", "mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf",
              "shufflenet_v2_x0_5", "squeezenet1_1", "vit_b_16"]
LOGIT_TOLERANCE = 1e-5  # relative to the largest logit (random weights give small ones): float32 rounding
PROB_TOLERANCE = 1e-6


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A photo-like picture: smooth colour fields with fine noise, so resampling details matter."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (size[1] // 16 + 2, size[0] // 16 + 2, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize(size, Image.BICUBIC), dtype=np.int16)
    noisy = smooth + rng.integers(-24, 25, smooth.shape, dtype=np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


@pytest.fixture
def meta_regnets(monkeypatch):
    """RegNet works out its widths with tensors while it is built; on the meta device they hold no values."""
    original = BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return original(cls, *args, **kwargs)

    monkeypatch.setattr(BlockParams, "from_init_params", classmethod(on_cpu))


def test_every_zoo_classifier_with_every_weights_has_the_published_parameter_count(meta_regnets):
    counts: dict[tuple, int] = {}  # weights whose builder flags are the same share a structure
    wrong = []
    for arch, weights in ALL_WEIGHTS:
        key = (arch, repr(sorted(torchvision_builder_flags(arch, weights).items())))
        if key not in counts:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = torchvision_architecture(f"{arch}:{weights.name}").build(None)
            counts[key] = sum(p.numel() for p in module.parameters())
        if counts[key] != weights.meta["num_params"]:
            wrong.append(f"{arch}:{weights.name} {counts[key]:,} != {weights.meta['num_params']:,}")
    assert not wrong and len(ALL_WEIGHTS) > 100


def test_builder_flags_follow_the_weights():
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the plain GoogLeNet builder warns about its default initialisation
        googlenet = torchvision_architecture("googlenet:IMAGENET1K_V1").build(None)
        inception = torchvision_architecture("inception_v3").build(None)
        plain = torchvision_architecture("googlenet:none").build(None)
        vit = torchvision_architecture("vit_h_14:IMAGENET1K_SWAG_E2E_V1").build(None)
    assert googlenet.transform_input and googlenet.aux1 is None and googlenet.aux2 is None
    assert inception.transform_input and inception.AuxLogits is not None
    assert not plain.transform_input and plain.aux1 is not None
    assert vit.image_size == 518
    assert torchvision_builder_flags("resnet18", torchvision.models.ResNet18_Weights.DEFAULT) == {}


def test_untrained_models_take_the_input_size_of_the_plain_builder():
    """vit_h_14's DEFAULT weights are for 518 px; without weights the builder makes a 224 px model."""
    found = torchvision_architecture("vit_h_14:none")
    assert found.preprocessing.size == (224, 224)


def test_course_notes_reach_the_architecture():
    assert "3×3" in torchvision_architecture("googlenet").layer_notes["inception4a.branch3.1.conv"]
    assert "96" in torchvision_architecture("alexnet").layer_notes["features.0"]
    assert "v1.5" in torchvision_architecture("resnet50").layer_notes["layer3.0.conv2"]
    assert "7×7" in torchvision_architecture("vgg16").layer_notes["avgpool"]
    about = torchvision_architecture("googlenet:IMAGENET1K_V1").about
    assert about.startswith("GoogLeNet (Szegedy et al. 2014)") and "6.6 M parameters" in about
    assert "transform_input" in about


def distinct_transforms() -> dict[tuple, object]:
    found: dict[tuple, object] = {}
    for _, weights in ALL_WEIGHTS:
        t = weights.transforms()
        found.setdefault((tuple(t.crop_size), tuple(t.resize_size), t.interpolation, tuple(t.mean), tuple(t.std)),
                         weights)
    return found


@pytest.mark.parametrize("weights", list(distinct_transforms().values()), ids=lambda w: f"{type(w).__name__}.{w.name}")
def test_preprocessing_is_the_weights_transforms(weights):
    pre = preprocessing_from_weights(weights)
    mean, std = torch.tensor(pre.mean).view(3, 1, 1), torch.tensor(pre.std).view(3, 1, 1)
    for seed, size in enumerate(PHOTO_SIZES):
        image = photo(size, seed)
        ours = (pre.to_tensor(image) - mean) / std
        assert torch.equal(ours, weights.transforms()(image)), size


def randomised(module: nn.Module, size: int) -> dict[str, torch.Tensor]:
    """Random values in ``module``'s layout that carry the input through to the logits: kernels and matrices at
    He scale (ViT's head starts at zero), vectors near their initial values, and batch-norm statistics measured
    on random images, as training leaves them (a network's own small initialisation lets the input fade out)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.ndim >= 2:
                parameter.copy_(noise * (2 / parameter[0].numel()) ** 0.5)
            else:
                parameter.add_(noise * 0.02)
        norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: one batch's statistics
        if norms:
            module.train()(torch.randn(2, 3, size, size, generator=generator))
    return module.eval().state_dict()


def place_random_weights(arch: str, weights) -> None:
    """A file with the published name and layout (GoogLeNet's holds its auxiliary heads), random values."""
    flags = torchvision_builder_flags(arch, weights) | ({"aux_logits": True} if arch == "googlenet" else {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # builders that warn about their default initialisation
        module = torchvision.models.get_model(arch, weights=None, **flags)
    cache_path(weights).parent.mkdir(parents=True, exist_ok=True)
    torch.save(randomised(module, weights.transforms().crop_size[0]), cache_path(weights))


@dataclass(frozen=True)
class Parity:
    """Our model against torchvision's on the photos: largest differences and both parameter counts."""

    logits: float
    logit_scale: float
    probabilities: float
    params: int
    torchvision_params: int


def parity(arch: str) -> Parity:
    """Place random DEFAULT weights in the hub cache, then run torchvision's model with its transforms and ours
    on the photos; one model in memory at a time (vit_h_14 has 632 M parameters)."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    place_random_weights(arch, weights)
    images = [photo(size, seed) for seed, size in enumerate(PHOTO_SIZES)]
    with torch.no_grad():
        theirs = torchvision.models.get_model(arch, weights=weights).eval()
        expected = theirs(torch.stack([weights.transforms()(image) for image in images]))
        theirs_params = sum(p.numel() for p in theirs.parameters())
        del theirs
        ours = load_model(f"torchvision:{arch}", "cpu")
        logits = ours.pixel_model()(torch.stack([ours.preprocessing.to_tensor(image) for image in images]))
    return Parity(float((logits - expected).abs().max()), float(expected.abs().max()),
                  float((logits.softmax(1) - expected.softmax(1)).abs().max()), sum(parameter_counts(ours.module)),
                  theirs_params)


@pytest.mark.parametrize("arch", END_TO_END)
def test_predictions_equal_torchvision_with_its_transforms(arch, hub_dir):
    found = parity(arch)
    published = torchvision.models.get_model_weights(arch).DEFAULT.meta["num_params"]
    assert found.params == found.torchvision_params == published
    assert found.logit_scale > 0.1  # the random weights make the logits differ from class to class
    assert found.logits <= LOGIT_TOLERANCE * found.logit_scale
    assert found.probabilities <= PROB_TOLERANCE


def test_a_fine_tuned_pretrained_googlenet_reopens_as_it_was_saved(hub_dir, tmp_path):
    """Training records the handle's spec as the architecture; the rebuilt model has the pretrained structure."""
    weights = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1
    place_random_weights("googlenet", weights)
    handle = load_model("torchvision:googlenet", "cpu")
    path = save_checkpoint(tmp_path / "tuned.pt", handle.module, handle.spec, handle.class_names, handle.preprocessing)
    reopened = load_model(str(path), "cpu")
    assert reopened.module.transform_input and reopened.module.aux1 is None
    assert parameter_counts(reopened.module) == (6_624_904, 0)
    assert "3×3" in reopened.layer_notes["inception5b.branch3.1.conv"] and "transform_input" in reopened.about
    pixels = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(reopened.pixel_model()(pixels), handle.pixel_model()(pixels))
