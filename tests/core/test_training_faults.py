"""The training core with bad input: impossible settings, diverging runs, damaged checkpoints, unreadable images."""

from __future__ import annotations

import pytest

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.training.augment import Augmentation, parse_augmentation
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.data import open_data


@pytest.mark.parametrize("name, value, shown", [
    ("momentum", float("nan"), "momentum"), ("momentum", 1.0, "momentum"), ("weight_decay", -1.0, "weight-decay"),
    ("weight_decay", float("inf"), "weight-decay"), ("lr", float("inf"), "lr"), ("lr", float("nan"), "lr"),
    ("lr", 0.0, "lr"), ("lr", -0.1, "lr"), ("unfreeze_top", -5, "unfreeze-top"), ("epochs", 0, "epochs"),
    ("epochs", "x", "epochs"), ("batch_size", 2.5, "batch-size"), ("warmup", 1.5, "warmup"),
    ("step_epochs", -1, "step-epochs"), ("seed", -1, "seed"), ("freeze_base", "yes", "freeze-base"),
    ("optimizer", "rmsprop", "optimizer"), ("augment", {"zoom": 0.1}, "augment"),
])
def test_impossible_settings_are_refused_naming_the_option(name, value, shown):
    with pytest.raises(UserError, match=rf"^(unknown )?{shown}\b") as error:
        TrainConfig(**{name: value})
    assert "\n" not in str(error.value) and repr(value) in str(error.value)


def test_the_edges_of_each_range_are_allowed():
    config = TrainConfig(lr=1e30, momentum=0.0, weight_decay=0.0, warmup=1.0, unfreeze_top=0, step_epochs=0, seed=0)
    assert config.lr == 1e30  # legal, if unwise: the run itself must stop honestly
    assert Augmentation(rotation=180, width_shift=1, height_shift=0, shear=89.9, zoom=0.99, cval=1).active


@pytest.mark.parametrize("text, shown", [
    ("rotation=nan", "rotation"), ("rotation=inf", "rotation"), ("rotation=-10", "rotation"),
    ("zoom=-3", "zoom"), ("zoom=1", "zoom"), ("shift=5", "width_shift"), ("hshift=-0.1", "height_shift"),
    ("shear=90", "shear"), ("cval=2", "cval"), ("hflip=maybe", "hflip"), ("colour=3", "unknown augmentation"),
    ("rotation", "rotation"), ("rotation=ten", "rotation"), ("fill=mirror", "fill mode"), ("fill", "fill mode"),
])
def test_nonsense_augmentation_is_refused(text, shown):
    with pytest.raises(UserError, match=rf"^(augmentation |unknown )?{shown}\b") as error:
        parse_augmentation(text)
    assert "\n" not in str(error.value)


def test_augmentation_flags_and_direct_values():
    assert parse_augmentation("hflip=off,rotation=15").hflip is False
    assert parse_augmentation("flip").hflip is True
    with pytest.raises(UserError, match="zoom"):
        Augmentation(zoom=float("nan"))  # the GUI builds it directly: the same check
    with pytest.raises(UserError, match="hflip"):
        Augmentation(hflip=1)


@pytest.mark.parametrize("fraction", [float("nan"), -1.0, 0.0, 1.0, 1.5, float("inf"), "0.2"])
def test_the_validation_fraction_is_checked_before_the_data_is_opened(fraction, tmp_path):
    with pytest.raises(UserError, match="val-split"):
        open_data(f"folder:{tmp_path / 'absent'}", (1, 32, 32), val_fraction=fraction)
