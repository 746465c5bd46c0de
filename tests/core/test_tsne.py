"""The t-SNE map (openTSNE): clusters kept apart, the same features the same map, progress while it runs, a
cancel that stops it, and clear errors for too few images, identical features or the optional library missing."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from cnnexplorer.core.dataset.projection import project_job
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Progress, drive


def clusters(per: int = 20, dims: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), per)
    return (rng.normal(size=(3, dims)) * 4)[labels] + rng.normal(size=(len(labels), dims)), labels


def test_tsne_keeps_each_point_beside_its_own_cluster_and_is_repeatable():
    features, labels = clusters()
    steps, job = [], project_job(features, "tsne")
    while True:
        try:
            steps.append(next(job))
        except StopIteration as stop:
            projection = stop.value
            break
    assert projection.method == "tsne" and projection.points.shape == (60, 2) and projection.variance is None
    assert projection.perplexity == pytest.approx(59 / 3), "a small set: a third of the other points"
    assert all(isinstance(step, Progress) for step in steps) and steps[-1].done == steps[-1].total == 750
    distance = ((projection.points[:, None] - projection.points[None]) ** 2).sum(-1)
    np.fill_diagonal(distance, np.inf)
    assert (labels[distance.argmin(1)] == labels).mean() == 1.0, "every point's nearest is of its own cluster"
    again = drive(project_job(features, "tsne")).points
    np.testing.assert_allclose(again, projection.points, atol=1e-3)


def test_a_cancelled_tsne_stops_running():
    features = np.random.default_rng(1).normal(size=(3000, 10))
    job = project_job(features, "tsne")
    for step in job:
        if step.done >= 50:
            break
    job.close()
    deadline = time.monotonic() + 20
    while any(thread.name == "t-SNE" for thread in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(thread.name == "t-SNE" for thread in threading.enumerate())


def test_tsne_needs_five_images_and_says_how_to_get_its_library(monkeypatch):
    with pytest.raises(UserError, match="at least 5 images"):
        drive(project_job(np.zeros((4, 3)), "tsne"))
    monkeypatch.setitem(sys.modules, "openTSNE", None)  # as if the optional part were not installed
    with pytest.raises(UserError, match=r"pip install 'cnnexplorer\[tsne\]'"):
        drive(project_job(clusters()[0], "tsne"))
    with pytest.raises(UserError, match="projection"):
        drive(project_job(clusters()[0], "umap"))


def test_tsne_of_identical_features_says_so_and_a_few_distinct_ones_map():
    with pytest.raises(UserError, match="the 6 images have the same features"):
        drive(project_job(np.ones((6, 4)), "tsne"))
    features = np.repeat(np.eye(2, 4), [5, 1], axis=0)  # five copies of one image and one other
    points = drive(project_job(features, "tsne")).points
    assert np.isfinite(points).all() and np.abs(points[5] - points[0]).sum() > np.abs(points[4] - points[0]).sum()
