"""The metric history of a run: smoothing, CSV export and a PNG of the curves.

One ``History`` holds per-batch rows (step, epoch, wall time, loss, accuracy, learning rate,
throughput) and per-epoch validation rows. It round-trips through a checkpoint as tensors, so
a resumed run continues its curves. Smoothing is TensorBoard's: a debiased exponential moving
average (weight 0.6 by default), which does not drag the start of the curve towards zero.
``CurvesOptions`` are how the curves are drawn: the Training tab shows and exports them, and
``curves_picture`` gives the settings its exported picture records.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from cnnexplorer.core.checks import check_number
from cnnexplorer.core.outputs import atomic_write_bytes
from cnnexplorer.core.picture_style import INK, RULE, SMALL, pil_font
from cnnexplorer.core.render import png_bytes

DEFAULT_SMOOTHING = 0.6
CURVE_PANELS = (("loss", "val_loss", "loss"), ("acc", "val_acc", "accuracy"), ("lr", None, "learning rate"))


@dataclass(frozen=True)
class CurvesOptions:
    """How a run's curves are drawn: the smoothing weight of the batch curves, in [0, 1)."""

    smoothing: float = DEFAULT_SMOOTHING

    def __post_init__(self):
        check_number("the smoothing (--smoothing)", self.smoothing, 0, 1, open_high=True)


class Smoother:
    """TensorBoard's debiased EMA, fed in pieces: ``extend`` returns the smoothed new values.

    Vectorised in blocks (a 256×256 decay matrix), so 100,000 points take milliseconds and a
    live curve only smooths what is new. ``weight`` is in [0, 1).
    """

    def __init__(self, weight: float = DEFAULT_SMOOTHING, block: int = 256):
        self.weight = min(max(weight, 0.0), 0.999)
        lag = np.subtract.outer(np.arange(block), np.arange(block))
        self._kernel = np.where(lag >= 0, self.weight ** np.maximum(lag, 0), 0.0) * (1 - self.weight)
        self._decay = self.weight ** np.arange(1, block + 1)
        self._block = block
        self._ema = 0.0
        self.count = 0

    def extend(self, values: np.ndarray | list[float]) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if self.weight == 0:
            self.count += len(values)
            return values.copy()
        out = np.empty_like(values)
        for start in range(0, len(values), self._block):
            chunk = values[start : start + self._block]
            n = len(chunk)
            out[start : start + n] = self._kernel[:n, :n] @ chunk + self._decay[:n] * self._ema
            self._ema = out[start + n - 1]
        debias = 1 - self.weight ** np.arange(self.count + 1, self.count + len(values) + 1)
        self.count += len(values)
        return out / debias


def smooth(values: np.ndarray | list[float], weight: float = DEFAULT_SMOOTHING) -> np.ndarray:
    """TensorBoard's debiased exponential moving average of a whole series."""
    return Smoother(weight).extend(values)


@dataclass
class History:
    """Columns of floats; batch columns share one length, epoch columns another."""

    step: list[float] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    val_step: list[float] = field(default_factory=list)
    val_epoch: list[float] = field(default_factory=list)
    val_time: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)

    def add_batch(self, m) -> None:
        """Append a ``BatchMetrics``."""
        for name, value in (("step", m.step), ("epoch", m.epoch), ("time", m.elapsed_s), ("loss", m.loss),
                            ("acc", m.acc), ("lr", m.lr), ("images_per_s", m.images_per_s)):
            getattr(self, name).append(float(value))

    def add_epoch(self, m) -> None:
        """Append an ``EpochMetrics``."""
        for name, value in (("val_step", m.step), ("val_epoch", m.epoch), ("val_time", m.elapsed_s),
                            ("val_loss", m.val_loss), ("val_acc", m.val_acc)):
            getattr(self, name).append(float(value))

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: torch.tensor(getattr(self, f.name), dtype=torch.float64) for f in fields(self)}

    @classmethod
    def from_tensors(cls, columns: dict) -> "History":
        return cls(**{f.name: [float(v) for v in columns.get(f.name, [])] for f in fields(cls)})

    def write_csv(self, path: str | Path) -> Path:
        """One row per batch; the validation columns are filled on the last batch of each epoch."""
        path = Path(path)
        val = {int(s): (e, l, a) for s, e, l, a in zip(self.val_step, self.val_epoch, self.val_loss, self.val_acc)}
        lines = [["step", "epoch", "time_s", "train_loss", "train_acc", "lr", "images_per_s", "val_loss", "val_acc"]]
        for row in zip(self.step, self.epoch, self.time, self.loss, self.acc, self.lr, self.images_per_s):
            step = int(row[0])
            extra = [f"{val[step][1]:.6g}", f"{val[step][2]:.6g}"] if step in val else ["", ""]
            lines.append([str(step), f"{row[1]:.4f}", f"{row[2]:.3f}", *(f"{v:.6g}" for v in row[3:]), *extra])
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(lines)
        atomic_write_bytes(path, buffer.getvalue().encode())
        return path


_TRAIN, _RAW, _VAL = (46, 104, 176), (186, 204, 228), (214, 96, 40)


def render_curves(history: History, options: CurvesOptions = CurvesOptions(),
                  size: tuple[int, int] = (420, 300)) -> np.ndarray:
    """Loss, accuracy and learning rate against the step, side by side, above a legend (H×W×3 uint8)."""
    width, height = size
    canvas = Image.new("RGB", (width * len(CURVE_PANELS), height + LEGEND_BAND), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = pil_font(SMALL)
    for k, (train_key, val_key, title) in enumerate(CURVE_PANELS):
        series = [(history.step, getattr(history, train_key), _TRAIN if train_key == "lr" else _RAW, 1)]
        if train_key != "lr":
            series.append((history.step, list(smooth(getattr(history, train_key), options.smoothing)), _TRAIN, 2))
        if val_key:
            series.append((history.val_step, getattr(history, val_key), _VAL, 2))
        _panel(draw, font, (k * width, 0, width, height), title, series)
    _legend(draw, font, height)
    return np.asarray(canvas)


LEGEND_BAND = SMALL + 16


def _legend(draw, font, y: int) -> None:
    """Which line is which, in a band under the panels."""
    middle, x = y + LEGEND_BAND // 2, 64
    for label, colour, line_width in (("train, per batch", _RAW, 1), ("train, smoothed", _TRAIN, 2),
                                      ("validation, per epoch", _VAL, 2)):
        draw.line((x, middle, x + 24, middle), fill=colour, width=line_width)
        draw.text((x + 30, middle), label, fill=INK, font=font, anchor="lm")
        x += 30 + round(draw.textlength(label, font=font)) + 28


def _panel(draw, font, box, title, series) -> None:
    x0, y0, w, h = box
    left, right, top, bottom = x0 + 64, x0 + w - 14, y0 + SMALL + 14, y0 + h - SMALL - 18
    draw.text((x0 + w // 2, y0 + 6), title, fill=INK, font=font, anchor="mt")
    xs = [x for sx, _, _, _ in series for x in sx]
    ys = [y for _, sy, _, _ in series for y in sy if math.isfinite(y)]
    draw.rectangle((left, top, right, bottom), outline=RULE)
    if not xs or not ys:
        return
    xmin, xmax = min(xs), max(max(xs), min(xs) + 1)
    ymin, ymax = min(ys), max(ys)
    if ymax - ymin < 1e-12:
        ymin, ymax = ymin - 0.5, ymax + 0.5
    for value, anchor_y in ((ymax, top), (ymin, bottom)):
        draw.text((left - 4, anchor_y), f"{value:.3g}", fill=INK, font=font, anchor="rm")
    draw.text((left, bottom + 4), f"{xmin:.0f}", fill=INK, font=font, anchor="lt")
    draw.text((right, bottom + 4), f"{xmax:.0f} steps", fill=INK, font=font, anchor="rt")
    for sx, sy, colour, line_width in series:
        points = [(left + (x - xmin) / (xmax - xmin) * (right - left), bottom - (y - ymin) / (ymax - ymin) * (bottom - top))
                  for x, y in zip(sx, sy) if math.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=line_width)
        elif points:
            px, py = points[0]
            draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=colour)


def curves_picture(history: History, run: str,
                   options: CurvesOptions = CurvesOptions()) -> tuple[np.ndarray, dict]:
    """A run's curves and the settings an exported picture of them records: the run's name and the options."""
    return render_curves(history, options), {"run": run, **asdict(options)}


def write_curves_png(path: str | Path, history: History, options: CurvesOptions = CurvesOptions()) -> Path:
    path = Path(path)
    atomic_write_bytes(path, png_bytes(render_curves(history, options)))
    return path
