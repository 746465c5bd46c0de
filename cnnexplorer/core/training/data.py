"""Training data from a DATASPEC: generated shapes, a folder of images, or a torchvision dataset.

DATASPEC: ``builtin:shapes`` | ``folder:PATH`` | ``mnist:ROOT`` | ``fashion-mnist:ROOT`` |
``cifar10:ROOT``. Every source yields ``(images, labels)`` batches with images as float [0,1]
pixels already at the model's input size and channel count, so the model's own normalisation
(``PixelModel``) applies and the loop never needs to know where the data came from. Shuffling
uses a generator seeded from (seed, epoch), so epoch ``k`` sees the same batches whether the
run was resumed or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.training.checks import check_number

Batch = tuple[torch.Tensor, torch.Tensor]
DATASPEC_HELP = "builtin:shapes | folder:PATH | mnist:ROOT | fashion-mnist:ROOT | cifar10:ROOT"
SHAPES_EPOCH = 6400
SHAPES_VALIDATION = 1000


@dataclass
class DataSource:
    """A labelled dataset split into training and validation parts, at one input size."""

    spec: str
    class_names: list[str]
    train_size: int
    val_size: int
    _train: Callable[[int, int, int], Iterator[Batch]] = field(repr=False)
    _val: Callable[[int], Iterator[Batch]] = field(repr=False)

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-self.train_size // batch_size)

    def train_batches(self, batch_size: int, seed: int, epoch: int) -> Iterator[Batch]:
        """The batches of training epoch ``epoch`` (0-based), the same for the same arguments."""
        return self._train(batch_size, seed, epoch)

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        return self._val(batch_size)


def epoch_seed(seed: int, epoch: int) -> int:
    """One seed per (run seed, epoch), so a resumed epoch repeats the uninterrupted one."""
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63)


def fit_pixels(images: torch.Tensor, input_size: tuple[int, int, int]) -> torch.Tensor:
    """``images`` [N,C,H,W] in [0,1] converted to the model's channel count and size."""
    channels, height, width = input_size
    if images.shape[1] != channels:
        images = images.mean(1, keepdim=True) if channels == 1 else images.expand(-1, channels, -1, -1)
    if images.shape[-2:] != (height, width):
        images = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return images.contiguous()


def open_data(spec: str, input_size: tuple[int, int, int], *, val_fraction: float = 0.2, seed: int = 0,
              download: bool = False, shapes_epoch: int = SHAPES_EPOCH,
              shapes_validation: int = SHAPES_VALIDATION) -> DataSource:
    """The source named by ``spec`` for a model taking ``input_size`` (C,H,W) pixels.

    ``shapes_epoch`` and ``shapes_validation`` size the generated shapes data (images per epoch, held-out images);
    ``val_fraction`` is the part of a folder without ``val/`` held out for validation.
    """
    check_val_fraction(val_fraction)
    kind, sep, rest = spec.strip().partition(":")
    if not sep:
        raise UserError(f"unknown data spec '{spec}'; use {DATASPEC_HELP}")
    if kind == "builtin":
        if rest != "shapes":
            raise UserError(f"unknown built-in dataset '{rest}'; the built-in dataset is builtin:shapes")
        return _shapes(input_size, shapes_epoch, shapes_validation)
    if kind == "folder":
        return _folder(Path(rest).expanduser(), input_size, val_fraction, seed)
    if kind in _TORCHVISION:
        return _torchvision(kind, Path(rest).expanduser(), input_size, download)
    raise UserError(f"unknown data spec '{spec}'; use {DATASPEC_HELP}")


def check_val_fraction(value) -> None:
    """The held-out part of a folder is a fraction strictly between 0 and 1."""
    check_number("val-split", value, 0, 1, open_low=True, open_high=True)


def _shapes(input_size: tuple[int, int, int], epoch_size: int, val_size: int) -> DataSource:
    from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES, training_batches, validation_set

    val = validation_set(val_size)
    val_images = fit_pixels(val.images, input_size)

    def train(batch_size: int, seed: int, epoch: int) -> Iterator[Batch]:
        steps = -(-epoch_size // batch_size)
        batches = training_batches(batch_size, seed, size=64, start=epoch * steps)
        for _, batch in zip(range(steps), batches):
            yield fit_pixels(batch.images, input_size), batch.labels

    def validate(batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(val.labels), batch_size):
            yield val_images[start : start + batch_size], val.labels[start : start + batch_size]

    return DataSource("builtin:shapes", list(SHAPE_CLASSES), epoch_size, len(val.labels), train, validate)


def _image_transform(input_size: tuple[int, int, int]):
    from torchvision.transforms import v2

    channels, height, width = input_size
    return v2.Compose([
        v2.Lambda(lambda image: image.convert("L" if channels == 1 else "RGB")),
        v2.Resize((height, width), antialias=True),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
    ])


def _folder(path: Path, input_size: tuple[int, int, int], val_fraction: float, seed: int) -> DataSource:
    from torchvision.datasets import ImageFolder

    if not path.is_dir():
        raise UserError(f"data folder not found: {path}; pass folder:PATH with one sub-folder of images per class")
    transform = _image_transform(input_size)
    try:
        if (path / "train").is_dir() and (path / "val").is_dir():
            train_set, val_set = ImageFolder(path / "train", transform), ImageFolder(path / "val", transform)
            if train_set.classes != val_set.classes:
                raise UserError(f"{path}/train and {path}/val have different class folders "
                                f"({', '.join(train_set.classes)} vs {', '.join(val_set.classes)}); make them match")
            classes = train_set.classes
        else:
            full = ImageFolder(path, transform)
            classes = full.classes
            order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed)).tolist()
            n_val = max(1, round(len(full) * val_fraction))
            if len(full) - n_val < 1:
                raise UserError(f"{path} has too few images ({len(full)}) to split into training and validation")
            train_set, val_set = Subset(full, order[n_val:]), Subset(full, order[:n_val])
    except FileNotFoundError as exc:
        raise UserError(f"{path}: {exc}; put the images in one sub-folder per class (cats/, dogs/ …)") from None
    if len(classes) < 2:
        raise UserError(f"{path} has only {len(classes)} class folder; a classifier needs at least two")
    return _from_datasets(f"folder:{path}", list(classes), train_set, val_set)


_TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def _torchvision(kind: str, root: Path, input_size: tuple[int, int, int], download: bool) -> DataSource:
    import torchvision.datasets

    dataset = getattr(torchvision.datasets, _TORCHVISION[kind])
    transform = _image_transform(input_size)
    try:
        train_set = dataset(root, train=True, transform=transform, download=download)
        val_set = dataset(root, train=False, transform=transform, download=download)
    except RuntimeError as exc:
        if download:
            raise UserError(f"could not download {kind} into {root} ({exc}); check the network or the folder") from None
        raise UserError(f"{kind} was not found under {root}; pass --download to fetch it, or point to the folder "
                        f"that holds it") from None
    return _from_datasets(f"{kind}:{root}", [str(c) for c in train_set.classes], train_set, val_set)


def _from_datasets(spec: str, classes: list[str], train_set: Dataset, val_set: Dataset) -> DataSource:
    def train(batch_size: int, seed: int, epoch: int) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        yield from DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=gen, num_workers=0)

    def validate(batch_size: int) -> Iterator[Batch]:
        yield from DataLoader(val_set, batch_size=batch_size, shuffle=False, num_workers=0)

    return DataSource(spec, classes, len(train_set), len(val_set), train, validate)
