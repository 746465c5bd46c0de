"""The training core: data sources, transfer surgery, the loop's checkpoints, resume, NaN stop, curves."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.architecture import parameter_counts
from cnnexplorer.core.checkpoints import read_model_file, save_checkpoint
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.augment import Augmentation, augment_batch, parse_augmentation, preview_picture
from cnnexplorer.core.training.config import TrainConfig, make_optimizer, make_schedule
from cnnexplorer.core.picture_style import INK
from cnnexplorer.core.training.curves import _RAW, _TRAIN, _VAL, LEGEND_BAND, History, Smoother, render_curves, smooth
from cnnexplorer.core.training.data import DataSource, open_data
from cnnexplorer.core.training.loop import BatchMetrics, EpochMetrics, RunControl, train
from cnnexplorer.core.training.snapshots import Snapshot
from cnnexplorer.core.training.state import read_resume
from cnnexplorer.core.training.transfer import blocks, head_name, prepare_model, set_trainable

SMALL = dict(shapes_epoch=128, shapes_validation=64)


def lenet_on_shapes():
    handle = load_model("builtin:lenet5", "cpu")
    data = open_data("builtin:shapes", handle.input_size, **SMALL)
    return prepare_model(handle, data.class_names), data


def test_smoothing_is_tensorboards_debiased_ema():
    # last = 0.4·1 = 0.4 → 0.4/0.4 = 1; last = 0.6·0.4 + 0.4·2 = 1.04 → 1.04/(1 - 0.36) = 1.625
    assert smooth([1.0, 2.0], 0.6) == pytest.approx([1.0, 1.625])
    assert smooth([3.0, 3.0, 3.0]) == pytest.approx([3.0, 3.0, 3.0])
    values = np.random.default_rng(0).random(1000)
    pieces = Smoother(0.9)
    joined = np.concatenate([pieces.extend(values[:300]), pieces.extend(values[300:301]), pieces.extend(values[301:])])
    assert joined == pytest.approx(smooth(values, 0.9), abs=1e-12)  # the live curves smooth only new points


def test_augmentation_flip_and_constant_fill():
    images = torch.rand(16, 3, 8, 8)
    flipped = augment_batch(images, parse_augmentation("hflip"), torch.Generator().manual_seed(0))
    mirrored = [torch.allclose(f, i.flip(-1), atol=1e-5) for f, i in zip(flipped, images)]
    same = [torch.allclose(f, i, atol=1e-5) for f, i in zip(flipped, images)]
    assert all(m or s for m, s in zip(mirrored, same)) and any(mirrored) and any(same)
    shifted = augment_batch(images, Augmentation(width_shift=0.9, fill="constant", cval=0.25),
                            torch.Generator().manual_seed(1))
    assert (shifted == 0.25).float().mean() > 0.2  # the uncovered part is filled with cval
    with pytest.raises(UserError, match="fill mode"):
        parse_augmentation("rotation=10,fill=mirror")
    picture = preview_picture(images[:4], torch.tensor([0, 1, 0, 1]), ["a", "b"])
    assert picture.ndim == 3 and picture.shape[2] == 3


def test_blocks_and_unfreezing_the_top_of_a_resnet():
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    assert blocks(model)[0] == ("conv1", "bn1") and blocks(model)[-1] == ("fc",)
    assert set_trainable(model, freeze_base=True, unfreeze_top=2) == ["layer4.0", "layer4.1", "fc"]
    trainable, frozen = parameter_counts(model)
    layer4_fc = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("layer4", "fc")))
    assert trainable == layer4_fc and frozen == sum(p.numel() for p in model.parameters()) - layer4_fc
    assert "layer4.0.conv1" in set_trainable(model, freeze_base=False)  # without freeze_base the flags stay
    assert parameter_counts(model) == (trainable, frozen)


def test_frozen_base_is_bit_identical_and_only_the_head_changes():
    from dataclasses import replace

    from cnnexplorer.core.builtin.nets import ShapesNet

    shapes = load_model("builtin:shapes", "cpu")
    handle = replace(shapes, module=ShapesNet(6, width=8))  # BatchNorm layers: their statistics must not move
    data = open_data("builtin:shapes", handle.input_size, **SMALL)
    before = {k: v.clone() for k, v in handle.module.state_dict().items()}
    result = drive(train(handle, data, TrainConfig(epochs=1, batch_size=32, freeze_base=True, snapshots=False),
                         arch="builtin:shapes"))
    after = result.handle.module.state_dict()
    head = {k for k in after if k.startswith(head_name(handle.module) + ".")}
    assert head == {"classifier.weight", "classifier.bias"}
    for key, value in after.items():
        assert torch.equal(value, before[key]) != (key in head), key
    assert all(torch.equal(v, before[k]) for k, v in handle.module.state_dict().items())  # caller's model untouched


def _stripes(folder, n: int, seed: int):
    gen = np.random.default_rng(seed)
    for name, axis in (("horizontal", 0), ("vertical", 1)):
        (folder / name).mkdir(parents=True)
        for i in range(n):
            wave = (np.arange(32) // gen.integers(2, 5) % 2) * 160 + 40
            image = np.repeat(wave[:, None] if axis == 0 else wave[None, :], 32, axis=1 - axis)
            image = np.clip(image + gen.normal(0, 30, (32, 32)), 0, 255).astype(np.uint8)
            Image.fromarray(image).convert("RGB").save(folder / name / f"{i}.png")


def test_image_folder_trains_well_above_chance(tmp_path):
    _stripes(tmp_path / "train", 48, 0)
    _stripes(tmp_path / "val", 16, 1)
    handle = load_model("builtin:lenet5", "cpu")  # trained on digits; the stripes get a new two-class head
    data = open_data(f"folder:{tmp_path}", handle.input_size)
    assert data.class_names == ["horizontal", "vertical"] and (data.train_size, data.val_size) == (96, 32)
    model = prepare_model(handle, data.class_names)
    result = drive(train(model, data, TrainConfig(epochs=8, batch_size=16, lr=3e-3, snapshots=False),
                         arch="builtin:lenet5"))
    assert result.final_val_acc >= 0.9  # chance is 0.5
    assert result.handle.class_names == ["horizontal", "vertical"]


def test_folder_without_split_is_split_with_a_fixed_seed(tmp_path):
    _stripes(tmp_path, 10, 0)
    first = open_data(f"folder:{tmp_path}", (1, 32, 32), seed=3)
    again = open_data(f"folder:{tmp_path}", (1, 32, 32), seed=3)
    assert (first.train_size, first.val_size) == (16, 4)
    assert torch.equal(next(first.val_batches(4))[0], next(again.val_batches(4))[0])


def test_missing_dataset_asks_for_download(tmp_path):
    with pytest.raises(UserError, match="--download"):
        open_data(f"mnist:{tmp_path}", (1, 32, 32))
    with pytest.raises(UserError, match="data spec"):
        open_data("imagenet", (3, 64, 64))


def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path):
    handle, data = lenet_on_shapes()
    config = TrainConfig(epochs=2, batch_size=32, augment=parse_augmentation("rotation=10,hflip"))
    whole = drive(train(handle, data, config, arch="builtin:lenet5", out=tmp_path / "whole.pt"))

    control = RunControl()

    def stop_after_first_epoch(item):
        if isinstance(item, EpochMetrics):
            control.stop()

    first = drive(train(handle, data, config, arch="builtin:lenet5", out=tmp_path / "part.pt", control=control),
                  stop_after_first_epoch)
    assert first.stopped == "stopped by request" and first.epochs_done == 1
    training, saved_config = read_resume(tmp_path / "part.pt")
    assert saved_config == config
    resumed_handle = load_model(str(tmp_path / "part.pt"), "cpu")
    steps = []
    resumed = drive(train(resumed_handle, data, saved_config, arch="builtin:lenet5", out=tmp_path / "part.pt",
                          resume=training), lambda m: steps.append(m.step) if isinstance(m, BatchMetrics) else None)
    assert steps[0] == whole.history.step[len(whole.history.step) // 2] and resumed.epochs_done == 2
    for key, value in whole.handle.module.state_dict().items():
        assert torch.equal(value, resumed.handle.module.state_dict()[key]), key
    assert resumed.history.step == whole.history.step and resumed.history.val_acc == whole.history.val_acc
    assert [s.epoch for s in resumed.snapshots] == [1, 2]


def test_layers_frozen_by_hand_stay_frozen_when_the_checkpoint_resumes(tmp_path):
    handle, data = lenet_on_shapes()
    frozen = {"features.0.weight", "features.0.bias", "classifier.0.weight"}
    for name, parameter in handle.module.named_parameters():
        parameter.requires_grad_(name not in frozen)  # as unticking rows of the architecture tree does
    config = TrainConfig(epochs=1, batch_size=32, schedule="none", snapshots=False)
    first = drive(train(handle, data, config, arch="builtin:lenet5", out=tmp_path / "run.pt"))
    training, saved_config = read_resume(tmp_path / "run.pt")
    more = replace_config(saved_config, epochs=2)  # as `train --resume run.pt --epochs 2` does
    resumed = drive(train(load_model(str(tmp_path / "run.pt"), "cpu"), data, more, arch="builtin:lenet5",
                          out=tmp_path / "run.pt", resume=training))
    whole = drive(train(handle, data, more, arch="builtin:lenet5"))
    assert resumed.epochs_done == 2
    after_one, after_two = first.handle.module.state_dict(), resumed.handle.module.state_dict()
    for key, value in after_two.items():
        assert torch.equal(value, after_one[key]) == (key in frozen), key
        assert torch.equal(value, whole.handle.module.state_dict()[key]), key


def _bright_or_dark(misleading: bool = False) -> DataSource:
    """Two classes LeNet tells apart within a few steps: one batch of 64 to train on, 32 to validate.

    ``misleading`` swaps the validation labels, so the better the model learns, the worse it validates.
    """

    def batch(n: int, seed: int):
        labels = torch.arange(n) % 2
        noise = torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
        return labels[:, None, None, None] * 0.6 + 0.2 + 0.05 * noise, labels

    train_set, (images, labels) = batch(64, 0), batch(32, 1)
    val_set = (images, 1 - labels if misleading else labels)
    return DataSource("bright-or-dark", ["dark", "bright"], 64, 32, lambda *_: iter([train_set]),
                      lambda _: iter([val_set]))


def test_plateau_divides_the_rate_by_ten_and_its_count_survives_a_resume(tmp_path):
    data = _bright_or_dark()
    handle = prepare_model(load_model("builtin:lenet5", "cpu"), data.class_names)
    rates = []

    def epoch_rates(item):
        if isinstance(item, EpochMetrics):
            rates.append(item.lr)

    config = TrainConfig(epochs=3, batch_size=64, lr=1e-3, schedule="plateau", snapshots=False)
    improving = drive(train(handle, data, config, arch="builtin:lenet5"), epoch_rates)
    loss = improving.history.val_loss
    assert loss[2] < loss[1] * 0.99 and loss[1] < loss[0] * 0.99 and rates == [1e-3] * 3
    rates.clear()
    misleading = _bright_or_dark(misleading=True)
    drive(train(handle, misleading, replace_config(config, epochs=2), arch="builtin:lenet5", out=tmp_path / "run.pt"),
          epoch_rates)
    training, _ = read_resume(tmp_path / "run.pt")
    del training["frozen"]  # as a checkpoint written before frozen parameters were stored
    resumed = drive(train(load_model(str(tmp_path / "run.pt"), "cpu"), misleading, config, arch="builtin:lenet5",
                          resume=training), epoch_rates)
    loss = resumed.history.val_loss
    assert loss[0] < loss[1] < loss[2]
    # epoch 2 is the first without improvement (patience 1); the 2nd, after the resume, divides the rate by 10
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4], rel=1e-6)


def _conv_layouts(handle) -> list[tuple[torch.dtype, bool]]:
    """Records, for every forward of the first convolution, its output's type and whether it is channels-last.

    The hook is copied along with the module when ``train`` takes its copy of the model.
    """
    seen = []
    conv = next(m for m in handle.module.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, args, out: seen.append(
        (out.dtype, out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous())))
    return seen


@pytest.mark.parametrize("precision, channels_last, dtype, scaled", [
    ("auto", "auto", torch.float32, False),  # on the CPU, auto means neither
    ("bf16", "on", torch.bfloat16, False),
    ("fp16", "off", torch.float16, True),  # the CUDA default's code path: fp16 autocast with loss scaling
])
def test_mixed_precision_and_channels_last(tmp_path, precision, channels_last, dtype, scaled):
    data = _bright_or_dark()
    handle = prepare_model(load_model("builtin:lenet5", "cpu"), data.class_names)
    seen = _conv_layouts(handle)
    config = TrainConfig(epochs=3, batch_size=64, lr=1e-3, schedule="none", snapshots=False, precision=precision,
                         channels_last=channels_last)
    result = drive(train(handle, data, config, arch="builtin:lenet5", out=tmp_path / "run.pt"))
    assert set(seen) == {(dtype, channels_last == "on")}
    loss = result.history.val_loss
    assert loss[2] < loss[1] < loss[0], "the run did not learn"
    assert all(p.is_contiguous() for p in result.handle.module.parameters()), "the trained model keeps channels-last"
    training, saved = read_resume(tmp_path / "run.pt")
    assert (saved.precision, saved.channels_last) == (precision, channels_last)
    assert bool(training["scaler"]) == scaled
    if scaled:  # the loss scale carries over a resume
        assert training["scaler"]["scale"] > 1
        resumed = drive(train(load_model(str(tmp_path / "run.pt"), "cpu"), data, replace_config(config, epochs=4),
                              arch="builtin:lenet5", out=tmp_path / "run.pt", resume=training))
        assert resumed.epochs_done == 4 and read_resume(tmp_path / "run.pt")[0]["scaler"]["scale"] > 1


def test_unknown_precision_is_a_user_error():
    with pytest.raises(UserError, match="precision 'fp8'.*fp16"):
        TrainConfig(precision="fp8")


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path):
    handle, _ = lenet_on_shapes()
    path = tmp_path / "run.pt"
    save_checkpoint(path, handle.module, "builtin:lenet5", handle.class_names, handle.preprocessing)
    before = path.read_bytes()
    script = f"""
import resource, signal, torch
from cnnexplorer.core.checkpoints import save_checkpoint
from cnnexplorer.core.builtin.nets import LeNet5
from cnnexplorer.core.builtin import BUILTIN_MODELS
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))  # the disk fills up mid-write
save_checkpoint({str(path)!r}, LeNet5(6), "builtin:lenet5", list("abcdef"), BUILTIN_MODELS["lenet5"].preprocessing)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "File too large" in run.stderr
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    assert read_model_file(path).kind == "checkpoint"


def test_a_nan_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path):
    handle, shapes = lenet_on_shapes()

    def poisoned(batch_size, seed, epoch):
        for i, (images, labels) in enumerate(shapes.train_batches(batch_size, seed, epoch)):
            if epoch == 1 and i == 2:
                images = images.clone()
                images[0, 0, 0, 0] = float("nan")
            yield images, labels

    data = DataSource(shapes.spec, shapes.class_names, shapes.train_size, shapes.val_size, poisoned, shapes.val_batches)
    result = drive(train(handle, data, TrainConfig(epochs=3, batch_size=32, snapshots=False),
                         arch="builtin:lenet5", out=tmp_path / "run.pt"))
    assert "loss became nan" in result.stopped and "epoch 2" in result.stopped and str(tmp_path / "run.pt") in result.stopped
    assert result.epochs_done == 1 and len(result.history.val_acc) == 1
    saved = read_model_file(tmp_path / "run.pt")
    assert saved.extra["training"]["epochs_done"] == 1
    for key, value in result.handle.module.state_dict().items():
        assert torch.equal(value, saved.state_dict[key]) and torch.isfinite(value.float()).all(), key


class _DeviceOfSixteen(torch.nn.Module):
    """A model on a device that holds 16 images: a larger batch raises what CUDA raises."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if x.shape[0] > 16:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_out_of_memory_suggests_a_smaller_batch():
    from dataclasses import replace

    handle, data = lenet_on_shapes()
    small_device = replace(handle, module=_DeviceOfSixteen(handle.module))
    with pytest.raises(UserError, match=r"batch of 32 images does not fit.*try --batch-size 16") as error:
        drive(train(small_device, data, TrainConfig(epochs=1, batch_size=32, snapshots=False), arch="builtin:lenet5"))
    # the error does not keep the failed step's tensors alive (as the out-of-memory error's traceback would)
    assert error.value.__context__ is None and error.value.__cause__ is None
    result = drive(train(small_device, data, TrainConfig(epochs=1, batch_size=16, snapshots=False), arch="builtin:lenet5"))
    assert result.epochs_done == 1


def test_schedules_step_and_cosine():
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = TrainConfig(epochs=3, lr=1.0, schedule="step", step_epochs=1, warmup=0.0, optimizer="sgd")
    optimizer = make_optimizer(config, params)
    schedule = make_schedule(config, optimizer, steps_per_epoch=10)
    rates = []
    for _ in range(30):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == rates[9] == 1.0 and rates[10] == pytest.approx(0.1) and rates[29] == pytest.approx(0.01)
    cosine = make_schedule(replace_config(config, schedule="cosine"), make_optimizer(config, params), 10)
    assert cosine.lr_lambdas[0](15) == pytest.approx(0.5)


def replace_config(config: TrainConfig, **changes) -> TrainConfig:
    from dataclasses import replace

    return replace(config, **changes)


def test_curves_csv_and_png(tmp_path):
    history = History(step=[1, 2, 3, 4], epoch=[0.5, 1, 1.5, 2], time=[0.1, 0.2, 0.3, 0.4], loss=[2, 1.5, 1, 0.8],
                      acc=[0.2, 0.4, 0.6, 0.7], lr=[0.1] * 4, images_per_s=[100] * 4, val_step=[2, 4],
                      val_epoch=[1, 2], val_time=[0.2, 0.4], val_loss=[1.4, 0.9], val_acc=[0.5, 0.75])
    rows = list(csv.DictReader(open(history.write_csv(tmp_path / "m.csv"))))
    assert [r["val_acc"] for r in rows] == ["", "0.5", "", "0.75"] and rows[3]["train_loss"] == "0.8"
    picture = render_curves(history)
    assert picture.shape[:2] == (300 + LEGEND_BAND, 1260) and (picture[:300] != 255).any()
    legend = picture[300:]  # under the panels: a line of each style, labelled
    for colour in (_RAW, _TRAIN, _VAL, INK):
        assert np.all(legend == colour, axis=-1).any(), colour
    assert History.from_tensors(history.to_tensors()) == history


def test_snapshots_hold_filters_and_a_probe_heatmap():
    handle, data = lenet_on_shapes()
    snaps = []
    drive(train(handle, data, TrainConfig(epochs=1, batch_size=64), arch="builtin:lenet5"),
          lambda m: snaps.append(m) if isinstance(m, Snapshot) else None)
    assert len(snaps) == 1 and snaps[0].heatmap.shape == (32, 32, 3) and snaps[0].filters.shape[2] == 3


def _idx(path, array: np.ndarray) -> None:
    """An MNIST idx file: zero bytes, the uint8 type code 0x08, the dimension count, big-endian sizes, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_from_a_local_root_without_download(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 10)):
        _idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    data = open_data(f"mnist:{tmp_path}", (1, 32, 32))
    assert (data.train_size, data.val_size, len(data.class_names)) == (40, 10, 10)
    images, labels = next(data.train_batches(16, seed=0, epoch=0))
    assert images.shape == (16, 1, 32, 32) and 0 <= images.min() and images.max() <= 1 and labels.max() < 10
    again, _ = next(data.train_batches(16, seed=0, epoch=0))
    assert torch.equal(images, again)  # the epoch's order comes from (seed, epoch)
