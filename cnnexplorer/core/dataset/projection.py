"""The feature-space map: a layer's pooled features projected to 2-D by PCA (here) or t-SNE
(``tsne.py``, an optional extra), the points' groups for colouring (by label, prediction or
correctness) and which points a rectangle or a lasso encloses.

PCA centres the features and keeps the two directions of largest variance, from the eigenvectors of
the smaller of the two Gram matrices (``XᵀX`` or ``XXᵀ``, float64), which equals the SVD of the
centred data. Each direction's sign is fixed (its largest loading is positive) so the same data
always give the same map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress

COLOUR_BY = ("label", "prediction", "correct")
PROJECTIONS = ("pca", "tsne")


@dataclass(frozen=True)
class Projection:
    """``points`` float32 ``[N,2]``; for PCA (``method`` "pca") ``components`` float64 ``[2,D]`` (the two
    directions) and ``variance`` the fraction of the total variance along each; for t-SNE both None and
    ``perplexity`` the one it used."""

    points: np.ndarray
    components: np.ndarray | None
    variance: tuple[float, float] | None
    method: str = "pca"
    perplexity: float | None = None


def project_job(features: np.ndarray, method: str) -> Job[Projection]:
    """``features`` ``[N,D]`` projected to 2-D by ``method`` (one of ``PROJECTIONS``)."""
    from cnnexplorer.core.checks import check_choice

    check_choice("the map's projection (--projection)", method, PROJECTIONS)
    if method == "pca":
        yield Progress(0, None, f"principal components of {len(features):,} points")
        return pca_2d(features)
    from cnnexplorer.core.dataset.tsne import tsne_job

    return (yield from tsne_job(features))


def pca_2d(features: np.ndarray) -> Projection:
    """The first two principal components of ``features`` ``[N,D]`` and each point's coordinates on them."""
    data = np.asarray(features, dtype=np.float64)
    if data.ndim != 2 or len(data) == 0:
        raise UserError(f"a map needs features of at least one image as [images, features], not {list(data.shape)}")
    centred = data - data.mean(axis=0)
    n, d = centred.shape
    if d <= n:
        values, vectors = np.linalg.eigh(centred.T @ centred)
        values, components = values[::-1][:2], vectors[:, ::-1][:, :2].T
    else:
        values, left = np.linalg.eigh(centred @ centred.T)
        values, left = values[::-1][:2], left[:, ::-1][:, :2]
        components = (centred.T @ left).T / np.sqrt(np.maximum(values, np.finfo(float).tiny))[:, None]
    values = np.maximum(values, 0)
    components[values <= 0] = 0  # no variance along it: no direction
    components = np.vstack([components, np.zeros((2 - len(components), d))])
    values = np.concatenate([values, np.zeros(2 - len(values))])
    largest = np.abs(components).argmax(axis=1)
    components *= np.where(components[np.arange(2), largest] < 0, -1.0, 1.0)[:, None]
    total = float((centred**2).sum())
    variance = tuple(float(v / total) if total > 0 else 0.0 for v in values)
    return Projection((centred @ components.T).astype(np.float32), components, variance)


def point_groups(by: str, labels: np.ndarray, label_names: list[str] | None, predicted: np.ndarray,
                 class_names: list[str], truth: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Each point's group ``[N]`` (an index into the names returned with it), for colouring the map: by its
    ``label`` (the set's classes, then "unlabelled"), its top-1 ``prediction`` (the model's classes), or
    whether it is ``correct`` ("right", "wrong", "no label"; ``truth`` is the label as a model class, -1 for
    none, as ``Evaluation.labels`` gives it)."""
    from cnnexplorer.core.checks import check_choice

    check_choice("colouring", by, COLOUR_BY)
    if by == "prediction":
        return np.asarray(predicted, dtype=np.int64), list(class_names)
    if by == "label":
        names = list(label_names or [])
        labels = np.asarray(labels, dtype=np.int64)
        return np.where(labels >= 0, labels, len(names)), [*names, "unlabelled"]
    if truth is None:
        raise UserError("colouring by correctness needs each image's label as a model class")
    truth = np.asarray(truth, dtype=np.int64)
    return np.where(truth < 0, 2, np.where(np.asarray(predicted) == truth, 0, 1)), ["right", "wrong", "no label"]


def in_rectangle(points: np.ndarray, corner: tuple[float, float], other: tuple[float, float]) -> np.ndarray:
    """The indices of ``points`` ``[N,2]`` inside the rectangle of two opposite corners (edges included)."""
    (x0, x1), (y0, y1) = sorted((corner[0], other[0])), sorted((corner[1], other[1]))
    x, y = points[:, 0], points[:, 1]
    return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


def in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """The indices of ``points`` ``[N,2]`` inside the closed ``polygon`` ``[M,2]`` (a lasso), ascending, by the
    even-odd rule: a horizontal ray from the point crosses its edges an odd number of times.

    The points in its bounding box are sorted by height once, so each edge tests only those level with it,
    ``min(y0, y1) ≤ y < max(y0, y1)``: a lasso of 200 corners around 41,500 of 50,000 points in 14 ms (26 ms
    testing every point against every edge)."""
    polygon = np.asarray(polygon, dtype=np.float64)
    if len(polygon) < 3 or not len(points):
        return np.zeros(0, np.int64)
    near = in_rectangle(points, polygon.min(axis=0), polygon.max(axis=0))  # only these can be inside
    order = near[np.argsort(points[near, 1], kind="stable")]
    x, y = points[order, 0].astype(np.float64), points[order, 1].astype(np.float64)
    inside = np.zeros(len(order), bool)
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
        if y0 == y1:
            continue  # a horizontal edge: the ray runs along it, never across
        level = slice(*np.searchsorted(y, (min(y0, y1), max(y0, y1)), side="left"))
        inside[level] ^= x[level] < x0 + (y[level] - y0) * (x1 - x0) / (y1 - y0)
    return np.sort(order[inside])
