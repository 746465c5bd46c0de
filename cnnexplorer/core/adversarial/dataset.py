"""The labelled images a robustness curve is measured on: the built-in shapes or a folder.

The built-in set is the shapes validation set (never seen in training), so it only fits a
model with the shapes classes. In a folder, an image's label is the class named by its
sub-folder (``star/01.png``, matched case-insensitively to the model's class names); images
with no such folder are labelled with the model's own clean prediction, so for them the
curve measures how often the prediction survives the attack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES, VALIDATION_SEED, generate_shapes
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.images import IMAGE_SUFFIXES, load_image
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle
from cnnexplorer.core.predict import predict_tensor

BUILTIN = "builtin:shapes"


@dataclass(frozen=True)
class LabelledImages:
    """``images`` [N,C,H,W] in [0,1] at the model's input size; ``labelled`` counts the images
    whose label came from a class folder (the rest use the clean prediction)."""

    source: str
    images: Tensor
    labels: Tensor
    labelled: int


def curve_images(handle: ModelHandle, source: str | Path = BUILTIN, limit: int = 200) -> Job[LabelledImages]:
    """At most ``limit`` labelled images from ``source`` (``builtin:shapes`` or a folder)."""
    if str(source) == BUILTIN:
        return (yield from _builtin(handle, limit))
    return (yield from _folder(handle, Path(source), limit))


def _builtin(handle: ModelHandle, limit: int) -> Job[LabelledImages]:
    channels, height, width = handle.input_size
    if tuple(handle.class_names) != SHAPE_CLASSES or channels != 3 or height != width:
        raise UserError("the built-in dataset holds the shapes classes and fits only builtin:shapes; "
                        "choose a folder of images (one sub-folder per class) for this model")
    yield Progress(0, None, "generating the shapes validation images")
    batch = generate_shapes(limit, VALIDATION_SEED, size=height)
    return LabelledImages(BUILTIN, batch.images, batch.labels, len(batch.labels))


def _folder(handle: ModelHandle, folder: Path, limit: int) -> Job[LabelledImages]:
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}; choose a folder of images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:limit]
    if not paths:
        raise UserError(f"{folder} holds no images; choose a folder with PNG or JPEG files (sub-folders per class)")
    names = {n.lower(): i for i, n in enumerate(handle.class_names)}
    pixels, labels = [], []
    for i, path in enumerate(paths):
        yield Progress(i, len(paths), f"loading {path.name}")
        pixels.append(handle.pixels(load_image(path)))
        labels.append(names.get(path.parent.name.lower(), -1) if path.parent != folder else -1)
    images = torch.stack(pixels)
    labels = torch.tensor(labels, dtype=torch.long)
    unknown = labels < 0
    if bool(unknown.any()):
        predicted = torch.tensor([top[0].index for top in predict_tensor(handle, images[unknown], top=1)])
        labels[unknown] = predicted
    return LabelledImages(str(folder), images, labels, int((~unknown).sum()))
