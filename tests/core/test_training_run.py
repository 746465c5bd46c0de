"""A ``TrainRequest`` run by ``training_job``: what the CLI and the Training tab both run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.augment import Augmentation
from cnnexplorer.core.training.run import RunReady, TrainRequest, preview_job, training_job
from cnnexplorer.core.training.state import read_resume
from tests.core.test_training import _stripes


def test_a_resume_request_continues_the_checkpoints_run_on_its_data_with_its_settings(tmp_path):
    _stripes(tmp_path / "data", 8, 0)
    out, spec = tmp_path / "run.pt", f"folder:{tmp_path / 'data'}"
    first = TrainRequest(out=out, model=load_model("builtin:lenet5", "cpu"), data=spec,
                         config=TrainConfig(epochs=1, batch_size=8, seed=2, snapshots=False))
    assert drive(training_job(first)).epochs_done == 1
    items = []
    resumed = drive(training_job(TrainRequest(out=out, resume=out, epochs=2, device="cpu")), items.append)
    (ready,) = [item for item in items if isinstance(item, RunReady)]
    assert ready.data.spec == spec and ready.config == replace(first.config, epochs=2)
    assert resumed.epochs_done == 2 and len(resumed.history.val_step) == 2  # the curves go on from the checkpoint's
    assert read_resume(out)[0]["epochs_done"] == 2


def test_the_preview_shows_a_batch_as_loaded_above_the_same_batch_augmented(tmp_path):
    _stripes(tmp_path / "data", 4, 0)
    request = TrainRequest(model=load_model("builtin:lenet5", "cpu"), data=f"folder:{tmp_path / 'data'}",
                           config=TrainConfig(augment=Augmentation(hflip=True, rotation=30)))
    pixels, data = drive(preview_job(request, count=4))
    assert data.class_names == ["horizontal", "vertical"] and pixels.dtype == np.uint8 and pixels.shape[2] == 3
    half = (pixels.shape[0] - 12) // 2
    assert (pixels[half:half + 12] == 255).all() and not np.array_equal(pixels[:half], pixels[-half:])


def test_the_preview_lays_its_images_out_in_the_columns_asked_for(tmp_path):
    _stripes(tmp_path / "data", 8, 0)
    request = TrainRequest(model=load_model("builtin:lenet5", "cpu"), data=f"folder:{tmp_path / 'data'}",
                           config=TrainConfig())
    wide, _ = drive(preview_job(request, count=8, columns=8))
    narrow, _ = drive(preview_job(request, count=8, columns=4))
    assert narrow.shape[1] < 0.6 * wide.shape[1] and narrow.shape[0] > 1.6 * wide.shape[0]
