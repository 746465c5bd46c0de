"""The ``cnnexplorer evaluate`` command: accuracy, per-class accuracy and the confusion matrix on a labelled set."""

from __future__ import annotations

from cnnexplorer.cli_shared import add_common, add_model_options


def add_evaluate_parser(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="top-1/top-5 accuracy and the confusion matrix on a labelled set")
    add_model_options(evaluate)
    evaluate.add_argument("--data", required=True, metavar="DATASPEC", help="a labelled folder of images or a data spec")
    add_common(evaluate)


def cmd_evaluate(args) -> int:
    from cnnexplorer.core.errors import UserError

    raise UserError("cnnexplorer evaluate is not built yet")
