"""Attacks on the trained shapes model over 200 generated images: the headline figures.

Every figure is measured on 8-bit images (the attack's own quantised output, or PNG files
written and read back), at the model's 64×64 input resolution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnexplorer.core.adversarial import BIM, FGSM, PGD, DeepFool, as_uint8
from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES, validation_set
from cnnexplorer.core.images import load_image
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.core.render import png_bytes

N = 200
EPS = 8 / 255


@pytest.fixture(scope="module")
def handle():
    return load_model("builtin:shapes", "cpu")


@pytest.fixture(scope="module")
def batch():
    return validation_set(N)  # the fixed held-out set: never seen in training


@pytest.fixture(scope="module")
def pgd(handle, batch):
    """torchattacks' defaults: ε 8/255, α 2/255, 10 steps, random start, untargeted."""
    return drive(PGD().run(handle.pixel_model(), batch.images, batch.labels))


@pytest.fixture(scope="module")
def fgsm(handle, batch):
    return drive(FGSM(EPS).run(handle.pixel_model(), batch.images, batch.labels))


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(dim=1) == labels).float().mean())


def test_pgd_takes_accuracy_from_above_95_to_below_5_percent(pgd, batch):
    assert accuracy(pgd.before, batch.labels) >= 0.95
    assert accuracy(pgd.after, batch.labels) <= 0.05
    assert pgd.success.float().mean() >= 0.95
    assert float(pgd.linf.max()) <= EPS


def test_targeted_pgd_reaches_the_next_class(handle, batch):
    """ε 8/255, α 2/255, 20 steps (twice the default), random start, stop at success."""
    targets = (batch.labels + 1) % len(SHAPE_CLASSES)
    result = drive(PGD(steps=20, early_stop=True).run(handle.pixel_model(), batch.images, batch.labels, targets))
    assert result.success.float().mean() >= 0.90
    reached = result.after.argmax(dim=1) == targets
    assert torch.equal(reached, result.success)
    assert float(result.linf.max()) <= EPS


def test_fgsm_succeeds_less_often_than_pgd(fgsm, pgd):
    assert fgsm.success.float().mean() < pgd.success.float().mean()
    assert fgsm.success.float().mean() > 0.2  # a real attack, just a weaker one


def test_deepfool_finds_smaller_perturbations_than_fgsm(handle, batch, fgsm):
    subset = slice(0, 64)
    result = drive(DeepFool().run(handle.pixel_model(), batch.images[subset], batch.labels[subset]))
    assert result.success.float().mean() >= 0.95
    deepfool_l2 = result.l2[result.success].median()
    fgsm_l2 = fgsm.l2[fgsm.success].median()
    assert deepfool_l2 < 0.5 * fgsm_l2


def save_pngs(folder, pixels: torch.Tensor, prefix: str) -> list:
    paths = []
    for i, image in enumerate(as_uint8(pixels)):
        path = folder / f"{prefix}{i:03d}.png"
        path.write_bytes(png_bytes(image.permute(1, 2, 0).numpy()))
        paths.append(path)
    return paths


def reload(handle, paths) -> torch.Tensor:
    return torch.stack([handle.preprocessing.to_tensor(load_image(p).image) for p in paths])


def test_saved_pngs_keep_the_budget_exactly_and_still_fool_the_model(handle, batch, pgd, tmp_path):
    originals = reload(handle, save_pngs(tmp_path, pgd.original, "orig"))
    adversarials = reload(handle, save_pngs(tmp_path, pgd.adversarial, "adv"))
    # the 8-bit original is the generated image rounded, and PNG round trips are exact
    assert float((pgd.original - batch.images).abs().max()) <= 0.5 / 255 + 1e-6
    assert torch.equal(adversarials, pgd.adversarial)
    levels = (as_uint8(adversarials).int() - as_uint8(originals).int()).abs()
    assert int(levels.max()) <= round(EPS * 255)
    assert int(levels.max()) == 8  # the budget is used, not wasted by rounding

    with torch.no_grad():
        logits = handle.pixel_model()(adversarials)
    assert accuracy(logits, batch.labels) <= 0.05
    np.testing.assert_array_equal(logits.argmax(dim=1).numpy(), pgd.after.argmax(dim=1).numpy())


def test_bim_stays_in_the_ball_without_random_start(handle, batch):
    result = drive(BIM(eps=4 / 255, steps=3).run(handle.pixel_model(), batch.images[:16], batch.labels[:16]))
    levels = (as_uint8(result.adversarial).int() - as_uint8(result.original).int()).abs()
    assert int(levels.max()) == 4
    assert int(result.iterations.min()) == 3
