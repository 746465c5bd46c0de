"""The ``cnnexplorer index`` command: one pass over a probe set that the dataset pictures read."""

from __future__ import annotations

from cnnexplorer.cli_shared import add_common, add_model_options


def add_index_parser(sub) -> None:
    index = sub.add_parser("index", help="index a dataset: each unit's top images, distributions, features")
    add_model_options(index)
    index.add_argument("--data", required=True, metavar="DATASPEC", help="a folder of images or a data spec")
    add_common(index)


def cmd_index(args) -> int:
    from cnnexplorer.core.errors import UserError

    raise UserError("cnnexplorer index is not built yet")
