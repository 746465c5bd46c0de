"""The model's layer table as a picture: shapes, parameters, MACs and receptive fields per layer."""

from __future__ import annotations

from dataclasses import dataclass

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of


@dataclass(frozen=True)
class SummaryOptions:
    """``input_size`` (C, H, W) the table is measured at; None: the model's own."""

    input_size: tuple[int, int, int] | None = None


def make_summary(inputs: Inputs, options: SummaryOptions) -> Job[Picture]:
    from cnnexplorer.core.architecture import summarize

    handle = inputs.handle
    yield Progress(0, None, "measuring the layers")
    summary = summarize(handle.module, options.input_size or handle.input_size, handle.device, model_name=handle.spec)
    return picture_of(summary)


def picture_of(summary) -> Picture:
    """The table picture of an already measured ``summary`` (the GUI's session holds one)."""
    from cnnexplorer.core.charts import render_summary_table

    return Picture(render_summary_table(summary),
                   settings=settings_of(SummaryOptions(tuple(summary.input_size))),
                   report={"total_params": summary.total_params, "macs": summary.macs})


def table_job(summary) -> Job[tuple[Picture, dict[str, int]]]:
    """The picture of a measured ``summary`` and the top of each layer's row in it (the GUI marks
    the current layer's row and makes a clicked row's layer current)."""
    from cnnexplorer.core.charts import summary_rows

    yield Progress(0, None, "drawing the layer table")
    return picture_of(summary), summary_rows(summary)


def _from_flags(args) -> SummaryOptions:
    return SummaryOptions(args.input_size)


RECIPE = Recipe("summary", SummaryOptions, make_summary, from_flags=_from_flags)
