"""How faithful each heatmap method is on one image, as a table picture: deletion and insertion
AUC, ROAD MoRF and LeRF per method, with the random map's row (the baseline to beat) and the
best value of each column in bold ink. ``export faithfulness --image IMG --faith-methods gradcam,saliency``;
``cnnexplorer faithfulness`` measures a whole data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    import numpy as np

TITLES = {"deletion_auc": "deletion AUC (lower)", "insertion_auc": "insertion AUC (higher)",
          "road_morf": "ROAD MoRF (lower)", "road_lerf": "ROAD LeRF (higher)", "pointing": "pointing (higher)"}


@dataclass(frozen=True)
class FaithfulnessOptions:
    """The methods measured (the random map is always added), the deletion/insertion steps and the
    explained class (None: the top one)."""

    methods: tuple[str, ...] = ("gradcam", "saliency", "inputxgrad")
    steps: int = 20
    target: int | str | None = None


def make_faithfulness(inputs: Inputs, options: FaithfulnessOptions) -> Job[Picture]:
    from cnnexplorer.core.checks import check_number
    from cnnexplorer.core.classes import find_class
    from cnnexplorer.core.faithfulness import image_job

    check_number("--faith-steps", options.steps, 2, 1000, whole=True, why="the deletion and insertion curves' steps")
    handle, image = inputs.handle, inputs.need_image("faithfulness")
    target = None if options.target is None else find_class(handle.class_names, options.target)
    table, _ = yield from image_job(handle, handle.pixels(image), options.methods, target, options.steps, inputs.seed)
    report = table.to_json()
    return Picture(draw_table(report, f"faithfulness of {image.name}: {handle.spec}"), settings=settings_of(options),
                   report=report)


def draw_table(report: dict, title: str) -> np.ndarray:
    """The methods × metrics table of a ``Table.to_json()`` report, best value per column in ink."""
    import numpy as np
    from PIL import Image, ImageDraw

    from cnnexplorer.core.faithfulness import BETTER
    from cnnexplorer.core.picture_style import BODY, INK, MARGIN, MUTED, PAPER, RULE, TITLE, pil_font

    rows = report["methods"]
    metrics = [m for m in TITLES if any(m in row for row in rows.values())]
    body, heading = pil_font(BODY), pil_font(TITLE)
    first = max(body.getlength(name) for name in [*rows, "method"]) + 2 * MARGIN
    column = max(body.getlength(TITLES[m]) for m in metrics) + 2 * MARGIN
    line = BODY + 12
    width = int(first + column * len(metrics) + MARGIN)
    height = int(TITLE + 2 * MARGIN + line * (len(rows) + 2))
    sheet = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, MARGIN), title, fill=INK, font=heading)
    top = TITLE + 2 * MARGIN
    best = {m: (min if BETTER[m] == "lower" else max)(r[m] for r in rows.values() if m in r) for m in metrics}
    draw.text((MARGIN, top), "method", fill=MUTED, font=body)
    for k, metric in enumerate(metrics):
        draw.text((first + k * column, top), TITLES[metric], fill=MUTED, font=body)
    draw.line((MARGIN, top + line - 4, width - MARGIN, top + line - 4), fill=RULE)
    for r, (name, row) in enumerate(rows.items(), 1):
        y = top + r * line
        draw.text((MARGIN, y), name, fill=MUTED if name == "random" else INK, font=body)
        for k, metric in enumerate(metrics):
            if metric in row:
                ink = INK if row[metric] == best[metric] else MUTED
                draw.text((first + k * column, y), f"{row[metric]:.3f}", fill=ink, font=body)
    draw.text((MARGIN, top + (len(rows) + 1) * line), f"{report['count']} image(s); the random map is the baseline",
              fill=MUTED, font=body)
    return np.asarray(sheet)


def _add_flags(parser) -> None:
    from cnnexplorer.pictures.flags import bounded_int

    parser.add_argument("--faith-methods", metavar="M1,M2", help="faithfulness: heatmap methods measured "
                        "(default gradcam,saliency,inputxgrad; the random map is always added)")
    parser.add_argument("--faith-steps", type=bounded_int(2, 1000), default=20,
                        help="faithfulness: deletion and insertion steps (default 20)")


def _from_flags(args) -> FaithfulnessOptions:
    methods = tuple(m.strip() for m in args.faith_methods.split(",")) if args.faith_methods else FaithfulnessOptions.methods
    return FaithfulnessOptions(methods, args.faith_steps, args.target)


RECIPE = Recipe("faithfulness", FaithfulnessOptions, make_faithfulness, _add_flags, _from_flags)
