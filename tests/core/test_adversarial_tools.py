"""What the GUI and the CLI build on: one-image attacks and saving, the robustness images,
and attack-then-explain pictures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.adversarial import (PGD, as_uint8, attack_image, curve_images, explain_job, save_adversarial)
from cnnexplorer.core.builtin.shapes_data import VALIDATION_SEED, generate_shapes
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.images import load_image
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model


@pytest.fixture(scope="module")
def handle():
    return load_model("builtin:shapes", "cpu")


@pytest.fixture(scope="module")
def shapes():
    return generate_shapes(8, VALIDATION_SEED)


def save(path, pixels: torch.Tensor):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(as_uint8(pixels).permute(1, 2, 0).numpy()).save(path)


def test_saved_adversarial_png_reloads_to_the_judged_pixels(handle, shapes, tmp_path):
    result = drive(attack_image(handle, shapes.images[0], PGD()))
    path = save_adversarial(tmp_path / "adv.png", result)
    reloaded = handle.preprocessing.to_tensor(load_image(path).image)
    assert torch.equal(reloaded, result.adversarial[0])
    with pytest.raises(UserError, match="as a .png file"):
        save_adversarial(tmp_path / "adv.jpg", result)
    assert not (tmp_path / "adv.jpg").exists()


def test_a_target_the_model_already_predicts_is_refused(handle, shapes):
    label = int(shapes.labels[0])
    with pytest.raises(UserError, match="already predicts"):
        drive(attack_image(handle, shapes.images[0], PGD(), target=label))


def test_folder_labels_come_from_class_folders_and_else_from_the_clean_prediction(handle, shapes, tmp_path):
    names = handle.class_names
    for i in range(6):
        save(tmp_path / names[int(shapes.labels[i])].upper() / f"{i}.png", shapes.images[i])
    save(tmp_path / "loose.png", shapes.images[6])
    save(tmp_path / "unknown" / "x.png", shapes.images[7])
    data = drive(curve_images(handle, tmp_path))
    assert data.images.shape == (8, 3, 64, 64) and data.labelled == 6
    expected = dict(zip(["loose.png", "x.png"], [6, 7]))
    paths = sorted(p for p in tmp_path.rglob("*.png"))
    for path, label in zip(paths, data.labels.tolist()):
        if path.name in expected:
            with torch.no_grad():
                predicted = int(handle.pixel_model()(shapes.images[expected[path.name]][None]).argmax())
            assert label == predicted
        else:
            assert label == int(shapes.labels[int(path.stem)])
    assert len(drive(curve_images(handle, tmp_path, limit=3)).labels) == 3


def test_curve_images_explain_what_is_wrong(handle, tmp_path):
    with pytest.raises(UserError, match="holds no images"):
        drive(curve_images(handle, tmp_path))
    with pytest.raises(UserError, match="not found"):
        drive(curve_images(handle, tmp_path / "missing"))
    lenet = load_model("builtin:lenet5", "cpu")
    with pytest.raises(UserError, match="fits only builtin:shapes"):
        drive(curve_images(lenet))
    builtin = drive(curve_images(handle, limit=12))
    assert torch.equal(builtin.labels, generate_shapes(12, VALIDATION_SEED).labels)


def test_explanation_compares_the_layer_for_both_images(handle, shapes):
    result = drive(attack_image(handle, shapes.images[1], PGD()))
    plain = drive(explain_job(handle, result))
    assert plain.activations is None and plain.layer is None
    assert plain.gradcam.dtype == np.uint8 and plain.gradcam.shape[2] == 3
    explained = drive(explain_job(handle, result, "features.4"))
    assert explained.classes == (int(result.before[0].argmax()), int(result.after[0].argmax()))
    picture = explained.activations
    assert picture.dtype == np.uint8 and picture.shape[2] == 3
    unchanged = drive(explain_job(handle, replace(result, adversarial=result.original), "features.4"))
    assert unchanged.activations.shape == picture.shape

    def coloured(rgb: np.ndarray) -> int:
        """Strongly red or blue pixels in the right third (the difference grid)."""
        part = rgb[:, rgb.shape[1] * 2 // 3 :].astype(int)
        return int(((part.max(axis=2) - part.min(axis=2)) > 80).sum())

    assert coloured(unchanged.activations) == 0  # the same image twice: a blank difference
    assert coloured(picture) > 100
