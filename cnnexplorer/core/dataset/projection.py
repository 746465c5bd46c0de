"""The feature-space map: a layer's pooled features projected to 2-D by PCA, the points' colours (by
label, prediction or correctness) and which points a rectangle or a lasso encloses.

PCA centres the features and keeps the two directions of largest variance, from the eigenvectors of
the smaller of the two Gram matrices (``XᵀX`` or ``XXᵀ``, float64), which equals the SVD of the
centred data. Each direction's sign is fixed (its largest loading is positive) so the same data
always give the same map.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from cnnexplorer.core.errors import UserError

COLOUR_BY = ("label", "prediction", "correct")
RIGHT, WRONG, UNKNOWN = (46, 150, 80), (200, 50, 50), (160, 166, 175)
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # matplotlib's tab10


@dataclass(frozen=True)
class Projection:
    """``points`` float32 ``[N,2]``; ``components`` float64 ``[2,D]`` (the two directions); ``variance``
    the fraction of the total variance along each."""

    points: np.ndarray
    components: np.ndarray
    variance: tuple[float, float]


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


def class_colour(i: int) -> tuple[int, int, int]:
    """Class ``i``'s colour: tab10 for the first ten, then hues spread by the golden ratio."""
    if i < len(PALETTE):
        return PALETTE[i]
    r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.85)
    return int(r * 255), int(g * 255), int(b * 255)


def point_colours(by: str, labels: np.ndarray, predicted: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 ``[N,3]`` per point: by its ``label`` (the set's classes; unlabelled grey), its top-1
    ``prediction`` (the model's classes), or whether it is ``correct`` (green/red; grey where ``truth``, the
    label as a model class, is -1)."""
    from cnnexplorer.core.checks import check_choice

    check_choice("colouring", by, COLOUR_BY)
    if by == "correct":
        if truth is None:
            raise UserError("colouring by correctness needs each image's label as a model class")
        known = np.asarray(truth) >= 0
        colours = np.where((np.asarray(predicted) == truth)[:, None], RIGHT, WRONG)
        return np.where(known[:, None], colours, UNKNOWN).astype(np.uint8)
    classes = np.asarray(labels if by == "label" else predicted, dtype=np.int64)
    table = np.array([class_colour(i) for i in range(int(classes.max(initial=-1)) + 1)] + [UNKNOWN], dtype=np.uint8)
    return table[np.where(classes >= 0, classes, len(table) - 1)]


def in_rectangle(points: np.ndarray, corner: tuple[float, float], other: tuple[float, float]) -> np.ndarray:
    """The indices of ``points`` ``[N,2]`` inside the rectangle of two opposite corners (edges included)."""
    (x0, x1), (y0, y1) = sorted((corner[0], other[0])), sorted((corner[1], other[1]))
    x, y = points[:, 0], points[:, 1]
    return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


def in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """The indices of ``points`` ``[N,2]`` inside the closed ``polygon`` ``[M,2]`` (a lasso; even-odd rule)."""
    polygon = np.asarray(polygon, dtype=np.float64)
    if len(polygon) < 3:
        return np.zeros(0, dtype=np.int64)
    near = in_rectangle(points, polygon.min(axis=0), polygon.max(axis=0))  # only these can be inside
    x, y = points[near, 0:1].astype(np.float64), points[near, 1:2].astype(np.float64)
    (ax, ay), (bx, by) = polygon.T[:, None], np.roll(polygon, -1, axis=0).T[:, None]
    crosses = (ay > y) != (by > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = ax + (y - ay) * (bx - ax) / (by - ay)
    return near[np.logical_and(crosses, x < at).sum(axis=1) % 2 == 1]
