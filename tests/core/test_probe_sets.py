"""Probe sets: folders (labelled, unlabelled, nested, mixed), odd files skipped, the fingerprint, data specs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnexplorer.core.dataset import probe as probe_module
from cnnexplorer.core.dataset.probe import ProbeSet, open_probe_set
from cnnexplorer.core.dataset.thumbnails import thumbnail
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing


def write_image(path: Path, seed: int, size: int = 20, mode: str = "RGB") -> Path:
    """A random image file of ``size``² pixels in ``mode`` (RGB, L or RGBA)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    array = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[..., 0] if channels == 1 else array, mode).save(path)
    return path


def labelled_folder(root: Path, per_class: int = 6, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    for k, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"{i:02d}.png", seed=100 * k + i)
    return root


class TinyNet(nn.Module):
    """Two convolutions (the first followed by an in-place ReLU), global pooling and a linear head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 5, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.conv2(self.relu(self.conv1(x))))))


def tiny_handle(seed: int = 0) -> ModelHandle:
    torch.manual_seed(seed)
    return ModelHandle("test:tiny", TinyNet().eval(), torch.device("cpu"),
                       Preprocessing(3, (12, 12), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), ["a", "b", "c"], "random", False)


def test_labelled_folder_reads_subfolders_as_classes_in_sorted_order(tmp_path):
    probe = open_probe_set(str(labelled_folder(tmp_path / "set", per_class=3)))
    assert probe.spec == f"folder:{tmp_path / 'set'}" and len(probe) == 6
    assert probe.label_names == ["cat", "dog"]
    assert [probe.label(i) for i in range(6)] == [0, 0, 0, 1, 1, 1]
    assert probe.source(0) == str(tmp_path / "set" / "cat" / "00.png")
    assert probe.image(4).size == (20, 20) and probe.skipped == {}


def test_nested_mixed_and_unlabelled_folders(tmp_path):
    write_image(tmp_path / "nested" / "cat" / "a" / "b" / "deep.png", 1)
    write_image(tmp_path / "nested" / "dog" / "x.png", 2)
    write_image(tmp_path / "nested" / "loose.png", 3)
    nested = open_probe_set(f"folder:{tmp_path / 'nested'}")
    labels = {Path(nested.source(i)).name: nested.label(i) for i in range(len(nested))}
    assert nested.label_names == ["cat", "dog"] and labels == {"deep.png": 0, "x.png": 1, "loose.png": -1}
    for i in range(3):
        write_image(tmp_path / "flat" / f"{i}.png", i)
    flat = open_probe_set(str(tmp_path / "flat"))
    assert flat.label_names is None and [flat.label(i) for i in range(3)] == [-1, -1, -1]
    assert flat.source(2) == str(tmp_path / "flat" / "2.png")


def test_train_val_layout_probes_the_val_part(tmp_path):
    labelled_folder(tmp_path / "data" / "train", per_class=2)
    labelled_folder(tmp_path / "data" / "val", per_class=1)
    probe = open_probe_set(f"folder:{tmp_path / 'data'}")
    assert len(probe) == 2 and probe.label_names == ["cat", "dog"] and "val" in probe.source(0)


def test_odd_files_and_broken_links_are_skipped_and_listed_grey_rgba_and_latin1_names_work(tmp_path):
    root = tmp_path / "odd"
    write_image(root / "grey.png", 1, mode="L")
    write_image(root / "rgba.png", 2, mode="RGBA")
    good = write_image(root / "rgb.jpg", 3).read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"")
    (root / "broken.png").symlink_to(tmp_path / "gone.png")  # a link to nothing
    latin1 = root / os.fsdecode(b"caf\xe9.png")  # a name that is not UTF-8 (Latin-1), as old archives hold
    write_image(latin1, 4)
    probe = open_probe_set(str(root))
    names = sorted(Path(probe.source(i)).name for i in range(len(probe)))
    assert names == sorted(["grey.png", "rgb.jpg", "rgba.png", latin1.name])
    assert sorted(Path(p).name for p in probe.skipped) == ["broken.png", "empty.png", "notes.txt", "truncated.jpg"]
    assert all(probe.skipped.values()) and "cannot be read" in probe.skipped[str(root / "broken.png")]
    assert len(probe.fingerprint()) == 64
    pre = Preprocessing(3, (8, 8), (0.0,) * 3, (1.0,) * 3)
    batches = list(probe.batches(pre, 2))
    assert [first for first, _, _ in batches] == [0, 2]
    pixels = torch.cat([p for _, p, _ in batches])
    assert pixels.shape == (4, 3, 8, 8) and 0 <= pixels.min() and pixels.max() <= 1
    grey = next(i for i in range(4) if probe.source(i).endswith("grey.png"))
    assert torch.equal(pixels[grey, 0], pixels[grey, 1])  # grey becomes R = G = B
    assert torch.equal(pixels[grey], pre.to_tensor(probe.image(grey)))


@pytest.mark.parametrize("readers", [1, 2, 3, 8])
@pytest.mark.parametrize("batch_size, start, stop", [(5, 0, None), (4, 3, 11), (1, 2, 5), (16, 0, 13), (3, 12, None)])
def test_batches_keep_the_sets_order_whatever_the_readers_shares(tmp_path, monkeypatch, readers, batch_size, start, stop):
    """Each reader decodes a contiguous share of a batch: the batches still hold images ``start`` … ``stop`` in order,
    with their labels and thumbnails, when the batch size does not divide among the readers or a share is empty."""
    monkeypatch.setattr(probe_module, "_READERS", readers)
    probe = open_probe_set(str(labelled_folder(tmp_path / "set", per_class=7)))
    pre = Preprocessing(3, (8, 8), (0.0,) * 3, (1.0,) * 3)
    end = len(probe) if stop is None else stop
    batches = list(probe.batches_with_thumbnails(pre, batch_size, start, stop))
    assert [first for first, *_ in batches] == list(range(start, end, batch_size))
    pixels, labels = torch.cat([b[1] for b in batches]), torch.cat([b[2] for b in batches])
    assert torch.equal(pixels, torch.stack([pre.to_tensor(probe.image(i)) for i in range(start, end)]))
    assert labels.tolist() == [probe.label(i) for i in range(start, end)]
    assert np.array_equal(np.concatenate([b[3] for b in batches]),
                          np.stack([thumbnail(pre.fit(probe.image(i))) for i in range(start, end)]))


def test_stopping_the_batches_waits_for_one_image_per_reader_not_a_whole_share(monkeypatch):
    """Closed while the next batch is being read, the readers stop after the image each one is reading: with
    large images a share of a batch would otherwise hold a cancel for seconds."""
    monkeypatch.setattr(probe_module, "_READERS", 2)
    read: list[int] = []

    def slow(i: int) -> Image.Image:
        read.append(i)
        time.sleep(0.2)
        return Image.new("RGB", (8, 8), (i, 0, 0))

    probe = ProbeSet("test:slow", None, np.full(32, -1, np.int64), slow)
    batches = probe.batches(Preprocessing(3, (8, 8), (0.0,) * 3, (1.0,) * 3), 8)
    first, pixels, _ = next(batches)  # the second batch's two shares of 4 start now
    assert first == 0 and torch.allclose(pixels[:, 0, 0, 0] * 255, torch.arange(8.0))
    batches.close()
    assert sorted(read[:8]) == list(range(8))
    assert len(read) <= 8 + 2 * 2  # at most the image each reader was on and one more (their 4 each: 16)


@pytest.mark.parametrize("content", ["empty", "non-images"])
def test_a_folder_without_images_is_one_clear_error(tmp_path, content):
    root = tmp_path / content
    root.mkdir()
    if content == "non-images":
        (root / "a.txt").write_text("text")
        (root / "b.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(UserError, match="holds no images") as error:
        open_probe_set(str(root))
    assert "\n" not in str(error.value)


def test_missing_folder_and_unknown_specs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        open_probe_set(str(tmp_path / "nowhere"))
    image = write_image(tmp_path / "one.png", 0)
    for spec in (str(image), f"folder:{image}"):
        with pytest.raises(UserError, match="is a file, not a folder; pass the folder"):
            open_probe_set(spec)
    with pytest.raises(UserError, match="unknown data spec"):
        open_probe_set("imagenet:/data")
    with pytest.raises(UserError, match="built-in datasets"):
        open_probe_set("builtin:cats")


def test_fingerprint_follows_the_files_contents_not_their_times(tmp_path):
    root = labelled_folder(tmp_path / "set", per_class=2)
    first = open_probe_set(str(root)).fingerprint()
    assert open_probe_set(str(root)).fingerprint() == first
    write_image(root / "cat" / "00.png", seed=999, size=21)
    changed = open_probe_set(str(root)).fingerprint()
    assert changed != first
    write_image(root / "dog" / "new.png", seed=5)
    assert open_probe_set(str(root)).fingerprint() not in (first, changed)
    added = open_probe_set(str(root)).fingerprint()
    file = root / "dog" / "00.png"
    os.utime(file, (time.time() + 100,) * 2)  # touched only: the same contents, the same set
    assert open_probe_set(str(root)).fingerprint() == added
    raw = write_image(root / "dog" / "raw.bmp", seed=6)  # uncompressed: other pixels, the same size
    before, info = open_probe_set(str(root)).fingerprint(), raw.stat()
    write_image(raw, seed=7)
    os.utime(raw, ns=(info.st_atime_ns, info.st_mtime_ns))  # and the old time, as cp -p or rsync -t leave it
    assert raw.stat().st_size == info.st_size and raw.stat().st_mtime_ns == info.st_mtime_ns
    assert open_probe_set(str(root)).fingerprint() != before


def test_builtin_digits_is_the_fixed_validation_part():
    probe = open_probe_set("builtin:digits")
    assert len(probe) == 355 and probe.label_names == [str(d) for d in range(10)]
    assert probe.image(0).mode == "L" and probe.image(0).size == (28, 28)
    assert probe.source(3) == "builtin:digits#3"
    assert probe.fingerprint() == open_probe_set("builtin:digits").fingerprint()
