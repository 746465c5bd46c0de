"""Probe sets: a fixed-order list of images, labelled or not, that the dataset views index and search.

A probe set is opened from a folder of images (``folder:PATH`` or a bare path) or from a data spec
the trainer reads (``builtin:shapes``, ``builtin:digits``, ``mnist:ROOT``, ``fashion-mnist:ROOT``,
``cifar10:ROOT``). A folder is read recursively, in sorted path order:

* sub-folders are classes, like torchvision's ``ImageFolder``: an image's label is the top-level
  sub-folder it lies in, however deep; a folder with only images directly inside is unlabelled;
  in a mixed folder the images lying directly in it are unlabelled (label -1) and the rest are
  labelled by their sub-folder;
* a folder with both ``train/`` and ``val/`` sub-folders (the trainer's layout) is probed through
  ``val/``, the part a trained model has not seen;
* hidden files and folders (a leading dot) are ignored; every other file is decoded once when the
  set is opened (as ``core.images.load_image`` decodes what the views show) and one that cannot
  be (not an image, empty, truncated) is left out and listed in ``skipped``, so positions never
  shift during a pass.

The generated and packaged sets are their held-out parts: ``builtin:shapes`` is the trainer's
fixed validation set, ``builtin:digits`` the digits' fixed validation part, the torchvision
datasets their test split. Pixels are made as the views make them: ``preprocessing.to_tensor`` of
the PIL image.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from cnnexplorer.core.dataset.thumbnails import black_thumbnail, thumbnail
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress, drive
from cnnexplorer.core.model_handle import Preprocessing
from cnnexplorer.core.training.data import _TORCHVISION, DATASPEC_HELP, SHAPES_VALIDATION

PROBE_HELP = "a folder of images | " + DATASPEC_HELP
_FORMAT = "probe-1"  # bump when the way a set is read changes, so old fingerprints no longer match
_READERS = min(8, os.cpu_count() or 1)  # threads decoding images: PIL releases the GIL while it decodes


@dataclass
class ProbeSet:
    """A fixed-order list of images; ``read(i)`` gives image ``i`` as a file would (RGB or L)."""

    spec: str
    label_names: list[str] | None
    labels: np.ndarray  # int64 [n], -1 where unlabelled
    read: Callable[[int], Image.Image] = field(repr=False)
    sources: list[str] | None = field(default=None, repr=False)  # file paths for folder data
    stamp: str = field(default="", repr=False)  # what the fingerprint hashes: each file's path and SHA-256
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def source(self, i: int) -> str:
        """The file's path for folder data, else ``SPEC#i``."""
        return self.sources[i] if self.sources is not None else f"{self.spec}#{i}"

    def label(self, i: int) -> int:
        return int(self.labels[i])

    def image(self, i: int) -> Image.Image:
        if not 0 <= i < len(self):
            raise IndexError(f"image {i} is not in this probe set of {len(self)} images")
        return self.read(i)

    def fingerprint(self) -> str:
        """Changes when the set's files change: their paths and contents (each file's SHA-256, read as the set
        was opened, so a file rewritten with its old size and time counts as changed, and a file only touched
        does not); for the generated and packaged sets, the spec and the length."""
        text = f"{_FORMAT}\n{self.spec}\n{len(self)}\n{self.stamp}"
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()  # file names need not be UTF-8

    def batches(self, preprocessing: Preprocessing, batch_size: int, start: int = 0, stop: int | None = None
                ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """``(first index, [n,C,H,W] pixels in [0,1], labels [n])`` of images ``start`` to ``stop`` (default: the
        end), in order.

        A file that can no longer be read (changed since the set was opened) is added to ``skipped``
        and stands as a black image, so every later image keeps its position. The next batch is
        decoded while the caller works on this one.
        """
        for first, decoded, labels in self._decoded(preprocessing, False, batch_size, start, stop):
            yield first, torch.stack(decoded), labels

    def batches_with_thumbnails(self, preprocessing: Preprocessing, batch_size: int, start: int = 0,
                                stop: int | None = None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, np.ndarray]]:
        """``batches`` with each image's ``thumbnails.thumbnail`` ``[n, THUMBNAIL, THUMBNAIL, 3]`` uint8, made by the
        reader threads from the 8-bit image as they decode it."""
        for first, decoded, labels in self._decoded(preprocessing, True, batch_size, start, stop):
            pixels, thumbs = zip(*decoded)
            yield first, torch.stack(pixels), labels, np.stack(thumbs)

    def _decoded(self, preprocessing: Preprocessing, with_thumbnails: bool, batch_size: int, start: int,
                 stop: int | None) -> Iterator[tuple[int, list, torch.Tensor]]:
        """Each batch's images as ``_decode`` gives them, the next batch decoded on reader threads meanwhile.

        Each reader takes a contiguous share of the batch, not an image at a time: a task per image woke
        the caller for each one, and on small images the hand-overs of Python's lock cost more than the
        decoding (2,000 PNG files of 64 px, 2 cores: 0.77 s of CPU on one reader against 0.47 s in a plain
        loop, and 0.50 s with one share per batch; 1.05 s and 0.95 s on two readers)."""
        end = len(self) if stop is None else min(stop, len(self))
        firsts = range(start, end, batch_size)
        pool, stopping = ThreadPoolExecutor(_READERS), threading.Event()

        def decode(images: range) -> list:
            """A share's images; when the caller has stopped, no more of them (what is made is not used)."""
            return [self._decode(preprocessing, i, with_thumbnails) for i in images if not stopping.is_set()]

        def submit(first: int) -> list:
            images = range(first, min(first + batch_size, end))
            share = -(-len(images) // _READERS)
            return [pool.submit(decode, images[k:k + share]) for k in range(0, len(images), share)]

        try:
            coming = submit(firsts[0]) if firsts else []
            for k, first in enumerate(firsts):
                batch, coming = coming, submit(firsts[k + 1]) if k + 1 < len(firsts) else []
                decoded = [item for share in batch for item in share.result()]
                yield first, decoded, torch.from_numpy(self.labels[first:first + len(decoded)])
        finally:
            stopping.set()  # a cancel waits for one image per reader, not a whole share of large ones
            pool.shutdown(wait=True, cancel_futures=True)

    def _decode(self, preprocessing: Preprocessing, i: int, with_thumbnail: bool):
        """Image ``i``'s pixels, with its thumbnail if asked; a black image for a file that can no longer be read."""
        try:
            fitted = preprocessing.fit(self.read(i))
            pixels = preprocessing.tensor(fitted)
            return (pixels, thumbnail(fitted)) if with_thumbnail else pixels
        except UserError as exc:
            self.skipped[self.source(i)] = f"{exc} (changed since the set was opened; a black image stands in)"
            black = torch.zeros(preprocessing.input_size)
            return (black, black_thumbnail()) if with_thumbnail else black


def open_probe_set(spec: str, download: bool = False) -> ProbeSet:
    """The probe set ``spec`` names (a bare folder path also works); ``UserError`` when it holds no image."""
    return drive(open_probe_job(spec, download))


def open_probe_job(spec: str, download: bool = False) -> Job[ProbeSet]:
    """``open_probe_set`` as a job: a folder's files are decoded once, with progress. A folder is named by its
    absolute path in the set's ``spec`` (and so in its fingerprint and index), however it was written."""
    text = str(spec).strip()
    kind, sep, rest = text.partition(":")
    if sep and kind == "folder":
        if not rest.strip():
            raise UserError("folder: needs a path (folder:PATH); pass the folder of images to probe")
        return (yield from _folder(_absolute(rest)))
    if sep and kind == "builtin":
        return _builtin(rest)
    if sep and kind in _TORCHVISION:
        return _torchvision(kind, _absolute(rest), download)
    if text and Path(text).expanduser().exists():
        return (yield from _folder(_absolute(text)))  # a file is refused there
    if sep and len(kind) > 1:
        raise UserError(f"unknown data spec '{spec}'; use {PROBE_HELP}")
    raise UserError(f"data folder not found: {spec}; pass a folder of images (one sub-folder per class for labels) "
                    f"or {DATASPEC_HELP}")


def _absolute(path: str) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _folder(path: Path) -> Job[ProbeSet]:
    from cnnexplorer.core.images import load_image

    if path.is_file():
        raise UserError(f"{path} is a file, not a folder; pass the folder of images that holds it (one sub-folder "
                        "per class for labels)")
    if not path.is_dir():
        raise UserError(f"data folder not found: {path}; pass a folder of images (one sub-folder per class for labels)")
    if (path / "train").is_dir() and (path / "val").is_dir():
        path = path / "val"
    files, skipped = _listing(path)
    listed = len(files) + len(skipped)
    kept: list[Path] = []
    digests: list[str] = []
    with ThreadPoolExecutor(_READERS) as pool:
        for done, (file, why, digest) in enumerate(pool.map(_check, files), 1):
            if why is None:
                kept.append(file)
                digests.append(f"{file.relative_to(path).as_posix()}\t{digest}")
            else:
                skipped[str(file)] = why
            if done % 64 == 0 or done == len(files):
                yield Progress(done, len(files), f"reading {path.name}: {done:,}/{len(files):,} files")
    if not kept:
        example = next(iter(skipped.items()), None)
        found = f"its {listed} files cannot be read (e.g. {example[0]}: {example[1]})" if example else "it is empty"
        raise UserError(f"{path} holds no images: {found}; put images (PNG, JPEG …) in it, one sub-folder per class "
                        "for labels")
    tops = [_class_folder(path, f) for f in kept]
    classes = sorted({top for top in tops if top is not None})
    number = {name: k for k, name in enumerate(classes)}
    labels = np.array([number.get(top, -1) for top in tops], dtype=np.int64)
    return ProbeSet(f"folder:{path}", classes or None, labels, lambda i: load_image(kept[i]).image,
                    [str(f) for f in kept], "\n".join(digests), skipped)


def _class_folder(root: Path, file: Path) -> str | None:
    """The top-level sub-folder of ``root`` that holds ``file`` (its class), None for a file directly in ``root``."""
    parts = file.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def _listing(root: Path) -> tuple[list[Path], dict[str, str]]:
    """Every non-hidden file under ``root`` in sorted path order, and the entries that cannot be read (a broken
    link, a file gone meanwhile) with why."""
    files, unreadable = [], {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if name.startswith("."):
                continue
            file = Path(folder) / name
            try:
                file.stat()
            except OSError as exc:
                unreadable[str(file)] = f"cannot be read: {exc.strerror or exc}"
                continue
            files.append(file)
    return sorted(files, key=lambda file: file.relative_to(root).parts), unreadable


def _check(file: Path) -> tuple[Path, str | None, str]:
    """``file``, None if it decodes as the views decode it (else why not), and the SHA-256 of its bytes."""
    from cnnexplorer.core.images import load_image

    try:
        return file, None, load_image(file).sha256
    except UserError as exc:
        return file, str(exc), ""


def _builtin(name: str) -> ProbeSet:
    if name == "shapes":
        from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES, validation_set

        shapes = validation_set(SHAPES_VALIDATION)
        return _from_pixels("builtin:shapes", shapes.images, shapes.labels, list(SHAPE_CLASSES))
    if name == "digits":
        from cnnexplorer.core.builtin.digits_data import DIGIT_CLASSES, split

        held = split()[1]
        return _from_pixels("builtin:digits", held.images, held.labels, list(DIGIT_CLASSES))
    raise UserError(f"unknown built-in dataset '{name}'; the built-in datasets are builtin:shapes and builtin:digits")


def _from_pixels(spec: str, images: torch.Tensor, labels: torch.Tensor, names: list[str]) -> ProbeSet:
    """A set of generated ``[N,C,H,W]`` pixels in [0,1], kept as 8-bit images (what a saved file would hold)."""
    array = (images * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    array = array[..., 0] if array.shape[-1] == 1 else array
    return ProbeSet(spec, names, labels.numpy().astype(np.int64), lambda i: Image.fromarray(array[i]))


def _torchvision(kind: str, root: Path, download: bool) -> ProbeSet:
    import torchvision.datasets

    try:
        dataset = getattr(torchvision.datasets, _TORCHVISION[kind])(root, train=False, download=download)
    except RuntimeError as exc:
        if download:
            raise UserError(f"could not download {kind} into {root} ({exc}); check the network or the folder") from None
        raise UserError(f"{kind} was not found under {root}; fetch it with --download (cnnexplorer index and train "
                        "take it), or point to the folder that holds it") from None
    labels = np.asarray([int(t) for t in dataset.targets], dtype=np.int64)
    return ProbeSet(f"{kind}:{root}", [str(c) for c in dataset.classes], labels, lambda i: dataset[i][0])
