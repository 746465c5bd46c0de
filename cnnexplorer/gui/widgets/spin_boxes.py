"""Spin boxes that say when they change what was typed.

Qt's spin boxes drop the keys that would leave their range (typing 99999 in a box that goes to
1024 leaves 999) without a word. These accept the number, bring it to the nearest bound when the
edit ends, and say so in a tooltip at the box (``notice`` keeps the sentence).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox, QToolTip


class _SaysWhenClamped:
    clamped = Signal(str)

    def _typed_number(self, text: str) -> float | None:
        text = text.removeprefix(self.prefix()).removesuffix(self.suffix()).strip()
        try:
            return float(text)
        except ValueError:
            return None

    def validate(self, text: str, pos: int):
        state, fixed, at = super().validate(text, pos)
        if state == QValidator.State.Invalid and self._typed_number(text) is not None:
            return QValidator.State.Intermediate, text, pos
        return state, fixed, at

    def fixup(self, text: str) -> str:
        number = self._typed_number(text)
        if number is None or self.minimum() <= number <= self.maximum():
            return super().fixup(text)
        bound = self.maximum() if number > self.maximum() else self.minimum()
        typed = text.removeprefix(self.prefix()).strip()
        side = "above the largest" if number > self.maximum() else "below the smallest"
        self.notice = f"{typed} is {side} value the box takes; using {self.textFromValue(bound)}{self.suffix()}"
        QToolTip.showText(self.mapToGlobal(self.rect().bottomLeft()), self.notice, self)
        self.clamped.emit(self.notice)
        return self.prefix() + self.textFromValue(bound) + self.suffix()


class SpinBox(_SaysWhenClamped, QSpinBox):
    """A ``QSpinBox`` that says when a typed value was out of range (see the module notes)."""

    notice = ""


class DoubleSpinBox(_SaysWhenClamped, QDoubleSpinBox):
    """A ``QDoubleSpinBox`` that says when a typed value was out of range (see the module notes)."""

    notice = ""
