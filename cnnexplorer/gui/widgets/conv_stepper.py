"""An animated convolution: a kernel slides over a small input grid, one output cell per step, and
the dot product that made the cell is written out, as the course draws it (a 2×2 filter over a 3×4
input gives 2×3).

The widget paints the grids itself: they are a handful of numbered cells, and a picture of them
would blur the digits. Play steps on a timer, Step moves one cell, Reset goes back to the start.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from cnnexplorer.core.lab.arithmetic import kernel_steps, step_output

WINDOW = QColor(255, 200, 0, 110)
DONE = QColor(70, 120, 180, 60)
CURRENT = QColor(70, 120, 180, 150)
PADDING = QColor(235, 235, 235)
STEP_MS = 700
MAX_CELL = 44.0
"""The largest cell side in pixels."""
COURSE_INPUT = np.arange(1, 13, dtype=float).reshape(3, 4)
COURSE_KERNEL = np.array([[1.0, 0.0], [0.0, -1.0]])


def _number(value: float) -> str:
    return f"{value:g}"


class ConvGrids(QWidget):
    """Paints the (padded) input with the kernel's window, the kernel, and the output so far."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.padded = np.zeros((1, 1))
        self.kernel = np.zeros((1, 1))
        self.output = np.zeros((1, 1))
        self.padding = 0
        self.stride = 1
        self.step = -1
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_state(self, padded: np.ndarray, kernel: np.ndarray, output: np.ndarray, padding: int, stride: int,
                  step: int) -> None:
        self.padded, self.kernel, self.output = padded, kernel, output
        self.padding, self.stride, self.step = padding, stride, step
        rows = max(padded.shape[0], output.shape[0]) + 1
        self.setMaximumHeight(int(rows * MAX_CELL + MAX_CELL))  # the formula stays right under the grids
        self.update()

    def _cell(self) -> float:
        """The side of a cell that fits the three grids and two gaps side by side."""
        columns = self.padded.shape[1] + self.kernel.shape[1] + self.output.shape[1] + 3
        rows = max(self.padded.shape[0], self.output.shape[0]) + 1
        return max(12.0, min(MAX_CELL, self.width() / columns, self.height() / rows))

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        cell = self._cell()
        font = QFont(self.font())
        font.setPixelSize(max(8, int(cell * 0.36)))
        painter.setFont(font)
        top = cell * 0.8
        left = 0.0
        out_w = self.output.shape[1]
        row, col = divmod(self.step, out_w) if self.step >= 0 else (-1, -1)
        left = self._grid(painter, self.padded, left, top, cell, "input" + (f" (padding {self.padding})"
                                                                           if self.padding else ""),
                          lambda r, c: self._input_fill(r, c, row, col))
        left = self._grid(painter, self.kernel, left + cell, top, cell, "kernel", lambda r, c: WINDOW)
        self._grid(painter, self.output, left + cell, top, cell, "output",
                   lambda r, c: CURRENT if r * out_w + c == self.step else DONE if r * out_w + c < self.step else None,
                   shown=lambda r, c: r * out_w + c <= self.step)
        painter.end()

    def _input_fill(self, r: int, c: int, row: int, col: int) -> QColor | None:
        kh, kw = self.kernel.shape
        top, left = row * self.stride, col * self.stride
        if row >= 0 and top <= r < top + kh and left <= c < left + kw:
            return WINDOW
        p, (h, w) = self.padding, self.padded.shape
        return PADDING if r < p or c < p or r >= h - p or c >= w - p else None

    def _grid(self, painter: QPainter, values: np.ndarray, left: float, top: float, cell: float, title: str,
              fill, shown=lambda r, c: True) -> float:
        painter.setPen(QPen(self.palette().text().color()))
        painter.drawText(QRectF(left, 0, cell * max(values.shape[1], 4), top), Qt.AlignmentFlag.AlignLeft
                         | Qt.AlignmentFlag.AlignVCenter, title)
        for r in range(values.shape[0]):
            for c in range(values.shape[1]):
                rect = QRectF(left + c * cell, top + r * cell, cell, cell)
                colour = fill(r, c)
                painter.fillRect(rect, colour if colour is not None else QColor(255, 255, 255))
                painter.setPen(QPen(QColor(120, 120, 120)))
                painter.drawRect(rect)
                if shown(r, c):
                    painter.setPen(QPen(QColor(20, 20, 20)))
                    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, _number(values[r, c]))
        return left + values.shape[1] * cell


class ConvStepper(QWidget):
    """A kernel sliding over an input, one output cell per step, with the dot product written out."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.grids = ConvGrids()
        self.formula = QLabel(" ")
        self.formula.setWordWrap(True)
        self.formula.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.step_button = QPushButton("Step")
        self.reset_button = QPushButton("Reset")
        self.play_button.setToolTip("Slide the kernel one cell every 0.7 s")
        self.step_button.setToolTip("Compute the next output cell")
        self.reset_button.setToolTip("Back to the start: no output cell computed")
        self.timer = QTimer(self)
        self.timer.setInterval(STEP_MS)
        self.timer.timeout.connect(self._tick)
        self.play_button.toggled.connect(self._play)
        self.step_button.clicked.connect(self.advance)
        self.reset_button.clicked.connect(self.reset)
        buttons = QHBoxLayout()
        for button in (self.play_button, self.step_button, self.reset_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.grids, 1)
        layout.addWidget(self.formula)
        layout.addStretch(0)
        self.step = -1
        self.set_problem(COURSE_INPUT, COURSE_KERNEL)

    def set_problem(self, values: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0) -> None:
        """Start over on ``values`` (H×W) with ``kernel``; the output is floored as PyTorch does."""
        self.kernel = np.asarray(kernel, float)
        self.padded = np.pad(np.asarray(values, float), padding)
        self.stride, self.padding = stride, padding
        self.steps = list(kernel_steps(values, kernel, stride, padding))
        self.output = step_output(self.steps)
        self.reset()

    def reset(self) -> None:
        self.play_button.setChecked(False)
        self.step = -1
        self._show()

    def advance(self) -> None:
        """One output cell further; past the last, nothing changes."""
        if self.step + 1 < len(self.steps):
            self.step += 1
            self._show()
        if self.step + 1 >= len(self.steps):
            self.play_button.setChecked(False)

    def _play(self, on: bool) -> None:
        if on and self.step + 1 >= len(self.steps):
            self.step = -1
        self.timer.start() if on else self.timer.stop()
        self.play_button.setText("Pause" if on else "Play")

    def _tick(self) -> None:
        self.advance()

    def formula_text(self) -> str:
        """The current cell's dot product, e.g. ``1·1 + 2·0 + 5·0 + 6·(−1) = −5``."""
        if self.step < 0:
            rows, cols = self.output.shape
            return f"{len(self.steps)} output cells ({rows}×{cols}): press Play or Step to slide the kernel"
        step = self.steps[self.step]
        terms = " + ".join(f"{_number(a)}·{_number(b) if b >= 0 else f'({_number(b)})'}"
                           for a, b in zip(step.patch.ravel(), self.kernel.ravel()))
        return f"output[{step.row}, {step.col}] = {terms} = {_number(step.value)}"

    def _show(self) -> None:
        self.grids.set_state(self.padded, self.kernel, self.output, self.padding, self.stride, self.step)
        self.formula.setText(self.formula_text())
        self.step_button.setEnabled(self.step + 1 < len(self.steps))
