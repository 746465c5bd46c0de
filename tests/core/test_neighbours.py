"""Nearest neighbours in a layer's feature space and in pixel space equal a brute-force search, and the
leave-one-out k-NN accuracy equals a loop that votes image by image."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES, generate_shapes
from cnnexplorer.core.dataset import neighbours as nb
from cnnexplorer.core.dataset.thumbnails import pixels_thumbnail
from cnnexplorer.core.dataset.index_types import DatasetIndex
from cnnexplorer.core.dataset.probe import open_probe_set
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model


def shapes_folder(root: Path, n: int, seed: int = 5, classes: tuple[str, ...] | None = SHAPE_CLASSES) -> list[Path]:
    """``n`` generated shapes as PNG files, one sub-folder per class (named after ``classes``; None: no sub-folders)."""
    batch = generate_shapes(n, seed)
    files = []
    for i, (image, label) in enumerate(zip(batch.images, batch.labels)):
        file = (root / classes[int(label)] if classes else root) / f"{i:03d}.png"
        file.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(file)
        files.append(file)
    return files


def shapes_probe(root: Path, n: int, labelled: bool = True):
    shapes_folder(root, n, classes=SHAPE_CLASSES if labelled else None)
    return open_probe_set(str(root))


def brute_force_index(handle, probe, feature_layers: list[str]) -> DatasetIndex:
    """An index made one image at a time, each layer's output read from the model's own children."""
    outputs: dict[str, list] = {name: [] for name in feature_layers}
    tops, probs, thumbs = [], [], []
    modules = dict(handle.module.named_modules())
    for i in range(len(probe)):
        pixels = handle.preprocessing.to_tensor(probe.image(i))[None]
        seen = {}
        hooks = [modules[name].register_forward_hook(lambda m, a, out, name=name: seen.__setitem__(name, out))
                 for name in feature_layers]
        try:
            with torch.no_grad():
                logits = handle.pixel_model()(pixels)
        finally:
            for hook in hooks:
                hook.remove()
        for name in feature_layers:
            out = seen[name]
            outputs[name].append((out.mean(dim=(2, 3)) if out.ndim == 4 else out)[0].numpy())
        p = torch.softmax(logits, dim=1)[0]
        values, indices = p.topk(min(5, len(p)))
        tops.append(indices.numpy())
        probs.append(values.numpy())
        thumbs.append(pixels_thumbnail(pixels[0]))
    count = len(probe)
    return DatasetIndex(
        key="test", model_spec=handle.spec, data_spec=probe.spec, count=count, top_k=9, layers={},
        features={name: np.stack(v).astype(np.float32) for name, v in outputs.items()},
        labels=np.array([probe.label(i) for i in range(count)], dtype=np.int64), top5=np.stack(tops),
        top5_probs=np.stack(probs).astype(np.float32), thumbnails=np.stack(thumbs),
        class_names=list(handle.class_names), label_names=probe.label_names,
        sources=[probe.source(i) for i in range(count)])


def brute_nearest(points, query, k, leave_out=None):
    distances = [(math.sqrt(sum((float(a) - float(b)) ** 2 for a, b in zip(p, query))), i) for i, p in enumerate(points)
                 if i != leave_out]
    return sorted(distances)[:k]


def brute_knn_accuracy(points, labels, k):
    """Each labelled image votes with its k nearest other labelled images, a tie going to the label met first."""
    keep = [i for i in range(len(labels)) if labels[i] >= 0]
    right = 0
    for i in keep:
        others = sorted((float(np.sqrt(((points[i].astype(float) - points[j]) ** 2).sum())), j) for j in keep if j != i)
        voters = [labels[j] for _, j in others[:k]]
        counts = {label: voters.count(label) for label in voters}
        best = max(counts.values())
        right += int(next(v for v in voters if counts[v] == best) == labels[i])
    return right / len(keep)


def test_nearest_equals_a_brute_force_search():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(60, 7)).astype(np.float32)
    points[10] = points[3]  # a tie: the smaller image number first
    query = points[3] + 0.01
    found = nb.nearest(points, query, 6, np.arange(60))
    expected = brute_nearest(points, query, 6)
    assert [n.image for n in found] == [i for _, i in expected]
    assert [n.image for n in found[:2]] == [3, 10]
    np.testing.assert_allclose([n.distance for n in found], [d for d, _ in expected], rtol=1e-12)
    assert [n.label for n in found] == [n.image for n in found]
    without = nb.nearest(points, points[3], 6, leave_out=3)  # the query's own point left out, its twin kept
    assert [n.image for n in without] == [i for _, i in brute_nearest(points, points[3], 6, leave_out=3)]
    assert without[0].image == 10 and without[0].distance == 0 and 3 not in [n.image for n in without]


@pytest.mark.parametrize("k", [1, 4, 5])
def test_knn_accuracy_equals_a_vote_by_vote_loop(k, monkeypatch):
    rng = np.random.default_rng(k)
    labels = rng.integers(0, 3, 90)
    points = rng.normal(size=(90, 5)) + labels[:, None] * 0.8
    labels[::17] = -1  # unlabelled images neither vote nor count
    monkeypatch.setattr(nb, "DISTANCES_PER_CHUNK", 700)  # many chunks
    accuracy = drive(nb.knn_accuracy_job(points.astype(np.float32), labels, k))
    assert accuracy == brute_knn_accuracy(points.astype(np.float32), labels, k)
    assert drive(nb.knn_accuracy_job(points[:1], labels[:1], k)) is None


def test_neighbours_of_an_image_in_feature_and_pixel_space(tmp_path):
    handle = load_model("builtin:shapes", "cpu")
    probe = shapes_probe(tmp_path, 24)
    index = brute_force_index(handle, probe, ["features"])
    query = 5
    pixels = handle.preprocessing.to_tensor(probe.image(query))
    found = drive(nb.neighbours_job(handle, index, pixels, "features", k=4))
    with torch.no_grad():
        own = handle.module.features((pixels[None] - 0.5) / 0.25).mean(dim=(2, 3))[0].numpy()
    np.testing.assert_allclose(own, index.features["features"][query], rtol=1e-5, atol=1e-6)
    expected = brute_nearest(index.features["features"], own, 4)
    assert [n.image for n in found.feature] == [i for _, i in expected] and found.feature[0].image == query
    np.testing.assert_allclose([n.distance for n in found.feature], [d for d, _ in expected], atol=1e-4)
    thumbs = index.thumbnails.reshape(24, -1).astype(np.float64) / 255
    expected = brute_nearest(thumbs, thumbs[query], 4)
    assert [n.image for n in found.pixel] == [i for _, i in expected] and found.pixel[0].distance == 0
    assert [n.label for n in found.pixel] == [probe.label(i) for _, i in expected]
    assert found.feature_knn_acc == brute_knn_accuracy(index.features["features"], index.labels, 4)
    assert found.pixel_knn_acc == brute_knn_accuracy(thumbs.astype(np.float32), index.labels, 4)
    every = drive(nb.neighbours_job(handle, index, pixels, "features", k=40))  # more than the set holds
    assert every.k == 24 and sorted(n.image for n in every.feature) == list(range(24)) and len(every.pixel) == 24
    assert every.knn_k == 23 and found.knn_k == 4 and found.query is None
    assert every.feature_knn_acc == brute_knn_accuracy(index.features["features"], index.labels, 23)
    member = drive(nb.neighbours_job(handle, index, pixels, "features", k=4, query=query))  # the query is image 5
    assert member.query == query and member.k == 4
    expected = brute_nearest(index.features["features"], own, 4, leave_out=query)
    assert [n.image for n in member.feature] == [i for _, i in expected]
    assert [n.image for n in member.pixel] == [i for _, i in brute_nearest(thumbs, thumbs[query], 4, leave_out=query)]
    assert (member.feature_knn_acc, member.pixel_knn_acc) == (found.feature_knn_acc, found.pixel_knn_acc)
    others = drive(nb.neighbours_job(handle, index, pixels, "features", k=40, query=query))
    assert others.k == 23 and sorted(n.image for n in others.feature) == [i for i in range(24) if i != query]
    with pytest.raises(UserError, match="no features of layer 'classifier'"):
        drive(nb.neighbours_job(handle, index, pixels, "classifier"))
    with pytest.raises(UserError, match="--k"):
        drive(nb.neighbours_job(handle, index, pixels, "features", k=0))


def test_an_unlabelled_set_has_neighbours_but_no_knn_accuracy(tmp_path):
    handle = load_model("builtin:shapes", "cpu")
    probe = shapes_probe(tmp_path, 6, labelled=False)
    index = brute_force_index(handle, probe, ["classifier"])
    found = drive(nb.neighbours_job(handle, index, handle.preprocessing.to_tensor(probe.image(0)), "classifier", k=3))
    assert len(found.feature) == 3 and all(n.label == -1 for n in found.feature)
    assert found.feature_knn_acc is None and found.pixel_knn_acc is None
    alone = shapes_probe(tmp_path / "one", 1, labelled=False)
    one = brute_force_index(handle, alone, ["classifier"])
    with pytest.raises(UserError, match="no image but the query itself"):
        drive(nb.neighbours_job(handle, one, handle.preprocessing.to_tensor(alone.image(0)), "classifier", query=0))


def test_a_modules_input_is_a_feature_space_too():
    handle = load_model("builtin:shapes", "cpu")
    pixels = torch.rand(3, 64, 64)
    with torch.no_grad():
        flat = handle.module.flatten(handle.module.pool(handle.module.features((pixels[None] - 0.5) / 0.25)))
    np.testing.assert_allclose(nb.query_features(handle, pixels, "classifier:input"), flat[0].numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(nb.query_features(handle, pixels, "flatten"), flat[0].numpy(), rtol=1e-5, atol=1e-6)
