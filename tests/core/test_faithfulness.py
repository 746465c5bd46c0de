"""Faithfulness measured: the imputation solves ROAD's system, the batched deletion and insertion
curves equal the one-image curves, and on the trained shapes model the maps beat the random one.

The figures run on a folder of 12 generated shapes saved at 128 px (the model sees 64 px) with a
box file of each shape's bounding box, so the box format and its mapping through the resize are
part of it. Deletion goes to the model's mean colour (RISE's zeros of the normalised input).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.attribution import compute_heatmap, curves_job
from cnnexplorer.core.builtin.shapes_data import validation_set
from cnnexplorer.core.dataset.probe import open_probe_set
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.faithfulness import dataset_job, linear_imputation, noisy_linear_imputation, read_boxes
from cnnexplorer.core.faithfulness.boxes import region
from cnnexplorer.core.faithfulness.perturb import deletion_job
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model

IMAGES = 12
WEIGHTS = {(dy, dx): (1 / 6 if dy == 0 or dx == 0 else 1 / 12) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx}


def dense_solution(image: torch.Tensor, removed: torch.Tensor) -> np.ndarray:
    """ROAD's system written out as a dense matrix and solved in float64: ``[unknowns, C]``."""
    height, width = removed.shape
    unknown = [(y, x) for y in range(height) for x in range(width) if removed[y, x]]
    place = {p: k for k, p in enumerate(unknown)}
    matrix, rhs = np.zeros((len(unknown), len(unknown))), np.zeros((len(unknown), image.shape[0]))
    for k, (y, x) in enumerate(unknown):
        for (dy, dx), weight in WEIGHTS.items():
            yy, xx = y + dy, x + dx
            if 0 <= yy < height and 0 <= xx < width:
                matrix[k, k] += weight
                if (yy, xx) in place:
                    matrix[k, place[(yy, xx)]] -= weight
                else:
                    rhs[k] += weight * image[:, yy, xx].double().numpy()
    return np.linalg.solve(matrix, rhs)


def test_the_imputation_equals_a_dense_solve_of_roads_system():
    """Within 1e-3 (float32 conjugate gradients to a relative residual of 1e-4, vs float64 dense)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 12, 14, generator=generator)
    removed = torch.rand(2, 1, 12, 14, generator=generator) < torch.tensor([0.3, 0.9]).view(2, 1, 1, 1)
    filled = linear_imputation(images, removed)
    for i in range(2):
        mask = removed[i, 0]
        expected = dense_solution(images[i], mask)
        np.testing.assert_allclose(filled[i][:, mask].T.numpy(), expected, atol=1e-3)
        assert torch.equal(filled[i][:, ~mask], images[i][:, ~mask])
    noisy = noisy_linear_imputation(images, removed, generator=torch.Generator().manual_seed(1))
    jitter = (noisy - filled)[removed.expand_as(images)]
    assert torch.equal(noisy[~removed.expand_as(images)], images[~removed.expand_as(images)])
    assert 0.007 < float(jitter.std()) < 0.013


@pytest.fixture(scope="module")
def handle():
    return load_model("builtin:shapes", "cpu")


def test_batched_curves_equal_the_one_image_curves(handle):
    """With the one-image curves' black baseline; tolerance 1e-5 on probabilities (batches of
    different sizes sum in different orders)."""
    image = validation_set(1).images[0]
    heatmap = compute_heatmap(handle, image, "gradcam")
    deletion, insertion = drive(curves_job(handle, image, heatmap, steps=6))
    model = handle.pixel_model().eval()
    target = torch.tensor([heatmap.target])
    with torch.no_grad():
        original = torch.softmax(model(image[None]), 1)[:, heatmap.target]
        fractions, batched_del, batched_ins = drive(deletion_job(
            model, image[None], torch.from_numpy(heatmap.scalar_map)[None], target, original, torch.zeros(3), steps=6, batch=4))
    np.testing.assert_allclose(fractions, deletion.fractions)
    np.testing.assert_allclose(batched_del[0], deletion.scores, atol=1e-5)
    np.testing.assert_allclose(batched_ins[0], insertion.scores, atol=1e-5)


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    """20 shapes saved at 128 px, and ``boxes.json``: each shape's bounding box in those pixels."""
    folder = tmp_path_factory.mktemp("shapes")
    data = validation_set(IMAGES)
    boxes = {}
    for i, (image, mask) in enumerate(zip(data.images, data.masks)):
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).resize((128, 128), Image.Resampling.NEAREST).save(folder / f"{i:02d}.png")
        ys, xs = torch.nonzero(mask, as_tuple=True)
        boxes[f"{i:02d}.png"] = [2 * int(xs.min()), 2 * int(ys.min()), 2 * int(xs.max()) + 2, 2 * int(ys.max()) + 2]
    (folder / "boxes.json").write_text(json.dumps(boxes))
    return folder


def test_maps_beat_the_random_map_and_gradcam_and_lrp_point_at_the_shapes(handle, shapes_folder):
    probe = open_probe_set(str(shapes_folder))
    boxes = read_boxes(shapes_folder / "boxes.json")
    table = drive(dataset_job(handle, probe, ["gradcam", "saliency", "inputxgrad", "lrp"], steps=8, batch=IMAGES,
                              boxes=boxes, road=False))
    report = table.to_json()
    print({m: {k: round(v, 3) for k, v in row.items()} for m, row in report["methods"].items()})
    assert report["count"] == IMAGES and list(report["methods"]) == ["gradcam", "saliency", "inputxgrad", "lrp", "random"]
    assert report["methods"]["gradcam"]["pointing"] >= 0.9 and report["methods"]["lrp"]["pointing"] >= 0.8
    random = report["methods"]["random"]["deletion_auc"]
    for method in ("gradcam", "saliency", "inputxgrad", "lrp"):
        assert report["methods"][method]["deletion_auc"] < random
    assert report["methods"]["gradcam"]["insertion_auc"] > report["methods"]["random"]["insertion_auc"]


def test_box_files_map_through_the_resize_and_refuse_damage(tmp_path):
    csv = tmp_path / "boxes.csv"
    csv.write_text("file,x0,y0,x1,y1\na/1.png,0,0,50,100\na/1.png,150,0,200,10\n")
    boxes = read_boxes(csv)
    assert boxes == {"a/1.png": [(0.0, 0.0, 50.0, 100.0), (150.0, 0.0, 200.0, 10.0)]}
    inside = region(boxes["a/1.png"], (200, 100), (0, 0, 200, 100), (10, 20))
    assert inside[:, :5].all() and not inside[:, 5:15].any() and inside[0, 15:].all() and not inside[1:, 15:].any()
    bad = tmp_path / "bad.json"
    bad.write_text('{"x.png": [5, 5, 1, 1]}')
    with pytest.raises(UserError, match="not a box file"):
        read_boxes(bad)
