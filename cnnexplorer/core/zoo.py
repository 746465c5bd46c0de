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

    ``gmacs`` is torchvision's ``_ops`` (its docs call them GFLOPS, counted as multiply-adds:
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
    )


def timm_cached(model: TimmModel) -> bool:
    """Whether timm's weights of ``model`` are in the Hugging Face cache timm downloads into."""
    from huggingface_hub import try_to_load_from_cache

    repo = f"timm/{model.name}.{model.tag}"
    return any(isinstance(try_to_load_from_cache(repo, file), str)
               for file in ("model.safetensors", "pytorch_model.bin"))


def timm_entry(model: TimmModel) -> ZooEntry:
    return ZooEntry(arch=model.name, weights=model.tag, params=model.params, gmacs=None, acc1=None, acc5=None,
                    file_size_mb=None, cached=timm_cached(model), spec=f"timm:{model.name}", library="timm")


def zoo_entries() -> list[ZooEntry]:
    """One entry per torchvision classification architecture, sorted by name, then the timm models."""
    return [zoo_entry(arch) for arch in torchvision_classifiers()] + [timm_entry(m) for m in TIMM_ZOO]
