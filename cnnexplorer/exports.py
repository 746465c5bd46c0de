"""The pictures ``cnnexplorer export VIEW`` can write, each made by a core render function.

Each view adds its own CLI options and turns (model, image, options) into pixels, the settings
that go into the sidecar and the keys of the ``--json`` report. The GUI's views call the same
core render functions, so both front ends write the same pixels.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cnnexplorer.core.errors import UserError


@dataclass(frozen=True)
class Picture:
    pixels: np.ndarray
    settings: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    layer: str | None = None


@dataclass(frozen=True)
class ExportView:
    name: str
    make: Callable[..., Picture]  # (handle, image | None, args) -> Picture
    add_options: Callable[[argparse.ArgumentParser], None] = lambda parser: None


def _summary(handle, image, args) -> Picture:
    from cnnexplorer.core.architecture import summarize
    from cnnexplorer.core.charts import render_summary_table

    summary = summarize(handle.module, args.input_size or handle.input_size, handle.device, model_name=handle.spec)
    return Picture(
        render_summary_table(summary),
        settings={"input_size": list(summary.input_size)},
        report={"total_params": summary.total_params, "macs": summary.macs},
    )


def _predictions(handle, image, args) -> Picture:
    from cnnexplorer.core.charts import render_predictions_chart
    from cnnexplorer.core.predict import predict_images

    if image is None:
        raise UserError("export predictions needs an image: pass --image IMG")
    scores = predict_images(handle, [image.image], top=args.top)[0]
    return Picture(
        render_predictions_chart(scores, title=image.name),
        settings={"top": args.top, "target": None},
        report={"top": [s.to_json() for s in scores]},
    )


def _add_top(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top", type=int, default=5, help="predictions: number of classes (default: 5)")


EXPORT_VIEWS: dict[str, ExportView] = {
    v.name: v
    for v in (
        ExportView("summary", _summary),
        ExportView("predictions", _predictions, _add_top),
    )
}
