"""The shipped handwritten digits (``builtin:digits``) and the LeNet-5 trained on them out of the box."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from cnnexplorer.core.builtin import BUILTIN_MODELS
from cnnexplorer.core.builtin.digits_data import all_digits, read_grids, split
from cnnexplorer.core.builtin.train_lenet5 import RECIPE, main, train
from cnnexplorer.core.builtin.nets import LeNet5
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.data import DATASPEC_HELP, open_data
from cnnexplorer.resource_files import resource_path


def test_the_shipped_file_is_the_uci_test_set_with_its_licence():
    grids, labels = read_grids()
    assert grids.shape == (1797, 8, 8) and grids.min() == 0 and grids.max() == 16
    assert sorted(set(labels.tolist())) == list(range(10))
    licence = resource_path("data", "DIGITS-LICENSE.txt").read_text()
    assert "CC BY 4.0" in licence and "Alpaydin" in licence and "UCI Machine Learning Repository" in licence


def test_digits_are_framed_as_mnist_white_on_black_in_a_20_pixel_box():
    digits = all_digits()
    assert digits.images.shape == (1797, 1, 28, 28) and 0 <= digits.images.min() and digits.images.max() <= 1
    border = digits.images.clone()
    border[..., 4:24, 4:24] = 0
    assert border.abs().max() == 0  # nothing outside the central 20×20 box
    assert digits.images[..., 4:24, 4:24].flatten(1).max(1).values.min() > 0.5  # every digit has ink


def test_the_split_is_fixed_balanced_and_disjoint():
    train_part, val_part = split()
    assert (len(train_part.labels), len(val_part.labels)) == (1442, 355)
    assert torch.bincount(val_part.labels, minlength=10).tolist() == [35, 36, 35, 36, 36, 36, 36, 35, 34, 36]
    flat_train, flat_val = train_part.images.flatten(1), val_part.images.flatten(1)
    assert not (torch.cdist(flat_val, flat_train).min(1).values == 0).any()  # no held-out digit is also trained on
    again = split()
    assert torch.equal(again[1].images, val_part.images) and torch.equal(again[1].labels, val_part.labels)


def test_the_data_spec_yields_seeded_batches_at_the_models_size():
    data = open_data("builtin:digits", (1, 32, 32))
    assert data.spec == "builtin:digits" and data.class_names == [str(d) for d in range(10)]
    assert (data.train_size, data.val_size, data.steps_per_epoch(100)) == (1442, 355, 15)
    images, labels = next(iter(data.train_batches(100, seed=3, epoch=1)))
    assert images.shape == (100, 1, 32, 32) and labels.shape == (100,)
    again, _ = next(iter(data.train_batches(100, seed=3, epoch=1)))
    other, _ = next(iter(data.train_batches(100, seed=3, epoch=2)))
    assert torch.equal(images, again) and not torch.equal(images, other)
    rgb = open_data("builtin:digits", (3, 64, 64))
    images, _ = next(iter(rgb.val_batches(8)))
    assert images.shape == (8, 3, 64, 64) and torch.equal(images[:, 0], images[:, 2])
    assert "builtin:digits" in DATASPEC_HELP
    with pytest.raises(UserError, match="builtin:shapes and builtin:digits"):
        open_data("builtin:digit", (1, 32, 32))


def test_builtin_lenet5_is_trained_on_the_digits():
    handle = load_model("builtin:lenet5", "cpu")
    assert handle.trained and handle.class_names == [str(d) for d in range(10)] and handle.input_size == (1, 32, 32)
    assert "trained on real handwritten digits" in handle.about and "355 held-out digits" in handle.about
    data = open_data("builtin:digits", handle.input_size)
    images, labels = next(iter(data.val_batches(data.val_size)))
    with torch.no_grad():
        predicted = handle.pixel_model()(images).argmax(1)
    assert (predicted == labels).float().mean() >= 0.99  # the recipe's run: 355 of 355


def test_the_recipe_is_seeded_and_writes_loadable_weights(tmp_path):
    lines: list[str] = []
    first = train(replace(RECIPE, epochs=1), log=lines.append)
    again = train(replace(RECIPE, epochs=1), log=lines.append)
    state = first.handle.module.state_dict()
    assert all(torch.equal(state[k], again.handle.module.state_dict()[k]) for k in state)
    assert lines[0].startswith("epoch 1/1") and first.final_val_acc > 0.5  # chance is 0.1
    threads = torch.get_num_threads()
    try:
        assert main(["--out", str(tmp_path / "lenet5.pt"), "--epochs", "1", "--seed", "1"]) == 0
    finally:
        torch.set_num_threads(threads)  # the recipe trains on two threads
    saved = torch.load(tmp_path / "lenet5.pt", weights_only=True)
    LeNet5(10).load_state_dict(saved)
    assert not torch.equal(saved["classifier.2.weight"], state["classifier.2.weight"])  # another seed
    assert BUILTIN_MODELS["lenet5"].weights == "lenet5.pt"
