"""Rows for the model-zoo browser: every torchvision classifier and a curated set of timm CNNs.

Building 80 models to count their parameters would take minutes; torchvision's weight
metadata already records parameters, operations, accuracy and file size, so the table fills
instantly and marks which weights are already in the local cache. Importing timm alone takes
seconds, so its models' figures are listed here (``tests/core/test_timm_models.py`` checks them
against timm); timm records no accuracy or cost, which the table leaves empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torchvision

from cnnexplorer.core.models import torchvision_classifiers
from cnnexplorer.core.weights import is_cached


@dataclass(frozen=True)
class ZooEntry:
    """One classifier with its default weights.

    ``depth`` counts weight layers as the course does (VGG-16: 16). ``gmacs`` is torchvision's ``_ops`` (its docs call them GFLOPS, counted as multiply-adds:
    4.09 for resnet50); ``file_size_mb`` is the weights file in MB; accuracies are ImageNet-1K.
    None where the library does not record the figure.
    """

    arch: str
    weights: str
    params: int
    gmacs: float | None
    acc1: float | None
    acc5: float | None
    file_size_mb: float | None
    cached: bool
    spec: str
    library: str = "torchvision"
    depth: int | None = None  # weight layers on the longest path (``DEPTHS``)


@dataclass(frozen=True)
class TimmModel:
    """A timm model the zoo lists: its name, the pretrained tag timm picks and its parameter count."""

    name: str
    tag: str
    params: int


TIMM_ZOO = (
    TimmModel("convnext_atto", "d2_in1k", 3_695_520),
    TimmModel("convnext_tiny", "in12k_ft_in1k", 28_589_128),
    TimmModel("cspdarknet53", "ra_in1k", 27_642_184),
    TimmModel("densenet121", "ra_in1k", 7_978_856),
    TimmModel("dla34", "in1k", 15_742_104),
    TimmModel("efficientnet_b0", "ra_in1k", 5_288_548),
    TimmModel("efficientnet_b3", "ra2_in1k", 12_233_232),
    TimmModel("ghostnet_100", "in1k", 5_182_508),
    TimmModel("mixnet_s", "ft_in1k", 4_134_606),
    TimmModel("mobilenetv3_large_100", "ra_in1k", 5_483_032),
    TimmModel("mobilenetv4_conv_small", "e2400_r224_in1k", 3_774_024),
    TimmModel("regnetx_002", "pycls_in1k", 2_684_792),
    TimmModel("regnety_040", "ra3_in1k", 20_646_656),
    TimmModel("repvgg_a2", "rvgg_in1k", 28_210_600),
    TimmModel("resnet18", "a1_in1k", 11_689_512),
    TimmModel("resnet50", "a1_in1k", 25_557_032),
    TimmModel("resnet50d", "ra2_in1k", 25_576_264),
    TimmModel("rexnet_100", "nav_in1k", 4_796_873),
)


DEPTHS = {
    "alexnet": 8, "convnext_atto": 41, "convnext_base": 113, "convnext_large": 113, "convnext_small": 113,
    "convnext_tiny": 59, "cspdarknet53": 68, "densenet121": 121, "densenet161": 161, "densenet169": 169,
    "densenet201": 201, "dla34": 34, "efficientnet_b0": 82, "efficientnet_b1": 116, "efficientnet_b2": 116,
    "efficientnet_b3": 131, "efficientnet_b4": 161, "efficientnet_b5": 195, "efficientnet_b6": 225,
    "efficientnet_b7": 274, "efficientnet_v2_l": 340, "efficientnet_v2_m": 246, "efficientnet_v2_s": 171,
    "ghostnet_100": 86, "googlenet": 22, "inception_v3": 48, "maxvit_t": 147, "mixnet_s": 76, "mnasnet0_5": 53,
    "mnasnet0_75": 53, "mnasnet1_0": 53, "mnasnet1_3": 53, "mobilenet_v2": 53, "mobilenet_v3_large": 64,
    "mobilenet_v3_small": 54, "mobilenetv3_large_100": 64, "mobilenetv4_conv_small": 47, "regnet_x_16gf": 68,
    "regnet_x_1_6gf": 56, "regnet_x_32gf": 71, "regnet_x_3_2gf": 77, "regnet_x_400mf": 68, "regnet_x_800mf": 50,
    "regnet_x_8gf": 71, "regnet_y_128gf": 137, "regnet_y_16gf": 92, "regnet_y_1_6gf": 137, "regnet_y_32gf": 102,
    "regnet_y_3_2gf": 107, "regnet_y_400mf": 82, "regnet_y_800mf": 72, "regnet_y_8gf": 87, "regnetx_002": 41,
    "regnety_040": 112, "repvgg_a2": 23, "resnet101": 101, "resnet152": 152, "resnet18": 18, "resnet34": 34,
    "resnet50": 50, "resnet50d": 52, "resnext101_32x8d": 101, "resnext101_64x4d": 101, "resnext50_32x4d": 50,
    "rexnet_100": 76, "shufflenet_v2_x0_5": 51, "shufflenet_v2_x1_0": 51, "shufflenet_v2_x1_5": 51,
    "shufflenet_v2_x2_0": 51, "squeezenet1_0": 18, "squeezenet1_1": 18, "swin_b": 53, "swin_s": 53, "swin_t": 29,
    "swin_v2_b": 54, "swin_v2_s": 54, "swin_v2_t": 30, "vgg11": 11, "vgg11_bn": 11, "vgg13": 13, "vgg13_bn": 13,
    "vgg16": 16, "vgg16_bn": 16, "vgg19": 19, "vgg19_bn": 19, "vit_b_16": 26, "vit_b_32": 26, "vit_h_14": 66,
    "vit_l_16": 50, "vit_l_32": 50, "wide_resnet101_2": 101, "wide_resnet50_2": 50,
}
"""Weight layers (convolutions and fully connected) on each zoo model's longest path, as the course
counts VGG-16's 16: ``core.lab.depth.weight_depth`` of the model built on the meta device
(``tests/core/test_zoo.py`` recomputes some). Squeeze-excitation and attention layers count where they
lie on that path."""


def zoo_entry(arch: str) -> ZooEntry:
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    meta = weights.meta
    imagenet = meta.get("_metrics", {}).get("ImageNet-1K", {})
    return ZooEntry(
        arch=arch,
        weights=weights.name,
        params=int(meta["num_params"]),
        gmacs=float(meta["_ops"]),
        acc1=imagenet.get("acc@1"),
        acc5=imagenet.get("acc@5"),
        file_size_mb=meta.get("_file_size"),
        cached=is_cached(weights),
        spec=f"torchvision:{arch}",
        depth=DEPTHS.get(arch),
    )


def timm_cached(model: TimmModel) -> bool:
    """Whether timm's weights of ``model`` are in the Hugging Face cache timm downloads into."""
    from huggingface_hub import try_to_load_from_cache

    repo = f"timm/{model.name}.{model.tag}"
    return any(isinstance(try_to_load_from_cache(repo, file), str)
               for file in ("model.safetensors", "pytorch_model.bin"))


def timm_entry(model: TimmModel) -> ZooEntry:
    return ZooEntry(arch=model.name, weights=model.tag, params=model.params, gmacs=None, acc1=None, acc5=None,
                    file_size_mb=None, cached=timm_cached(model), spec=f"timm:{model.name}", library="timm",
                    depth=DEPTHS.get(model.name))


def zoo_entries() -> list[ZooEntry]:
    """One entry per torchvision classification architecture, sorted by name, then the timm models."""
    return [zoo_entry(arch) for arch in torchvision_classifiers()] + [timm_entry(m) for m in TIMM_ZOO]
