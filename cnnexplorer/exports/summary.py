"""Export views of the model as a whole: its layer table and its predictions for an image."""

from __future__ import annotations

import argparse

from cnnexplorer.exports.base import ExportView, Picture, need_image


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

    need_image(image, "predictions")
    scores = predict_images(handle, [image.image], top=args.top)[0]
    return Picture(
        render_predictions_chart(scores, title=image.name),
        settings={"top": args.top, "target": None},
        report={"top": [s.to_json() for s in scores]},
    )


def _add_top(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top", type=int, default=5, help="predictions: number of classes (default: 5)")


VIEWS = (ExportView("summary", _summary), ExportView("predictions", _predictions, _add_top))
