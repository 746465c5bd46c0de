"""Training data from a DATASPEC: generated shapes, shipped digits, a folder of images, or a torchvision dataset.

DATASPEC: ``builtin:shapes`` | ``builtin:digits`` | ``folder:PATH`` | ``mnist:ROOT`` |
``fashion-mnist:ROOT`` | ``cifar10:ROOT``. Every source yields ``(images, labels)`` batches with
images as float [0,1] pixels already at the model's input size and channel count, so the model's
own normalisation (``PixelModel``) applies and the loop never needs to know where the data came from. Shuffling
uses a generator seeded from (seed, epoch), so epoch ``k`` sees the same batches whether the
run was resumed or not. A distributed run asks for its rank's part: with ``rank``/``size`` each of
``size`` processes gets a disjoint part of every global batch of ``batch_size × size`` images (image
folders and torchvision sets through a ``DistributedSampler`` over the epoch's single-process order,
the digits by taking every ``size``-th image of the global batch, the generated shapes by slicing the
global batch each rank makes), so the ranks together see exactly the single-process batches. An image file that cannot be decoded (empty, truncated, not an image) is
left out of its batch and listed in ``DataSource.skipped``; a part with no readable file is a ``UserError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Subset, default_collate
from torch.utils.data.distributed import DistributedSampler

from cnnexplorer.core.checks import check_number
from cnnexplorer.core.distributed import shard_range
from cnnexplorer.core.errors import UserError

Batch = tuple[torch.Tensor, torch.Tensor]
DATASPEC_HELP = "builtin:shapes | builtin:digits | folder:PATH | mnist:ROOT | fashion-mnist:ROOT | cifar10:ROOT"
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
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable files met so far: path → reason
    # a source that can read only its rank's part: (batch, seed, epoch, rank, size) and (batch, rank, size)
    _train_shard: Callable[[int, int, int, int, int], Iterator[Batch]] | None = field(default=None, repr=False)
    _val_shard: Callable[[int, int, int], Iterator[Batch]] | None = field(default=None, repr=False)

    def steps_per_epoch(self, batch_size: int, size: int = 1) -> int:
        """Steps of an epoch with ``batch_size`` images per process on ``size`` processes."""
        return -(-self.train_size // (batch_size * size))

    def train_batches(self, batch_size: int, seed: int, epoch: int, rank: int = 0, size: int = 1) -> Iterator[Batch]:
        """The batches of training epoch ``epoch`` (0-based), the same for the same arguments; with ``size`` > 1,
        rank ``rank``'s part of each global batch of ``batch_size × size`` (a global batch smaller than ``size``,
        which would leave a rank nothing, is left out on every rank)."""
        if size == 1:
            return self._train(batch_size, seed, epoch)
        if self._train_shard is not None:
            return self._train_shard(batch_size, seed, epoch, rank, size)
        return _sliced(self._train(batch_size * size, seed, epoch), rank, size)

    def val_batches(self, batch_size: int, rank: int = 0, size: int = 1) -> Iterator[Batch]:
        """The validation batches in order; with ``size`` > 1 rank ``rank``'s share of them (disjoint, all covered)."""
        if size == 1:
            return self._val(batch_size)
        if self._val_shard is not None:
            return self._val_shard(batch_size, rank, size)
        return (batch for k, batch in enumerate(self._val(batch_size)) if k % size == rank)


def _sliced(batches: Iterator[Batch], rank: int, size: int) -> Iterator[Batch]:
    for images, labels in batches:
        if len(labels) >= size:
            yield images[rank::size], labels[rank::size]


def epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    """The order in which a single process's shuffled ``DataLoader`` visits ``size`` items in ``epoch``: drawn the
    same way (a loader over the indices with the epoch's generator), so it stays equal in any torch version."""
    gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return next(iter(DataLoader(range(size), batch_size=max(size, 1), shuffle=True, generator=gen))).tolist()


def epoch_part(dataset: Dataset, seed: int, epoch: int, rank: int, size: int) -> tuple[Dataset, DistributedSampler]:
    """Rank ``rank``'s ``DistributedSampler`` over ``dataset`` in the single process's order of ``epoch``.

    Ranks take every ``size``-th image of that order, so consecutive per-rank batches of B make the
    single-process batches of B × size (when ``size`` divides the set; otherwise the sampler repeats a
    few images to even the ranks out).
    """
    ordered = Subset(dataset, epoch_order(len(dataset), seed, epoch))
    sampler = DistributedSampler(ordered, num_replicas=size, rank=rank, shuffle=False)
    sampler.set_epoch(epoch)
    return ordered, sampler


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
        if rest == "digits":
            return _digits(input_size)
        if rest != "shapes":
            raise UserError(f"unknown built-in dataset '{rest}'; the built-in datasets are builtin:shapes and "
                            "builtin:digits")
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


def _digits(input_size: tuple[int, int, int]) -> DataSource:
    """The shipped handwritten digits (UCI optical digits, MNIST-framed), with their fixed validation part."""
    from cnnexplorer.core.builtin.digits_data import DIGIT_CLASSES, split

    train_part, val_part = split()

    def batches(part, order: torch.Tensor, batch_size: int) -> Iterator[Batch]:
        for chosen in order.split(batch_size):  # resized a batch at a time: 224×224 RGB copies of all would be 1 GB
            yield fit_pixels(part.images[chosen], input_size), part.labels[chosen]

    def order(seed: int, epoch: int) -> torch.Tensor:
        return torch.randperm(len(train_part.labels), generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))

    def train(batch_size: int, seed: int, epoch: int) -> Iterator[Batch]:
        yield from batches(train_part, order(seed, epoch), batch_size)

    def train_shard(batch_size: int, seed: int, epoch: int, rank: int, size: int) -> Iterator[Batch]:
        """Only this rank's images of each global batch are resized (the others' are another rank's work)."""
        for chosen in order(seed, epoch).split(batch_size * size):
            if len(chosen) >= size:
                yield fit_pixels(train_part.images[chosen[rank::size]], input_size), train_part.labels[chosen[rank::size]]

    def validate(batch_size: int) -> Iterator[Batch]:
        yield from batches(val_part, torch.arange(len(val_part.labels)), batch_size)

    return DataSource("builtin:digits", list(DIGIT_CLASSES), len(train_part.labels), len(val_part.labels), train,
                      validate, _train_shard=train_shard)


def _image_transform(input_size: tuple[int, int, int]):
    from torchvision.transforms import v2

    channels, height, width = input_size
    return v2.Compose([
        v2.Lambda(lambda image: image.convert("L" if channels == 1 else "RGB")),
        v2.Resize((height, width), antialias=True),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
    ])


class _Unreadable(Exception):
    """An image file that cannot be decoded, with why."""

    def __init__(self, path: str, reason: str):
        super().__init__(path, reason)
        self.path, self.reason = path, reason


def _read_image(path: str) -> Image.Image:
    """The image file at ``path`` decoded as RGB; ``_Unreadable`` if it is empty, truncated or no image."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except UnidentifiedImageError:
        raise _Unreadable(path, "not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise _Unreadable(path, str(exc) or type(exc).__name__) from None


def _folder(path: Path, input_size: tuple[int, int, int], val_fraction: float, seed: int) -> DataSource:
    from torchvision.datasets import ImageFolder

    if not path.is_dir():
        raise UserError(f"data folder not found: {path}; pass folder:PATH with one sub-folder of images per class")
    transform = _image_transform(input_size)
    try:
        if (path / "train").is_dir() and (path / "val").is_dir():
            train_set = ImageFolder(path / "train", transform, loader=_read_image)
            val_set = ImageFolder(path / "val", transform, loader=_read_image)
            if train_set.classes != val_set.classes:
                raise UserError(f"{path}/train and {path}/val have different class folders "
                                f"({', '.join(train_set.classes)} vs {', '.join(val_set.classes)}); make them match")
            classes = train_set.classes
        else:
            full = ImageFolder(path, transform, loader=_read_image)
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


class _Skipping(Dataset):
    """``dataset``'s items, with None for an unreadable file, which is noted in ``skipped``."""

    def __init__(self, dataset: Dataset, skipped: dict[str, str]):
        self.dataset, self.skipped = dataset, skipped

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            return self.dataset[index]
        except _Unreadable as exc:
            self.skipped[exc.path] = exc.reason
            return None


def _collate(items: list) -> Batch | None:
    kept = [item for item in items if item is not None]
    return default_collate(kept) if kept else None


def _from_datasets(spec: str, classes: list[str], train_set: Dataset, val_set: Dataset) -> DataSource:
    skipped: dict[str, str] = {}

    def batches(dataset: Dataset, part: str, **order) -> Iterator[Batch]:
        readable = False
        for batch in DataLoader(_Skipping(dataset, skipped), collate_fn=_collate, num_workers=0, **order):
            if batch is not None:
                readable = True
                yield batch
        if not readable and len(dataset):  # every file was skipped
            path, reason = next(reversed(skipped.items()))
            raise UserError(f"none of the {len(dataset)} {part} images of {spec} can be read (e.g. {path}: {reason}); "
                            "replace or remove the broken files")

    def train(batch_size: int, seed: int, epoch: int) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        yield from batches(train_set, "training", batch_size=batch_size, shuffle=True, generator=gen)

    def validate(batch_size: int) -> Iterator[Batch]:
        yield from batches(val_set, "validation", batch_size=batch_size, shuffle=False)

    def train_shard(batch_size: int, seed: int, epoch: int, rank: int, size: int) -> Iterator[Batch]:
        ordered, sampler = epoch_part(train_set, seed, epoch, rank, size)
        yield from batches(ordered, "training", batch_size=batch_size, sampler=sampler)

    def validate_shard(batch_size: int, rank: int, size: int) -> Iterator[Batch]:
        part = Subset(val_set, shard_range(len(val_set), rank, size))
        yield from batches(part, "validation", batch_size=batch_size, shuffle=False)

    return DataSource(spec, classes, len(train_set), len(val_set), train, validate, skipped, train_shard,
                      validate_shard)
