"""The training core with bad input: impossible settings, diverging runs, damaged checkpoints, unreadable images."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.checkpoints import read_model_file
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.augment import Augmentation, parse_augmentation
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.data import DataSource, open_data
from cnnexplorer.core.training.loop import EpochMetrics, finite_weights, train
from cnnexplorer.core.training.snapshots import Snapshot
from cnnexplorer.core.training.state import read_resume
from cnnexplorer.core.training.transfer import prepare_model

SMALL = dict(shapes_epoch=128, shapes_validation=64)  # 4 steps of 32 per epoch
QUICK = dict(batch_size=32, snapshots=False)


def lenet_on_shapes():
    handle = load_model("builtin:lenet5", "cpu")
    data = open_data("builtin:shapes", handle.input_size, **SMALL)
    return prepare_model(handle, data.class_names), data


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


class _NanGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class _PoisonedStep(torch.nn.Module):
    """Training forward number ``at`` gives a finite loss whose gradient is NaN, so only its step spoils the weights."""

    def __init__(self, inner: torch.nn.Module, at: int):
        super().__init__()
        self.inner, self.at, self.calls = inner, at, 0

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                out = _NanGradient.apply(out)
        return out


def _finite_and_equal(saved_state: dict, module: torch.nn.Module) -> bool:
    return all(torch.isfinite(v.float()).all() and torch.equal(v, saved_state[k])
               for k, v in module.state_dict().items())


def test_a_step_that_makes_the_weights_non_finite_stops_with_the_last_good_checkpoint(tmp_path):
    handle, data = lenet_on_shapes()
    poisoned = replace(handle, module=_PoisonedStep(handle.module, at=6))  # step 2 of epoch 2
    result = drive(train(poisoned, data, TrainConfig(epochs=3, **QUICK), arch="builtin:lenet5",
                         out=tmp_path / "run.pt"))
    assert result.stopped.startswith("the weights became non-finite at step 6 (epoch 2)")
    assert f"the last good weights, of epoch 1, are kept in {tmp_path / 'run.pt'}" in result.stopped
    assert result.epochs_done == 1 and result.checkpoint == tmp_path / "run.pt"
    for name in ("run.pt", "run.best.pt"):
        saved = read_model_file(tmp_path / name)
        assert saved.extra["training"]["epochs_done"] == 1, name
        assert _finite_and_equal(saved.state_dict, result.handle.module), name


def test_finite_weights_checks_every_parameter_and_buffer():
    model = torch.nn.Sequential(torch.nn.Linear(1000, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.fill_(3e38)  # finite, though their sum overflows
    assert finite_weights(model)
    model[1].running_var[1] = float("inf")
    assert not finite_weights(model)
    model[1].running_var[1] = 1.0
    with torch.no_grad():
        model[0].bias[0] = float("nan")
    assert not finite_weights(model)


def _val_poisoned_after_first_epoch(data: DataSource):
    """``data`` whose validation images turn NaN once the test sets ``poison[0]``."""
    poison = [False]

    def validate(batch_size: int):
        for images, labels in data.val_batches(batch_size):
            yield (images * float("nan") if poison[0] else images), labels

    return DataSource(data.spec, data.class_names, data.train_size, data.val_size, data.train_batches, validate), poison


def test_a_non_finite_validation_loss_is_never_saved_nor_best(tmp_path):
    handle, shapes = lenet_on_shapes()
    data, poison = _val_poisoned_after_first_epoch(shapes)
    epochs = []

    def after_first_epoch(item):
        if isinstance(item, EpochMetrics):
            epochs.append(item.epoch)
            poison[0] = True

    result = drive(train(handle, data, TrainConfig(epochs=3, **QUICK), arch="builtin:lenet5", out=tmp_path / "run.pt"),
                   after_first_epoch)
    assert epochs == [1] and result.history.val_epoch == [1.0] and result.final_val_loss < 10
    assert result.stopped.startswith("the validation loss became nan after epoch 2")
    assert "epoch 1, are kept in" in result.stopped
    for name in ("run.pt", "run.best.pt"):
        saved = read_model_file(tmp_path / name)
        assert saved.extra["training"]["epochs_done"] == 1, name
        assert _finite_and_equal(saved.state_dict, result.handle.module), name


def test_a_run_diverging_before_its_first_epoch_writes_nothing_and_says_so(tmp_path):
    handle, data = lenet_on_shapes()
    config = TrainConfig(epochs=2, optimizer="adam", lr=1e30, schedule="none", **QUICK)
    result = drive(train(handle, data, config, arch="builtin:lenet5", out=tmp_path / "run.pt"))
    assert "became" in result.stopped and "(epoch 1)" in result.stopped
    assert f"nothing was written to {tmp_path / 'run.pt'}" in result.stopped and "kept in" not in result.stopped
    assert list(tmp_path.iterdir()) == [] and result.checkpoint is None and result.best_checkpoint is None
    assert _finite_and_equal(handle.module.state_dict(), result.handle.module)  # back to the weights it started with
    in_memory = drive(train(handle, data, config, arch="builtin:lenet5"))
    assert in_memory.stopped.endswith("the model keeps the weights it started with; try a lower learning rate")


def test_a_snapshot_grad_cam_refuses_falls_back_to_saliency(monkeypatch):
    import cnnexplorer.core.attribution as attribution

    def refuse(*args, **kwargs):
        raise UserError("the target score does not depend on layer 'features.5' for this input")

    monkeypatch.setattr(attribution, "compute_heatmap", refuse)  # as for a dead network after a huge step
    handle, data = lenet_on_shapes()
    snapshots = []
    result = drive(train(handle, data, TrainConfig(epochs=1, batch_size=64), arch="builtin:lenet5"),
                   lambda item: snapshots.append(item) if isinstance(item, Snapshot) else None)
    assert result.stopped is None and [s.method for s in snapshots] == ["saliency"]
    assert snapshots[0].heatmap.shape == (32, 32, 3)


def _one_epoch(tmp_path):
    handle, data = lenet_on_shapes()
    config = TrainConfig(epochs=1, schedule="none", **QUICK)
    drive(train(handle, data, config, arch="builtin:lenet5", out=tmp_path / "run.pt"))
    return data, config


def test_resuming_a_finished_run_or_onto_other_classes_is_refused(tmp_path):
    data, config = _one_epoch(tmp_path)
    before = (tmp_path / "run.pt").read_bytes()
    training, saved = read_resume(tmp_path / "run.pt")
    model = load_model(str(tmp_path / "run.pt"), "cpu")
    with pytest.raises(UserError, match=r"already has 1 epochs.*--epochs 2"):
        drive(train(model, data, saved, arch="builtin:lenet5", out=tmp_path / "run.pt", resume=training))
    two = DataSource("two-classes", ["dark", "bright"], 64, 32, data.train_batches, data.val_batches)
    with pytest.raises(UserError, match=r"two-classes has 2 classes \(dark, bright\).*trained on 6 classes"):
        drive(train(model, two, replace(saved, epochs=2), arch="builtin:lenet5", out=tmp_path / "run.pt",
                    resume=training))
    assert (tmp_path / "run.pt").read_bytes() == before


def _crafted(tmp_path, change) -> str:
    """A copy of ``run.pt`` whose stored dict ``change`` altered, saved as ``torch.save`` writes it."""
    stored = torch.load(tmp_path / "run.pt", weights_only=True)
    change(stored["extra"]["training"])
    path = tmp_path / "crafted.pt"
    torch.save(stored, path)
    return str(path)


def _set(*keys_and_value):
    *keys, last, value = keys_and_value

    def change(training):
        for key in keys:
            training = training[key]
        training[last] = value

    return change


@pytest.mark.parametrize("change, detail", [
    (_set("config", "epochs", "x"), "epochs must be a whole number"),
    (_set("config", "optimizer", "rmsprop"), "unknown optimizer 'rmsprop'"),
    (_set("config", "lr", float("nan")), "lr must be"),
    (_set("config", "augment", {"zoom": "big"}), "augmentation zoom"),
    (_set("config", "augment", 3), "must be a dict"),
    (_set("config", [1, 2]), "must be a dict"),
    (_set("epochs_done", "1"), "epochs_done"),
    (_set("step", -4), "step"),
    (_set("elapsed", float("nan")), "elapsed"),
    (_set("frozen", "features.0.weight"), "frozen"),
    (_set("data", 5), "data must be"),
    (_set("best", {"val_acc": "x"}), "best val_acc"),
    (lambda training: training.pop("history"), "no entry 'history'"),
    (_set("history", 3), "damaged"),
    (_set("optimizer", "param_groups", 7), "damaged"),
])
def test_a_damaged_training_state_is_one_user_error(tmp_path, change, detail):
    _one_epoch(tmp_path)
    path = _crafted(tmp_path, change)
    with pytest.raises(UserError, match="training state in .*crafted.pt is damaged") as error:
        read_resume(path)
    assert detail in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("change, detail", [
    (_set("optimizer", "param_groups", 0, "lr", "x"), "wrong kind"),
    (_set("schedule", "last_epoch", "x"), "wrong kind"),
    (_set("schedule", "base_lrs", "x"), "wrong kind"),
    (lambda training: training["optimizer"]["state"]["0"].update(exp_avg=torch.zeros(3)), "does not fit"),
    (lambda training: training["optimizer"]["state"].update({"99": {}}), "does not fit"),
])
def test_damaged_optimiser_or_schedule_state_is_refused_before_the_first_step(tmp_path, change, detail):
    data, config = _one_epoch(tmp_path)
    path = _crafted(tmp_path, change)
    training, saved = read_resume(path)
    steps = []
    with pytest.raises(UserError, match=f"training state in the checkpoint is damaged.*{detail}"):
        drive(train(load_model(path, "cpu"), data, replace(saved, epochs=2), arch="builtin:lenet5", out=path,
                    resume=training), steps.append)
    assert steps == []


def test_settings_a_later_version_added_are_ignored_on_resume(tmp_path):
    def newer(training):
        training["config"]["future_option"] = 1
        training["config"]["augment"]["future_jitter"] = 0.5

    _, config = _one_epoch(tmp_path)
    assert read_resume(_crafted(tmp_path, newer))[1] == config


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _folder_with_bad_files(root):
    """Two classes of 8 good images, and four files that are not: zero bytes, text, truncated PNG and JPEG."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(8):
            (root / name / f"{i}.png").write_bytes(_png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
    good = _png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    bad = {root / "a" / "empty.png": b"", root / "a" / "notes.png": b"not an image at all",
           root / "b" / "cut.png": good[: len(good) // 2], root / "b" / "cut.jpg": jpeg.getvalue()[:300]}
    for path, content in bad.items():
        path.write_bytes(content)
    return sorted(str(p) for p in bad)


def test_unreadable_images_are_skipped_and_listed(tmp_path):
    bad = _folder_with_bad_files(tmp_path / "data")
    handle = load_model("builtin:lenet5", "cpu")
    data = open_data(f"folder:{tmp_path / 'data'}", handle.input_size, val_fraction=0.25)
    assert data.train_size + data.val_size == 20
    result = drive(train(prepare_model(handle, data.class_names), data, TrainConfig(epochs=1, batch_size=4,
                                                                                    snapshots=False),
                         arch="builtin:lenet5"))
    assert result.stopped is None and result.epochs_done == 1
    assert sorted(data.skipped) == bad
    assert "not an image" in data.skipped[bad[1]] and "truncated" in data.skipped[str(tmp_path / "data/b/cut.png")]
    batches = [*data.train_batches(4, 0, 0), *data.val_batches(4)]
    assert sum(len(labels) for _, labels in batches) == 16  # every good image, and only those


def test_a_folder_without_one_readable_image_is_a_user_error(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            (tmp_path / name / f"{i}.png").write_bytes(b"")
    handle = load_model("builtin:lenet5", "cpu")
    data = open_data(f"folder:{tmp_path}", handle.input_size)
    with pytest.raises(UserError, match=r"none of the \d+ (training|validation) images .* can be read"):
        drive(train(prepare_model(handle, data.class_names), data, TrainConfig(epochs=1, **QUICK),
                    arch="builtin:lenet5"))
