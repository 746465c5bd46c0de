"""Evaluation on a labelled set equals a plain loop over the images; labels are matched to the model's
classes by name; unlabelled or unmatched data are refused in one clear message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnexplorer.core.dataset.evaluate import evaluate_index, evaluate_job, evaluation_of, match_labels
from cnnexplorer.core.dataset.index import index_job
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from tests.core.test_neighbours import shapes_probe

CLASSES = ["circle", "square", "triangle", "star"]


def plain_loop(labels, label_names, class_names, top5, probs):
    """Every figure by a loop over the images, the way one would count by hand."""
    count = right1 = right5 = 0
    confusion = [[0] * len(class_names) for _ in class_names]
    per_class: dict[int, list[int]] = {}
    mistakes = []
    for i, label in enumerate(labels):
        if label < 0:
            continue
        name = label_names[label]
        matches = [c for c, n in enumerate(class_names) if n == name] or \
                  [c for c, n in enumerate(class_names) if n.lower() == name.lower()]
        if len(matches) != 1:
            continue
        truth = matches[0]
        count += 1
        right1 += int(top5[i][0] == truth)
        right5 += int(truth in list(top5[i]))
        confusion[truth][top5[i][0]] += 1
        per_class.setdefault(truth, [0, 0])
        per_class[truth][0] += 1
        per_class[truth][1] += int(top5[i][0] == truth)
        if top5[i][0] != truth:
            mistakes.append((-float(probs[i][0]), i))
    return count, right1 / count, right5 / count, confusion, per_class, [i for _, i in sorted(mistakes)]


def test_evaluation_equals_a_plain_loop():
    rng = np.random.default_rng(3)
    n = 300
    label_names = ["Square", "circle", "hexagon", "star"]  # another order, another case, one unknown label
    labels = rng.integers(-1, len(label_names), n)
    scores = rng.random((n, len(CLASSES)))
    scores[np.arange(n), rng.integers(0, len(CLASSES), n)] += 0.5
    probs = scores / scores.sum(axis=1, keepdims=True)
    top5 = np.argsort(-probs, axis=1, kind="stable")
    top5_probs = np.take_along_axis(probs, top5, axis=1).astype(np.float32)
    top5_probs[:5, 0] = top5_probs[5, 0]  # equal confidences: set order decides

    evaluation = evaluation_of(labels, label_names, CLASSES, top5, top5_probs, data_spec="folder:x",
                               sources=[f"/x/{i}.png" for i in range(n)])
    count, top1, top5_acc, confusion, per_class, mistakes = plain_loop(labels, label_names, CLASSES, top5, top5_probs)
    assert evaluation.count == count and evaluation.left_out == n - count
    assert evaluation.top1 == top1 and evaluation.top5_accuracy == top5_acc
    assert evaluation.confusion.tolist() == confusion
    assert evaluation.per_class() == {c: (t, r / t) for c, (t, r) in per_class.items()}
    assert [m.image for m in evaluation.mistakes()] == mistakes
    assert evaluation.unmatched == ["hexagon"]
    for true in range(len(CLASSES)):  # every cell lists exactly its images
        for predicted in range(len(CLASSES)):
            cell = evaluation.cell(true, predicted)
            assert len(cell) == confusion[true][predicted]
            assert all(top5[i][0] == predicted and label_names[labels[i]].lower() == CLASSES[true] for i in cell)
    report = evaluation.to_json(mistakes=3)
    assert report["classes"] == CLASSES and report["confusion"] == confusion
    assert report["count"] == count and report["top1"] == top1 and report["top5"] == top5_acc
    assert [m["image"] for m in report["mistakes"]] == [f"/x/{i}.png" for i in mistakes[:3]]
    assert report["unmatched_labels"] == ["hexagon"] and report["skipped"] == {}


def test_labels_match_the_models_classes_by_name_then_ignoring_case():
    mapping, unmatched = match_labels(["star", "CIRCLE", "dog"], CLASSES)
    assert mapping.tolist() == [3, 0, -1] and unmatched == ["dog"]
    mapping, _ = match_labels(["Cat"], ["cat", "Cat", "CAT"])  # an exact name wins over case-blind ones
    assert mapping.tolist() == [1]
    with pytest.raises(UserError, match="match none of the model's classes"):
        match_labels(["cat", "dog"], CLASSES)
    with pytest.raises(UserError, match="no labels"):
        match_labels(None, CLASSES)
    with pytest.raises(UserError, match="no image of this data has a label"):
        evaluation_of(np.array([-1, 2]), ["star", "dog", "cow"], CLASSES, np.zeros((2, 4)), np.zeros((2, 4)))


def test_evaluate_job_and_the_index_give_what_each_image_alone_gives(tmp_path):
    handle = load_model("builtin:shapes", "cpu")
    probe = shapes_probe(tmp_path / "data", 13)
    evaluation = drive(evaluate_job(handle, probe, batch_size=5))
    from_index = evaluate_index(drive(index_job(handle, probe, ["classifier"], batch_size=4, cache_dir=tmp_path)))
    with torch.no_grad():
        logits = torch.cat([handle.pixel_model()(handle.preprocessing.to_tensor(probe.image(i))[None])
                            for i in range(len(probe))])
    predicted = logits.argmax(dim=1).numpy()
    assert probe.label_names != handle.class_names  # folders sort by name: only names tie labels to classes
    truth = np.array([handle.class_names.index(probe.label_names[probe.label(i)]) for i in range(len(probe))])
    for result in (evaluation, from_index):
        assert result.count == len(probe)
        assert result.top1 == pytest.approx(float((predicted == truth).mean()), abs=0)
        np.testing.assert_array_equal(result.top5[:, 0], predicted)
        assert result.confusion.sum() == len(probe)
        np.testing.assert_array_equal(np.diag(result.confusion).sum(), (predicted == truth).sum())
    np.testing.assert_array_equal(evaluation.top5, from_index.top5)
    np.testing.assert_allclose(evaluation.top5_probs, from_index.top5_probs, atol=1e-6)


def test_a_confusion_matrix_of_many_classes_keeps_its_cells_and_drops_the_text():
    from cnnexplorer.pictures.confusion import MAX_MATRIX, render_confusion

    rng = np.random.default_rng(4)
    classes = [f"class number {c}" for c in range(150)]
    labels = rng.integers(0, 150, 2000)
    top5 = np.stack([labels if c == 0 else rng.integers(0, 150, 2000) for c in range(5)], axis=1)
    top5[::3, 0] = rng.integers(0, 150, len(top5[::3]))
    evaluation = evaluation_of(labels, classes, classes, top5, np.full((2000, 5), 0.2))
    pixels = render_confusion(evaluation, "many classes")
    assert pixels.dtype == np.uint8 and pixels.shape[1] <= MAX_MATRIX + 200 and pixels.shape[0] <= MAX_MATRIX + 150
