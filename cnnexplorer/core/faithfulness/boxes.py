"""The pointing game's boxes: where the object of each image is, given by the user.

A box file is JSON or CSV (by its suffix), kept beside the data (any name; ``--boxes FILE``):

* JSON: ``{"cats/01.jpg": [x0, y0, x1, y1], …}`` (a list of boxes per file is also accepted);
* CSV: lines ``cats/01.jpg,x0,y0,x1,y1`` (a first line ``file,x0,y0,x1,y1`` is a header; several
  lines for a file give it several boxes).

Files are named by their path relative to the data folder (``/`` separators), or by the bare
file name when that is unique; sets without files (``builtin:shapes`` …) by the image's number.
Boxes are in the original image's pixels, ``x0,y0`` the top-left corner, ``x1,y1`` excluded; a hit
is a map's maximum whose pixel centre, mapped back through the model's resize and crop, lies in a box.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.input_files import require_regular_file

Box = tuple[float, float, float, float]
MAX_BOX_FILE_BYTES = 64_000_000


def read_boxes(path: str | Path) -> dict[str, list[Box]]:
    """The boxes of a JSON or CSV box file, by the key that names each image."""
    path = Path(path)
    require_regular_file(path, "box file", "pass a JSON or CSV file of boxes (see `cnnexplorer faithfulness --help`)",
                         max_bytes=MAX_BOX_FILE_BYTES)
    text = path.read_text(encoding="utf-8", errors="replace")
    found: dict[str, list[Box]] = {}
    try:
        if path.suffix.lower() == ".json":
            for key, value in json.loads(text).items():
                items = value if value and isinstance(value[0], (list, tuple)) else [value]
                found[str(key)] = [_box(item) for item in items]
        else:
            for number, row in enumerate(csv.reader(io.StringIO(text))):
                if not row or (number == 0 and row[0].strip().lower() == "file"):
                    continue
                found.setdefault(row[0].strip(), []).append(_box(row[1:]))
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise UserError(f"{path} is not a box file ({exc}); give JSON {{\"file.jpg\": [x0, y0, x1, y1]}} or CSV "
                        "lines file,x0,y0,x1,y1") from None
    return found


def _box(values) -> Box:
    numbers = [float(v) for v in values]
    if len(numbers) != 4 or not all(np.isfinite(numbers)) or numbers[2] <= numbers[0] or numbers[3] <= numbers[1]:
        raise ValueError(f"{list(values)} is not a box x0,y0,x1,y1 with x1 > x0 and y1 > y0")
    return tuple(numbers)


def image_key(source: str, root: str | None, index: int) -> str:
    """How a box file names image ``index`` of a set: its path relative to ``root``, else its number."""
    if root is None:
        return str(index)
    try:
        return Path(source).relative_to(root).as_posix()
    except ValueError:
        return Path(source).as_posix()


def boxes_for(boxes: dict[str, list[Box]], key: str) -> list[Box] | None:
    """The boxes of ``key``, or of its bare file name when only one entry has it; None when none."""
    if key in boxes:
        return boxes[key]
    name = Path(key).name
    matches = [v for k, v in boxes.items() if Path(k).name == name]
    return matches[0] if len(matches) == 1 else None


def region(boxes: list[Box], size: tuple[int, int], crop: tuple[float, float, float, float],
           shape: tuple[int, int]) -> np.ndarray:
    """``[H,W]`` bool over the model's input: the pixels whose centres fall in any box.

    ``size``: the original's (width, height); ``crop``: the part of it the model saw (left, top,
    right, bottom); ``shape``: the model input's (H, W)."""
    height, width = shape
    left, top, right, bottom = crop
    xs = left + (np.arange(width) + 0.5) * (right - left) / width
    ys = top + (np.arange(height) + 0.5) * (bottom - top) / height
    inside = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        inside |= ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
    return inside
