"""Pictures of the layer table and the prediction bars, drawn with PIL in the shared picture style.

The GUI's export and ``cnnexplorer export`` both call these, so both write the same pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from cnnexplorer.core.architecture import LayerInfo, Summary
from cnnexplorer.core.layer_text import layer_text, split_text, totals_text
from cnnexplorer.core.picture_style import BODY, INK, MARGIN, MUTED, PAPER, RULE, TITLE, pil_font
from cnnexplorer.core.predict import ClassScore

SHADE = (242, 244, 247)
HEADER = (222, 228, 237)
BAR = (46, 104, 176)
TRACK = (226, 230, 236)

FONT_SIZE = BODY
TITLE_SIZE = TITLE
CELL_PAD = 8
INDENT = 12
ROW_HEIGHT = FONT_SIZE + 8
BAR_LENGTH = 320
BAR_HEIGHT = 14
LABEL_MAX = 40

_COLUMNS = ("Layer", "Type", "Output", "Params", "MACs", "Kernel / stride / pad", "RF / jump")
_RIGHT_ALIGNED = {"Params", "MACs", "RF / jump"}


def _row(layer: LayerInfo) -> tuple[str, ...]:
    text = layer_text(layer, times="x")
    name = layer.name + (f"  ({layer.calls} calls)" if layer.calls > 1 else "")
    return (name, text.type, text.shape or "-", text.params, text.macs or "0", text.geometry, text.rf)


TABLE_TOP = MARGIN + TITLE_SIZE + 12
"""The summary table's header row starts here; layer row ``k`` at ``TABLE_TOP + ROW_HEIGHT·(k+1)``."""


def _table_layers(summary: Summary, max_depth: int | None) -> list[LayerInfo]:
    return [l for l in summary.layers if l.name and (max_depth is None or l.depth <= max_depth)]


def summary_rows(summary: Summary, max_depth: int | None = None) -> dict[str, int]:
    """Each layer's row in ``render_summary_table``'s picture: name → top pixel (rows are ROW_HEIGHT tall)."""
    return {l.name: TABLE_TOP + ROW_HEIGHT * (k + 1) for k, l in enumerate(_table_layers(summary, max_depth))}


def render_summary_table(summary: Summary, max_depth: int | None = None) -> np.ndarray:
    """The architecture table as an ``H×W×3`` uint8 image; ``max_depth`` hides deeper modules."""
    font, title_font = pil_font(FONT_SIZE), pil_font(TITLE_SIZE)
    layers = _table_layers(summary, max_depth)
    rows = [_row(l) for l in layers]
    indents = [INDENT * (l.depth - 1) for l in layers]
    cell_widths = [[font.getlength(r[0]) + indent, *map(font.getlength, r[1:])] for r, indent in zip(rows, indents)]
    widths = [max(column) + 2 * CELL_PAD for column in zip(map(font.getlength, _COLUMNS), *cell_widths)]
    title = f"{summary.model or 'model'}  ·  input {'x'.join(map(str, summary.input_size))}"
    frozen = summary.total_params - summary.trainable_params
    footer = [f"Total: {totals_text(summary.trainable_params, frozen, summary.macs, summary.input_size, 'x')} per image"]
    if summary.conv_params and summary.fc_params:  # the course's split, for a model with both kinds of layer
        footer.append(f"Of which {split_text(summary)}")
    table_width = int(np.ceil(sum(widths)))
    text_width = max(title_font.getlength(title), *map(font.getlength, footer))
    width = 2 * MARGIN + max(table_width, int(np.ceil(text_width)))
    height = MARGIN + TABLE_TOP + ROW_HEIGHT * (len(rows) + 1) + ROW_HEIGHT * len(footer) + 6

    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), title, font=title_font, fill=INK)
    top = TABLE_TOP
    draw.rectangle([MARGIN, top, MARGIN + table_width - 1, top + ROW_HEIGHT - 1], fill=HEADER)
    _draw_cells(draw, font, _COLUMNS, widths, top)
    draw.line([MARGIN, top + ROW_HEIGHT - 1, MARGIN + table_width - 1, top + ROW_HEIGHT - 1], fill=RULE)
    for k, row in enumerate(rows):
        y = top + ROW_HEIGHT * (k + 1)
        if k % 2:
            draw.rectangle([MARGIN, y, MARGIN + table_width - 1, y + ROW_HEIGHT - 1], fill=SHADE)
        _draw_cells(draw, font, row, widths, y, indents[k])
    bottom = top + ROW_HEIGHT * (len(rows) + 1)
    draw.line([MARGIN, bottom, MARGIN + table_width - 1, bottom], fill=RULE)
    for k, line in enumerate(footer):
        draw.text((MARGIN, bottom + 6 + ROW_HEIGHT * k), line, font=font, fill=MUTED)
    return np.asarray(image, dtype=np.uint8).copy()


def _draw_cells(draw: ImageDraw.ImageDraw, font, cells, widths, y: int, indent: int = 0) -> None:
    """One table row; ``indent`` shifts the first (layer name) cell."""
    x = MARGIN
    for column, (header, text, width) in enumerate(zip(_COLUMNS, cells, widths)):
        if header in _RIGHT_ALIGNED:
            draw.text((x + width - CELL_PAD - font.getlength(text), y + 4), text, font=font, fill=INK)
        else:
            draw.text((x + CELL_PAD + (indent if column == 0 else 0), y + 4), text, font=font, fill=INK)
        x += width


def _short(label: str) -> str:
    return label if len(label) <= LABEL_MAX else label[: LABEL_MAX - 1] + "…"


def render_predictions_chart(scores: list[ClassScore], title: str = "") -> np.ndarray:
    """Top-k classes as horizontal bars (length ∝ probability), an ``H×W×3`` uint8 image."""
    font = pil_font(FONT_SIZE)
    labels = [_short(s.label) for s in scores]
    label_width = int(np.ceil(max((font.getlength(t) for t in labels), default=0)))
    percent_width = int(np.ceil(font.getlength("100.0 %")))
    bar_x = MARGIN + label_width + CELL_PAD
    width = max(bar_x + BAR_LENGTH + CELL_PAD + percent_width + MARGIN,
                2 * MARGIN + int(np.ceil(font.getlength(title))))
    title_height = ROW_HEIGHT + 4 if title else 0
    height = 2 * MARGIN + title_height + ROW_HEIGHT * max(len(scores), 1)

    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((MARGIN, MARGIN), title, font=font, fill=INK)
    if not scores:
        draw.text((MARGIN, MARGIN + title_height + 4), "no predictions", font=font, fill=MUTED)
    for k, (score, label) in enumerate(zip(scores, labels)):
        y = MARGIN + title_height + ROW_HEIGHT * k
        bar_top = y + (ROW_HEIGHT - BAR_HEIGHT) // 2
        draw.text((bar_x - CELL_PAD - font.getlength(label), y + 4), label, font=font, fill=INK)
        draw.rectangle([bar_x, bar_top, bar_x + BAR_LENGTH - 1, bar_top + BAR_HEIGHT - 1], fill=TRACK)
        length = round(min(max(score.prob, 0.0), 1.0) * BAR_LENGTH)
        if length:
            draw.rectangle([bar_x, bar_top, bar_x + length - 1, bar_top + BAR_HEIGHT - 1], fill=BAR)
        draw.text((bar_x + BAR_LENGTH + CELL_PAD, y + 4), f"{100 * score.prob:.1f} %", font=font, fill=INK)
    return np.asarray(image, dtype=np.uint8).copy()
