"""Which images of a set a model thinks are alike: an image's nearest neighbours by L2 distance in a
layer's feature space beside its nearest in pixel space, and how often each space's neighbours share
an image's label (leave-one-out k-NN accuracy over the set).

Feature space is a layer's output averaged over its positions (a vector layer's output as it is), as
the index records it per image (``DatasetIndex.features``); the query image goes through
``handle.pixel_model()`` the same way. Pixel space is the index's 32×32 RGB thumbnails of the model's
input, as numbers in [0, 1] (3,072 of them), the query's thumbnail made the same way (``thumbnails``).
Distances to a query are exact (float64); the k-NN accuracy compares every image with every other
one in chunks of rows (one matrix product each), so 50,000 images never need a 50,000² matrix. A query
that is itself one of the set's images is left out of its own neighbours, as each image is left out of
its own vote in the accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from cnnexplorer.core.dataset.index import pooled
from cnnexplorer.core.dataset.thumbnails import pixels_thumbnail
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress

if TYPE_CHECKING:
    from cnnexplorer.core.dataset.index_types import DatasetIndex
    from cnnexplorer.core.model_handle import ModelHandle

DISTANCES_PER_CHUNK = 1 << 24  # distances held at once by the k-NN accuracy (64 MB of float32)


def query_features(handle: ModelHandle, pixels: torch.Tensor, layer: str) -> np.ndarray:
    """The pooled output of ``layer`` for one model input ``[C,H,W]``, as the index pools it: float32 ``[D]``.

    ``NAME:input`` is the input of module ``NAME`` (the index's name for a penultimate layer no module gives).
    """
    from cnnexplorer.core.activations.recording import capture
    from cnnexplorer.core.hooks import find_layer
    from cnnexplorer.core.model_handle import eval_mode

    name, _, way = layer.rpartition(":")
    if way != "input":
        return pooled(capture(handle, pixels, [layer]).output(layer)).cpu().numpy()[0].astype(np.float32)
    seen = []
    hook = find_layer(handle.module, name).register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        with torch.no_grad(), eval_mode(handle.module):
            handle.pixel_model()(pixels[None].to(handle.device))
    finally:
        hook.remove()
    return pooled(seen[0]).cpu().numpy()[0].astype(np.float32)


def pixel_points(thumbs: np.ndarray) -> np.ndarray:
    """Thumbnails ``[N,32,32,3]`` uint8 as points of pixel space, float32 ``[N,3072]`` in [0,1]."""
    return thumbs.reshape(len(thumbs), -1).astype(np.float32) / 255.0


@dataclass(frozen=True)
class Neighbour:
    image: int  # its number in the set
    distance: float
    label: int  # index into the set's label names, -1 when unlabelled


def nearest(points: np.ndarray, query: np.ndarray, k: int, labels: np.ndarray | None = None,
            leave_out: int | None = None) -> list[Neighbour]:
    """The ``k`` points nearest to ``query`` by L2 distance (float64), nearest first, ties by image number;
    point ``leave_out`` (the query's own image) is not among them."""
    distances = np.sqrt(((points.astype(np.float64) - query.astype(np.float64)[None]) ** 2).sum(axis=1))
    order = np.lexsort((np.arange(len(points)), distances))
    order = order[order != leave_out][:k] if leave_out is not None else order[:k]
    return [Neighbour(int(i), float(distances[i]), int(labels[i]) if labels is not None else -1) for i in order]


def knn_votes(neighbour_labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Each row's majority label among its neighbours (nearest first); a tie goes to the tied label met first."""
    counts = torch.zeros(len(neighbour_labels), classes, dtype=torch.int64, device=neighbour_labels.device)
    counts.scatter_add_(1, neighbour_labels, torch.ones_like(neighbour_labels))
    first = counts.gather(1, neighbour_labels).argmax(dim=1, keepdim=True)  # argmax gives the first of equal ones
    return neighbour_labels.gather(1, first)[:, 0]


def knn_accuracy_job(points: np.ndarray, labels: np.ndarray, k: int, device: torch.device | str = "cpu",
                     what: str = "k-NN accuracy") -> Job[float | None]:
    """Leave-one-out k-NN accuracy: the fraction of labelled images whose ``k`` nearest other labelled images
    (L2) vote for the image's own label. None when fewer than two images are labelled."""
    keep = np.flatnonzero(np.asarray(labels) >= 0)
    n = len(keep)
    if n < 2:
        return None
    k = min(k, n - 1)
    data = torch.from_numpy(np.ascontiguousarray(points[keep], dtype=np.float32)).to(device)
    truth = torch.from_numpy(np.asarray(labels)[keep].astype(np.int64)).to(device)
    classes = int(truth.max()) + 1
    norms = (data * data).sum(dim=1)
    chunk = max(1, DISTANCES_PER_CHUNK // n)
    right = 0
    for start in range(0, n, chunk):
        yield Progress(start, n, what)
        rows = torch.arange(start, min(start + chunk, n), device=device)
        # |a - b|² - |a|² = |b|² - 2 a·b orders each row's images as their distances do, in one matrix product
        distances = torch.addmm(norms[None], data[rows], data.T, alpha=-2)
        distances[torch.arange(len(rows), device=device), rows] = float("inf")  # leave the image itself out
        near = distances.topk(k, dim=1, largest=False).indices
        right += int((knn_votes(truth[near], classes) == truth[rows]).sum())
    yield Progress(n, n, what)
    return right / n


@dataclass(frozen=True)
class Neighbours:
    """A query's nearest images in a layer's feature space and in pixel space, and each space's k-NN accuracy."""

    layer: str
    k: int  # the neighbours listed: the k asked for, or every other image of a smaller set
    feature: list[Neighbour]
    pixel: list[Neighbour]
    feature_knn_acc: float | None
    pixel_knn_acc: float | None
    knn_k: int | None  # the k of the accuracies: the k asked for, or every other labelled image of a smaller set
    query: int | None = None  # the query's own number in the set, left out of its neighbours; None: not in the set


def check_k(k) -> int:
    from cnnexplorer.core.checks import check_number

    return check_number("--k", k, 1, 1000, whole=True, why="the number of neighbours shown")


def neighbours_job(handle: ModelHandle, index: DatasetIndex, pixels: torch.Tensor, layer: str,
                   k: int = 8, query: int | None = None) -> Job[Neighbours]:
    """The neighbours of the model input ``pixels`` ``[C,H,W]`` among ``index``'s images (image ``query`` of the
    set, when the input is one, left out), and the k-NN accuracies of ``layer``'s feature space and of pixel space
    over the set; on a set of ``k`` other images or fewer, all of them (``Neighbours.k`` and ``knn_k`` say how
    many were used)."""
    check_k(k)
    if layer not in index.features:
        recorded = ", ".join(index.features) or "none"
        raise UserError(f"the index holds no features of layer '{layer}' (it has: {recorded}); index the data "
                        "again with that layer among the feature layers")
    if index.count == 0:
        raise UserError("the index holds no images; give data with at least one readable image")
    if query is not None and index.count == 1:
        raise UserError("the set holds no image but the query itself; give data with other images to compare it with")
    yield Progress(0, None, f"neighbours in {layer}")
    features, thumbs = index.features[layer], pixel_points(index.thumbnails)
    point = query_features(handle, pixels, layer)
    if point.shape != features.shape[1:]:
        raise UserError(f"layer '{layer}' gives {point.shape[0]} features for this image but {features.shape[1]} "
                        "in the index; index the data again with this model")
    labelled = int((np.asarray(index.labels) >= 0).sum())
    knn_k = min(k, labelled - 1) if labelled >= 2 else None
    k = min(k, index.count - (query is not None))
    feature = nearest(features, point, k, index.labels, query)
    pixel = nearest(thumbs, pixel_points(pixels_thumbnail(pixels)[None])[0], k, index.labels, query)
    feature_acc = yield from knn_accuracy_job(features, index.labels, knn_k or 1, handle.device,
                                              f"k-NN accuracy in {layer}")
    pixel_acc = yield from knn_accuracy_job(thumbs, index.labels, knn_k or 1, handle.device,
                                            "k-NN accuracy in pixel space")
    return Neighbours(layer, k, feature, pixel, feature_acc, pixel_acc, knn_k, query)
