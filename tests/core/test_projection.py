"""The feature-space map's PCA equals numpy's SVD of the centred data, with a sign fixed by the data;
its groups and rectangle/lasso selections equal plain loops."""

from __future__ import annotations

import numpy as np
import pytest

from cnnexplorer.core.dataset.projection import in_polygon, in_rectangle, pca_2d, point_groups
from cnnexplorer.core.errors import UserError


@pytest.mark.parametrize("shape", [(200, 6), (5, 40)])
def test_pca_equals_numpys_svd_of_the_centred_data(shape):
    rng = np.random.default_rng(shape[0])
    data = rng.normal(size=shape) * np.linspace(3, 0.5, shape[1])
    projection = pca_2d(data.astype(np.float32))
    centred = data.astype(np.float32).astype(np.float64)
    centred -= centred.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    for c in range(2):
        sign = np.sign(vt[c, np.abs(vt[c]).argmax()])
        np.testing.assert_allclose(projection.components[c], sign * vt[c], atol=1e-8)
        np.testing.assert_allclose(projection.points[:, c], centred @ (sign * vt[c]), rtol=1e-5, atol=1e-5)
        assert projection.components[c, np.abs(projection.components[c]).argmax()] > 0
    np.testing.assert_allclose(projection.variance, singular[:2] ** 2 / (singular**2).sum(), rtol=1e-8)


def test_pca_is_the_same_map_for_the_same_points_in_any_order_and_copes_with_no_variance():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(50, 4))
    order = rng.permutation(50)
    np.testing.assert_allclose(pca_2d(data[order]).points, pca_2d(data).points[order], atol=1e-9)
    single = pca_2d(np.ones((1, 3)))
    assert single.points.tolist() == [[0.0, 0.0]] and single.variance == (0.0, 0.0)
    line = pca_2d(np.arange(10.0)[:, None])
    np.testing.assert_allclose(line.points[:, 0], np.arange(10.0) - 4.5)
    assert not line.points[:, 1].any() and line.variance == (1.0, 0.0)
    with pytest.raises(UserError, match="at least one image"):
        pca_2d(np.zeros((0, 3)))


def test_selections_equal_plain_loops():
    rng = np.random.default_rng(2)
    points = rng.uniform(-1, 1, size=(400, 2)).astype(np.float32)
    chosen = in_rectangle(points, (0.5, -0.2), (-0.3, 0.4))
    assert chosen.tolist() == [i for i, (x, y) in enumerate(points) if -0.3 <= x <= 0.5 and -0.2 <= y <= 0.4]
    triangle = np.array([[0, 0], [1, 0], [0, 1]], dtype=float)  # inside: x, y >= 0 and x + y <= 1
    inside = in_polygon(points, triangle)
    assert inside.tolist() == [i for i, (x, y) in enumerate(points) if x > 0 and y > 0 and x + y < 1]
    assert in_polygon(points, triangle[:2]).tolist() == []


def test_point_groups_by_label_prediction_and_correctness():
    labels, predicted, truth = np.array([0, 1, -1, 1]), np.array([0, 2, 1, 1]), np.array([0, 1, -1, -1])
    groups, names = point_groups("label", labels, ["cat", "dog"], predicted, ["a", "b", "c"])
    assert groups.tolist() == [0, 1, 2, 1] and names == ["cat", "dog", "unlabelled"]
    groups, names = point_groups("prediction", labels, ["cat", "dog"], predicted, ["a", "b", "c"])
    assert groups.tolist() == [0, 2, 1, 1] and names == ["a", "b", "c"]
    groups, names = point_groups("correct", labels, ["cat", "dog"], predicted, ["a", "b", "c"], truth)
    assert groups.tolist() == [0, 1, 2, 2] and names == ["right", "wrong", "no label"]
    with pytest.raises(UserError, match="colouring"):
        point_groups("size", labels, None, predicted, [])
    with pytest.raises(UserError, match="correctness"):
        point_groups("correct", labels, None, predicted, [])


def winding_inside(point, outline) -> bool:
    """Brute force, by another rule: the winding number of ``outline`` around ``point`` (non-zero inside a simple
    polygon), summed edge by edge in plain Python."""
    x, y = point
    winding = 0
    for (x0, y0), (x1, y1) in zip(outline, np.roll(outline, -1, axis=0)):
        side = (x1 - x0) * (y - y0) - (x - x0) * (y1 - y0)
        if y0 <= y < y1 and side > 0:
            winding += 1
        elif y1 <= y < y0 and side < 0:
            winding -= 1
    return winding != 0


@pytest.mark.parametrize("outline", [
    [(0, 0), (4, 0), (2, 3)],  # a triangle
    [(0, 0), (4, 0), (4, 1), (1, 1), (1, 4), (0, 4)],  # an L: concave, its corner square empty
    [(2 + (1.8 if k % 2 else 0.7) * np.cos(k * np.pi / 6), 2 + (1.8 if k % 2 else 0.7) * np.sin(k * np.pi / 6))
     for k in range(12)],  # a six-pointed star
])
def test_a_lasso_holds_exactly_the_points_inside_its_outline(outline):
    outline = np.array(outline, dtype=np.float64)
    xy = np.random.default_rng(1).uniform(-0.5, 4.5, (3000, 2))
    expected = [i for i, point in enumerate(xy) if winding_inside(point, outline)]
    assert in_polygon(xy, outline).tolist() == expected and 100 < len(expected) < 2900
    assert in_polygon(xy, outline[::-1]).tolist() == expected  # drawn either way round
    assert in_polygon(xy, outline[:2]).size == 0  # a stroke, not an outline
