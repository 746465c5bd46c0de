"""A training run's curves (loss, accuracy, learning rate), read from the training state its
checkpoint holds: the Training tab's picture, made again from the checkpoint the run wrote."""

from __future__ import annotations

from pathlib import Path

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.training.curves import CurvesOptions
from cnnexplorer.pictures.base import Inputs, Picture, Recipe


def make_curves(inputs: Inputs, options: CurvesOptions) -> Job[Picture]:
    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.training.curves import curves_picture
    from cnnexplorer.core.training.state import read_resume, saved_progress

    checkpoint = Path(inputs.handle.spec)
    if not checkpoint.is_file():
        raise UserError(f"the curves are read from a training checkpoint, and {inputs.handle.spec} is not a file: "
                        "pass --model CKPT.pt written by cnnexplorer train or the Training tab")
    yield Progress(0, None, f"reading the curves of {checkpoint.name}")
    history, _ = saved_progress(read_resume(checkpoint)[0])
    pixels, settings = curves_picture(history, checkpoint.stem, options)
    report = {"steps": len(history.step), "epochs": len(history.val_step),
              "final_val_acc": history.val_acc[-1] if history.val_acc else None}
    return Picture(pixels, settings, report)


def _add_flags(parser) -> None:
    parser.add_argument("--smoothing", type=float, metavar="S",
                        help="curves: smoothing weight of the batch curves, 0 to below 1 (default 0.6)")


def _from_flags(args) -> CurvesOptions:
    return CurvesOptions() if args.smoothing is None else CurvesOptions(args.smoothing)


RECIPE = Recipe("curves", CurvesOptions, make_curves, _add_flags, _from_flags)
