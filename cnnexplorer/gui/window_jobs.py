"""The main window's jobs: opening images and models, predicting, moving a model to a device.

They are core generators (no Qt) the window runs in its ``JobRunner``.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.devices import resolve_device
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.images import load_image
from cnnexplorer.core.jobs import Progress
from cnnexplorer.core.models import FileOptions, open_model
from cnnexplorer.core.predict import predict_images
from cnnexplorer.resource_files import resource_path

TOP_K = 5


def sample_images() -> list[Path]:
    """The demo pictures shipped with the package, in a stable order."""
    return sorted(resource_path("samples").glob("*.png"))


def images_job(paths: list[str]):
    """Load images one by one; bad files become messages, the good ones still open."""
    loaded, problems = [], []
    for i, path in enumerate(paths):
        yield Progress(i, len(paths), f"opening {Path(path).name}")
        try:
            loaded.append(load_image(path))
        except UserError as exc:
            problems.append(str(exc))
    return loaded, problems


def model_job(spec: str, device: str, options: FileOptions):
    handle = yield from open_model(spec, device, options)
    yield Progress(0, None, "measuring the layers")
    return handle, summarize_handle(handle)


def predict_job(handle, image):
    yield Progress(0, None, f"predicting {image.name}")
    return predict_images(handle, [image.image], top=TOP_K)[0]


def move_job(handle, device: str):
    """A copy of the model on ``device``: jobs still running on the original are not disturbed."""
    target = resolve_device(device)
    if target == handle.device:
        return handle
    yield Progress(0, None, f"moving the model to {target}")
    return replace(handle, module=copy.deepcopy(handle.module)).to(target)
