"""The course's built-ins train, save and reopen as the same model: the digits nets through ``cnnexplorer train``,
the cats-vs-dogs CNN and the ImageNet nets through the training job on small generated folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.builtin import BUILTIN_MODELS
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.layers import SigmoidPair
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.data import open_data
from cnnexplorer.core.training.loop import evaluate
from cnnexplorer.core.training.run import TrainRequest, training_job
from tests.cli.cli_helpers import last_json, run_cli

TOLERANCE = 1e-5  # the same weights on the same CPU kernels: only float rounding may differ


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", ["lenet5", "keras_mnist", "keras_mnist_dropout"])
def test_digits_nets_train_from_the_cli_and_reopen_predicting_the_same(name, tmp_path, capsys):
    out = tmp_path / f"{name}.pt"
    code, stdout, _ = run_cli(capsys, "train", "--model", f"builtin:{name}", "--data", "builtin:digits", "--out", out,
                              "--epochs", "1", "--device", "cpu", "--json")
    assert code == 0
    report = last_json(stdout)
    reopened = load_model(str(out), "cpu")
    assert reopened.class_names == [str(d) for d in range(10)]
    assert parameter_count(reopened.module) == parameter_count(BUILTIN_MODELS[name].build())
    data = open_data("builtin:digits", reopened.input_size)
    val_loss, val_acc = evaluate(reopened.pixel_model(), data, 64, torch.device("cpu"))
    # the run's own validation of its final weights (355 digits), repeated on the reopened checkpoint
    assert val_acc == report["final_val_acc"] and abs(val_loss - report["final_val_loss"]) < TOLERANCE
    assert val_acc > 0.5  # one epoch is well above chance (0.1)


def two_class_folder(root, per_class: int, size: int):
    """``cats/`` dark and ``dogs/`` bright noisy images, ``per_class`` of each (the course's folder names)."""
    rng = np.random.default_rng(0)
    for name, level in (("cats", 60), ("dogs", 190)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(level + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def train_and_reopen(name: str, folder, tmp_path, config: TrainConfig):
    """The untrained built-in, the model one epoch made of it, and that model reopened from its checkpoint."""
    out = tmp_path / f"{name}.pt"
    start = load_model(f"builtin:{name}", "cpu")
    request = TrainRequest(out=out, model=start, data=f"folder:{folder}", config=config, val_split=0.25)
    result = drive(training_job(request))
    assert result.checkpoint == out and result.epochs_done == 1
    return start, result.handle, load_model(str(out), "cpu")


def same_predictions(trained, reopened, count: int = 2) -> bool:
    pixels = torch.rand(count, *trained.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.allclose(trained.pixel_model()(pixels), reopened.pixel_model()(pixels), atol=TOLERANCE)


def test_cats_dogs_round_trips_with_its_single_sigmoid_output(tmp_path):
    folder = two_class_folder(tmp_path / "pets", 4, 150)
    _, trained, reopened = train_and_reopen("cats_dogs", folder, tmp_path, TrainConfig(epochs=1, batch_size=8))
    assert reopened.class_names == ["cats", "dogs"] and isinstance(reopened.module.classifier[-1], SigmoidPair)
    assert parameter_count(reopened.module) == 3_453_121
    assert same_predictions(trained, reopened)


@pytest.mark.parametrize("name", ["zfnet", "alexnet_original"])
def test_imagenet_nets_take_a_step_and_round_trip(name, tmp_path):
    folder = two_class_folder(tmp_path / "pets", 2, 64)  # resized to the nets' 224/227 pixels
    config = TrainConfig(epochs=1, batch_size=4, optimizer="sgd", momentum=0.0, lr=1e-2, snapshots=False)  # small files
    start, trained, reopened = train_and_reopen(name, folder, tmp_path, config)
    with torch.device("meta"):
        two_way = BUILTIN_MODELS[name].build(2)  # the architecture with a new two-class head
    assert reopened.class_names == ["cats", "dogs"] and parameter_count(reopened.module) == parameter_count(two_way)
    assert not torch.equal(reopened.module.features[0].weight, start.module.features[0].weight)  # the step moved it
    assert same_predictions(trained, reopened)
