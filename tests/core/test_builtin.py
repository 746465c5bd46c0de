"""The built-in models and the shapes data: generator properties, shipped weights, samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.builtin.nets import ResidualBlock, ShapesNet
from cnnexplorer.core.builtin.shapes_data import (
    SHAPE_CLASSES,
    VALIDATION_SEED,
    generate_shapes,
    training_batches,
    validation_set,
)
from cnnexplorer.core.builtin.train_shapes import accuracy, train, write_samples
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.models import load_model
from cnnexplorer.core.predict import predict_images
from cnnexplorer.resource_files import resource_path


@pytest.fixture(scope="module")
def batch():
    return generate_shapes(300, seed=3)


def test_same_seed_same_batch_other_seed_other_batch(batch):
    again = generate_shapes(300, seed=3)
    other = generate_shapes(300, seed=4)
    assert torch.equal(batch.images, again.images)
    assert torch.equal(batch.labels, again.labels)
    assert torch.equal(batch.masks, again.masks)
    assert not torch.equal(batch.labels, other.labels)
    assert (batch.images - other.images).abs().mean() > 0.1


def test_batch_shapes_ranges_and_balanced_labels(batch):
    assert batch.images.shape == (300, 3, 64, 64) and batch.images.dtype == torch.float32
    assert batch.masks.shape == (300, 64, 64) and batch.masks.dtype == torch.bool
    assert 0 <= batch.images.min() and batch.images.max() <= 1
    counts = torch.bincount(batch.labels, minlength=len(SHAPE_CLASSES))
    assert len(counts) == 6 and counts.min() >= 45 and counts.max() <= 55


def test_masks_are_whole_objects_that_stand_out(batch):
    masks = batch.masks
    area = masks.flatten(1).float().mean(1)
    assert area.min() > 0.01 and area.max() < 0.4
    border = masks[:, 0].any(1) | masks[:, -1].any(1) | masks[:, :, 0].any(1) | masks[:, :, -1].any(1)
    assert not border.any(), "objects must lie wholly inside the image"
    grow = lambda m, r: torch.nn.functional.max_pool2d(m[:, None].float(), 2 * r + 1, 1, r)[:, 0] > 0  # noqa: E731
    inside = grow(masks, 0) & ~grow(~masks, 1)  # object pixels away from the anti-aliased edge
    around = grow(masks, 4) & ~grow(masks, 1)  # a band of background just outside the object
    mean = lambda m: (batch.images * m[:, None]).sum((2, 3)) / m[:, None].sum((2, 3))  # noqa: E731
    contrast = (mean(inside) - mean(around)).norm(dim=1)
    assert contrast.min() > 0.25 and contrast.median() > 0.5


def test_large_size_renders_the_same_scenes():
    small, large = generate_shapes(60, seed=5, size=64), generate_shapes(60, seed=5, size=256)
    assert large.images.shape == (60, 3, 256, 256)
    assert torch.equal(small.labels, large.labels)
    fraction = lambda m: m.flatten(1).float().mean(1)  # noqa: E731
    assert (fraction(small.masks) - fraction(large.masks)).abs().max() < 0.01


def test_training_batches_are_fresh_and_seeded():
    first, second = next(training_batches(8, seed=1)), next(training_batches(8, seed=1, start=1))
    stream = training_batches(8, seed=1)
    assert torch.equal(next(stream).images, first.images)
    assert torch.equal(next(stream).images, second.images)
    assert not torch.equal(first.images, second.images)
    with pytest.raises(UserError, match="out of range"):
        next(training_batches(8, seed=VALIDATION_SEED))


def test_shipped_weights_classify_the_validation_set():
    handle = load_model("builtin:shapes", "cpu")
    assert handle.trained and handle.class_names == list(SHAPE_CLASSES)
    data = validation_set()
    assert len(data.labels) == 2000
    assert accuracy(handle.pixel_model(), data) >= 0.97


def test_shapes_net_size_and_residual_block():
    model = ShapesNet(len(SHAPE_CLASSES))
    params = sum(p.numel() for p in model.parameters())
    assert 100_000 <= params <= 1_000_000
    assert any(isinstance(m, ResidualBlock) for m in model.modules())


def test_every_sample_is_predicted_as_its_class():
    handle = load_model("builtin:shapes", "cpu")
    paths = [resource_path("samples", f"{name}.png") for name in SHAPE_CLASSES]
    images = [Image.open(p).convert("RGB") for p in paths]
    assert all(im.size == (256, 256) for im in images)
    predicted = [top[0].label for top in predict_images(handle, images, top=1)]
    assert predicted == list(SHAPE_CLASSES)


@pytest.mark.parametrize("name, input_size, trained", [("lenet5", (1, 32, 32), True), ("tinyvgg", (3, 64, 64), False)])
def test_classic_builtins_run_a_forward_pass(name, input_size, trained):
    handle = load_model(f"builtin:{name}", "cpu")
    assert handle.trained == trained and handle.input_size == input_size
    with torch.no_grad():
        logits = handle.pixel_model()(torch.rand(2, *input_size))
    assert logits.shape == (2, 10) and handle.num_classes == 10


def test_training_is_seeded_and_saves_small_loadable_weights(tmp_path):
    lines: list[str] = []
    first = train(seed=1, steps=2, batch_size=4, log=lines.append)
    again = train(seed=1, steps=2, batch_size=4, log=lines.append)
    other = train(seed=2, steps=2, batch_size=4, log=lines.append)
    assert not first.training and lines[-1].startswith("step 2/2")
    state = first.state_dict()
    assert all(torch.equal(state[k], again.state_dict()[k]) for k in state)
    assert not torch.equal(state["classifier.weight"], other.state_dict()["classifier.weight"])
    torch.save(state, tmp_path / "shapes.pt")
    assert (tmp_path / "shapes.pt").stat().st_size < 2_000_000
    ShapesNet(len(SHAPE_CLASSES)).load_state_dict(torch.load(tmp_path / "shapes.pt", weights_only=True))


def test_write_samples_reproduces_the_shipped_samples(tmp_path):
    paths = write_samples(tmp_path)
    assert [p.name for p in paths] == [f"{name}.png" for name in SHAPE_CLASSES]
    for path in paths:
        shipped = np.asarray(Image.open(resource_path("samples", path.name)))
        assert np.array_equal(np.asarray(Image.open(path)), shipped)
