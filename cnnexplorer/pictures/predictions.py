"""The model's top-k predictions for an image as a bar chart."""

from __future__ import annotations

from dataclasses import dataclass

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of


@dataclass(frozen=True)
class PredictionsOptions:
    """``top`` classes are drawn; ``target`` (a class index) is marked, as the session's target class."""

    top: int = 5
    target: int | None = None


def make_predictions(inputs: Inputs, options: PredictionsOptions) -> Job[Picture]:
    from cnnexplorer.core.predict import predict_images

    image = inputs.need_image("predictions")
    yield Progress(0, None, f"predicting {image.name}")
    return picture_of(predict_images(inputs.handle, [image.image], top=options.top)[0], image.name, options)


def picture_of(scores, title: str, options: PredictionsOptions) -> Picture:
    """The chart of already computed ``scores`` (the GUI's session holds them)."""
    from cnnexplorer.core.charts import render_predictions_chart

    return Picture(render_predictions_chart(scores, title=title), settings=settings_of(options),
                   report={"top": [s.to_json() for s in scores]})


def _add_flags(parser) -> None:
    from cnnexplorer.pictures.flags import bounded_int

    parser.add_argument("--top", type=bounded_int(1), default=None,
                        help="predictions: number of classes (default: 5); concepts: number of concepts (default: 8)")


RECIPE = Recipe("predictions", PredictionsOptions, make_predictions, _add_flags,
                from_flags=lambda args: PredictionsOptions(top=5 if args.top is None else args.top))
