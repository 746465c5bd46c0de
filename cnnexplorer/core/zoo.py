"""Rows for the model-zoo browser: every torchvision classifier, from weight metadata alone.

Building 80 models to count their parameters would take minutes; torchvision's weight
metadata already records parameters, operations, accuracy and file size, so the table fills
instantly and marks which weights are already in the local cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torchvision

from cnnexplorer.core.models import torchvision_classifiers
from cnnexplorer.core.weights import is_cached


@dataclass(frozen=True)
class ZooEntry:
    """One torchvision classifier with its DEFAULT weights.

    ``gmacs`` is torchvision's ``_ops`` (its docs call them GFLOPS, counted as multiply-adds:
    4.09 for resnet50); ``file_size_mb`` is the weights file in MB; accuracies are ImageNet-1K.
    """

    arch: str
    weights: str
    params: int
    gmacs: float
    acc1: float | None
    acc5: float | None
    file_size_mb: float | None
    cached: bool
    spec: str


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


def zoo_entries() -> list[ZooEntry]:
    """One entry per torchvision classification architecture, sorted by name."""
    return [zoo_entry(arch) for arch in torchvision_classifiers()]
