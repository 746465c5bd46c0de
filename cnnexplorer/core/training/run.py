"""A training run as one request: what ``cnnexplorer train``'s flags and the Training tab's form both ask for.

The CLI builds a ``TrainRequest`` from its flags, the Training tab from its form; both run
``training_job`` on it, so the same request opens the same data, prepares the same model and
trains it the same way. A new run trains the request's model (its frozen layers too); a resume
opens the checkpoint's model and continues the run it holds, with its settings. Before the first
step the run says what it will do (``describe_plan``) and where its model starts (``Baseline``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from cnnexplorer.core.architecture import Summary, summarize_handle
from cnnexplorer.core.checks import check_number
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle
from cnnexplorer.core.models import FileOptions, open_model
from cnnexplorer.core.training.augment import augment_batch, preview_picture
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.data import DataSource, check_val_fraction, open_data
from cnnexplorer.core.training.loop import RunControl, TrainResult, evaluate, train
from cnnexplorer.core.training.plan import Baseline, describe_plan
from cnnexplorer.core.training.state import read_resume
from cnnexplorer.core.arch_specs import architecture_spec
from cnnexplorer.core.training.transfer import prepare_model


@dataclass(frozen=True)
class TrainRequest:
    """One run: a new one trains ``model`` on ``data`` with ``config``; one with ``resume`` continues a checkpoint."""

    out: Path | None = None  # the checkpoint written every epoch (the best beside it as NAME.best.EXT)
    model: ModelHandle | None = None  # a new run's model; a resume opens the checkpoint's
    data: str | None = None  # the data spec; a resume without one uses the data it was trained on
    config: TrainConfig = field(default_factory=TrainConfig)  # a new run's settings; a resume keeps its own
    scratch: bool = False  # re-initialise the weights first
    download: bool = False  # mnist/fashion-mnist/cifar10 data missing from its root is downloaded
    val_split: float = 0.2  # a folder without val/: the fraction held out for validation
    arch: str | None = None  # the architecture written into checkpoints; None: the model's own
    resume: Path | None = None  # the checkpoint whose run continues
    epochs: int | None = None  # a resume's new length; None keeps the checkpoint's
    device: str | torch.device = "auto"  # where a resumed model runs
    file_options: FileOptions = field(default_factory=FileOptions)  # what a resumed checkpoint's file does not say
    gradient_every: int = 0  # > 0: the loop yields a GradientFlow every this many steps
    sync_bn: bool = False  # a distributed run synchronises batch-norm statistics across its processes

    def __post_init__(self):
        check_val_fraction(self.val_split)
        check_number("gradient-every", self.gradient_every, 0, whole=True)


@dataclass(frozen=True)
class RunReady:
    """Yielded once the run is set up: its settings (a resume's are the checkpoint's), its data (whose
    ``skipped`` files fill in as the run reads them), what it will do and where its model starts."""

    config: TrainConfig
    data: DataSource
    plan: str = ""
    baseline: Baseline | None = None  # None: a resume whose checkpoint recorded no validation accuracy


def training_job(request: TrainRequest, control: RunControl | None = None) -> Job[TrainResult]:
    """Set up the run ``request`` asks for and train: yields ``RunReady``, then the loop's metrics and snapshots."""
    resume, config, handle = None, request.config, request.model
    if request.resume is not None:
        resume, config = read_resume(request.resume)
        config = config if request.epochs is None else replace(config, epochs=request.epochs)
        handle = yield from open_model(str(request.resume), request.device, request.file_options)
    arch = architecture_spec(handle, request.arch)
    spec = request.data if resume is None else request.data or resume["data"]
    data = yield from _open_data(request, handle, config, spec)
    plan = describe_plan(request, data.class_names)
    if resume is None:
        handle = prepare_model(handle, data.class_names, scratch=request.scratch, seed=config.seed, head=config.head,
                               binary=config.binary)
        yield Progress(0, None, "measuring the starting model's validation accuracy")
        start_acc = evaluate(handle.pixel_model(), data, config.batch_size, handle.device,
                             config.autocast_dtype(handle.device))[1]
    else:
        start_acc = resume.get("val_acc")
    baseline = None if start_acc is None else Baseline(start_acc, len(data.class_names), data.val_size)
    yield RunReady(config, data, plan, baseline)
    return (yield from train(handle, data, config, arch=arch, out=request.out, resume=resume, control=control,
                             gradient_every=request.gradient_every, sync_bn=request.sync_bn))


def summarised_training_job(request: TrainRequest,
                            control: RunControl | None = None) -> Job[tuple[TrainResult, Summary]]:
    """``training_job`` and the trained model's summary, which the app needs to make it the current model."""
    result = yield from training_job(request, control)
    return result, summarize_handle(result.handle)


def preview_job(request: TrainRequest, count: int = 16, columns: int = 8) -> Job[tuple[np.ndarray, DataSource]]:
    """The first ``count`` training images of a new run as they come (top) and augmented (bottom), labelled,
    ``columns`` to a row (the screen asks for as many as fit its width at 1:1)."""
    config = request.config
    data = yield from _open_data(request, request.model, config, request.data)
    images, labels = next(iter(data.train_batches(count, config.seed, 0)))
    images, labels = images[:count], labels[:count]
    moved = augment_batch(images, config.augment, torch.Generator().manual_seed(config.seed))
    plain = preview_picture(images, labels, data.class_names, columns)
    augmented = preview_picture(moved, labels, data.class_names, columns)
    gap = np.full((12, plain.shape[1], 3), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([plain, gap, augmented])), data


def _open_data(request: TrainRequest, handle: ModelHandle, config: TrainConfig, spec: str) -> Job[DataSource]:
    yield Progress(0, None, f"opening {spec}")
    return open_data(spec, handle.input_size, val_fraction=request.val_split, seed=config.seed,
                     download=request.download)
