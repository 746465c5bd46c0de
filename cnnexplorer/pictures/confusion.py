"""The confusion matrix of a model on a labelled set: rows are true classes, columns predicted ones,
each cell shaded by its share of the row, with its count, and each row's accuracy beside it.

The options hold the data spec and the set's fingerprint, so ``export --from-sidecar`` evaluates the
same data again, or refuses data that have changed. Only
classes that occur as a label or a prediction are drawn (all of a small model's); a matrix of many
classes drops the numbers and then the names, never the cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    import numpy as np

    from cnnexplorer.core.dataset.evaluate import Evaluation
    from cnnexplorer.core.dataset.index_types import DatasetIndex
    from cnnexplorer.core.dataset.probe import ProbeSet

SHADE = (46, 104, 176)
MAX_MATRIX = 720  # pixels the cells take at most, across
NAME_WIDTH = 180  # a longer class name is cut


@dataclass(frozen=True)
class ConfusionOptions:
    """``data``: the labelled set (a folder of images or a data spec); ``fingerprint``: the set's when the
    picture was made (a changed set is refused)."""

    data: str | None = None
    fingerprint: str | None = None


def open_data_job(name: str, data: str | None, fingerprint: str | None) -> Job[ProbeSet]:
    """The probe set a dataset picture's options name, its folder made absolute (so the ``spec`` a picture
    records names the same images from any working folder); ``UserError`` when none is named or it has
    changed since the picture was made (its recorded ``fingerprint`` differs)."""
    from cnnexplorer.core.dataset.index import IndexNote
    from cnnexplorer.core.dataset.probe import open_probe_job
    from cnnexplorer.core.errors import UserError

    if not data:
        raise UserError(f"export {name} needs a dataset: pass --data DATASPEC (a folder of images, one sub-folder "
                        "per class for labels; builtin:shapes …)")
    probe = yield from open_probe_job(data)
    for path, why in probe.skipped.items():
        yield IndexNote(f"skipped {path}: {why}")
    if fingerprint is not None and fingerprint != probe.fingerprint():
        raise UserError(f"the images of {data} have changed since the {name} picture was made (its fingerprint "
                        "differs, as it does for a folder's pictures made before fingerprints read the files' "
                        f"contents); restore them, or export the {name} picture again from the data as it is")
    return probe


def make_confusion(inputs: Inputs, options: ConfusionOptions) -> Job[Picture]:
    from cnnexplorer.core.dataset.evaluate import evaluate_job

    probe = yield from open_data_job("confusion", options.data, options.fingerprint)
    evaluation = yield from evaluate_job(inputs.handle, probe)
    yield Progress(1, 1, "drawing the confusion matrix")
    return confusion_picture(inputs.handle, probe, evaluation)


def confusion_picture(handle, probe: ProbeSet, evaluation: Evaluation) -> Picture:
    """The confusion matrix of ``evaluation`` (of ``handle`` on ``probe``), as the CLI and the GUI draw it."""
    report = {key: value for key, value in evaluation.to_json().items() if key != "mistakes"}
    return Picture(render_confusion(evaluation, f"{handle.spec} on {probe.spec}"),
                   settings_of(ConfusionOptions(probe.spec, probe.fingerprint())), report)


def render_confusion(evaluation: Evaluation, title: str) -> np.ndarray:
    """The matrix as an ``H×W×3`` uint8 picture with its title, the totals and the axes' meaning; rows and
    columns carry the model's class numbers."""
    import numpy as np
    from PIL import Image, ImageDraw

    from cnnexplorer.core.picture_style import BODY, INK, MARGIN, MUTED, PAPER, RULE, SMALL, TITLE, pil_font

    small, body, big = pil_font(SMALL), pil_font(BODY), pil_font(TITLE)
    grid = confusion_grid(evaluation)
    shown, cell, left, top, names = grid.shown, grid.cell, grid.left, grid.top, grid.names
    matrix = evaluation.confusion[np.ix_(shown, shown)]
    n = len(shown)
    numbers, named = grid.numbers, bool(names)
    accuracy_width = int(small.getlength("100.0 %")) + 16
    lines = [f"{evaluation.count:,} images: top-1 {evaluation.top1 * 100:.1f} %, top-5 "
             f"{evaluation.top5_accuracy * 100:.1f} %" + _left_out(evaluation),
             "rows: true class, columns: predicted class; shade: share of the row"]
    width = max(left + n * cell + accuracy_width + MARGIN, 2 * MARGIN + int(max(big.getlength(title),
                                                                                *map(body.getlength, lines))))
    height = top + n * cell + MARGIN
    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), title, font=big, fill=INK)
    for k, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + TITLE + 8 + k * (BODY + 6)), line, font=body, fill=MUTED)
    totals = matrix.sum(axis=1)
    if cell >= SMALL + 2:
        draw.text((left + n * cell + 8, top - SMALL - 6), "top-1", font=small, fill=MUTED)
    for row in range(n):
        y = top + row * cell
        if named:
            draw.text((MARGIN, y + (cell - SMALL) // 2), names[row], font=small, fill=INK)
            x = left + row * cell + cell // 2
            number = str(shown[row])
            draw.text((x - small.getlength(number) / 2, top - SMALL - 6), number, font=small, fill=MUTED)
        for col in range(n):
            share = matrix[row, col] / totals[row] if totals[row] else 0.0
            fill = tuple(int(round(p + (s - p) * share)) for p, s in zip(PAPER, SHADE))
            box = [left + col * cell, y, left + (col + 1) * cell - 1, y + cell - 1]
            draw.rectangle(box, fill=fill, outline=RULE if cell >= 12 else None)
            if numbers and matrix[row, col]:
                text = str(int(matrix[row, col]))
                draw.text((box[0] + (cell - small.getlength(text)) / 2, y + (cell - SMALL) // 2 - 1), text,
                          font=small, fill=PAPER if share > 0.5 else INK)
        if totals[row] and cell >= SMALL + 2:
            draw.text((left + n * cell + 8, y + (cell - SMALL) // 2),
                      f"{matrix[row, row] / totals[row] * 100:.1f} %", font=small, fill=MUTED)
    return np.asarray(image, dtype=np.uint8).copy()


@dataclass(frozen=True)
class ConfusionGrid:
    """Where the matrix's cells lie in the picture: ``cell`` pixels square from (``left``, ``top``), one row and
    column per class in ``shown``; ``names`` the rows' names (empty when cells are too small for text)."""

    shown: list[int]
    cell: int
    left: int
    top: int
    names: list[str]
    numbers: bool  # cells are wide enough for their counts

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(true class, predicted class) of the cell under picture pixel ``(x, y)``, or None."""
        row, col = int((y - self.top) // self.cell), int((x - self.left) // self.cell)
        n = len(self.shown)
        if x < self.left or y < self.top or not (0 <= row < n and 0 <= col < n):
            return None
        return self.shown[row], self.shown[col]


def confusion_grid(evaluation: Evaluation) -> ConfusionGrid:
    """The cells' layout for ``evaluation``, as ``render_confusion`` draws them."""
    from cnnexplorer.core.picture_style import BODY, MARGIN, SMALL, TITLE, fit_text, pil_font

    small = pil_font(SMALL)
    shown = evaluation.shown_classes()
    largest = int(evaluation.confusion.max()) if evaluation.confusion.size else 0
    digits = small.getlength(str(max(largest, 10))) + 8
    cell = int(max(4, min(max(28, digits), MAX_MATRIX // max(len(shown), 1))))
    named = cell >= SMALL + 4
    names = [fit_text(_row_name(c, evaluation.class_names[c]), small, NAME_WIDTH) for c in shown] if named else []
    left = MARGIN + (int(max(map(small.getlength, names))) + 12 if named else 0)
    top = MARGIN + TITLE + 8 + 2 * (BODY + 6) + (SMALL + 6 if named else 0)
    return ConfusionGrid(shown, cell, left, top, names, cell >= digits)


def _row_name(number: int, name: str) -> str:
    """A row's class: its number (the column's heading) and its name, once when they are the same."""
    return name if name == str(number) else f"{number}  {name}"


RECIPE = Recipe("confusion", ConfusionOptions, make_confusion,
                from_flags=lambda args: ConfusionOptions(data=args.data))


def _left_out(evaluation) -> str:
    """What the figures leave out: images with labels the model does not have, and unlabelled ones."""
    unmatched = evaluation.left_out - evaluation.unlabelled
    parts = [f"{unmatched:,} with labels the model does not have"] if unmatched else []
    parts += [f"{evaluation.unlabelled:,} unlabelled"] if evaluation.unlabelled else []
    return f"; left out: {' and '.join(parts)}" if parts else ""


def index_for(handle, probe: ProbeSet, layer: str, features: bool = False, top_k: int = 9) -> Job[DatasetIndex]:
    """The index a dataset picture reads: the default one (``cnnexplorer index``'s and the app's) when it is cached
    and holds ``layer``'s units (or with ``features``, its pooled features), else one of ``layer`` alone, read back
    from the cache or made."""
    from cnnexplorer.core.dataset.index import cached_index, index_job

    made = yield from cached_index(handle, probe, top_k)
    if made is not None and layer in (made.features if features else made.layers):
        return made
    return (yield from index_job(handle, probe, layers=[layer], top_k=top_k,
                                 feature_layers=[layer] if features else None))
