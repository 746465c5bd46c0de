"""Options that outlive the session: each view's controls come back as the user left them.

A widget opts in with ``remember(owner, "attr", ...)``, which names the control after its
owner's class and attribute (``HeatmapView.cmap``). The main window saves every such control in
``closeEvent`` and restores them at start-up, in the order they were marked (so a preset comes
back before the step count it would otherwise overwrite). A saved value the control can no
longer take (a colour map that was removed, a number out of range) is left at its default.

Every setting the app reads goes through ``setting``, which gives the default for a value of
the wrong kind, so a hand-edited or foreign settings file costs only its bad entries; bytes Qt
would crash on if changed (a window state) are saved with a digest and read with ``checked``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from typing import Any

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QAbstractSlider, QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

PROPERTY = "remember_order"
GROUP = "controls"
_order = itertools.count(1)


def remember(owner: QWidget, *attributes: str) -> None:
    """Mark ``owner.<attribute>`` controls to be saved and restored under ``Class.attribute``."""
    for attribute in attributes:
        widget = getattr(owner, attribute)
        widget.setObjectName(f"{type(owner).__name__}.{attribute}")
        widget.setProperty(PROPERTY, next(_order))


def _marked(root: QWidget) -> list[QWidget]:
    widgets = [w for w in root.findChildren(QWidget) if w.property(PROPERTY)]
    return sorted(widgets, key=lambda w: w.property(PROPERTY))


def setting(settings: QSettings, key: str, kind: type, default: Any) -> Any:
    """The value under ``key`` as a ``kind`` (str, bool, int, float, bytes or list of str).

    ``default`` when the key is missing or its value is not one (``@Invalid()``, a list where
    one value belongs, text that is no number, an infinite number, bytes where text belongs).
    INI files keep no types, so the text Qt writes for a bool or a number counts as one.
    """
    try:
        return _READERS[kind](settings.value(key))
    except (TypeError, ValueError, OverflowError):
        return default


def save_checked(settings: QSettings, key: str, data: bytes) -> None:
    """Save ``data`` under ``key`` and its SHA-256 under ``key-sha256``, for ``checked``."""
    settings.setValue(key, QByteArray(data))
    settings.setValue(f"{key}-sha256", hashlib.sha256(data).hexdigest())


def checked(settings: QSettings, key: str) -> bytes:
    """The bytes ``save_checked`` saved under ``key``; empty if they changed since, or have no digest.

    ``QMainWindow.restoreState`` crashes the process on some corrupt states (a dock area
    number out of range), so only bytes exactly as the app saved them are handed to it.
    """
    data = setting(settings, key, bytes, b"")
    digest = setting(settings, f"{key}-sha256", str, "")
    return data if hashlib.sha256(data).hexdigest() == digest else b""


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(value)


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(value)
    return int(value)


def _real(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _bytes(value: Any) -> bytes:
    if isinstance(value, QByteArray):
        return value.data()
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(value)
    return bytes(value)


def _texts(value: Any) -> list[str]:
    """A list of texts; Qt reads a one-item list back as its item."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list):
        raise TypeError(value)
    return [v for v in values if isinstance(v, str)]


_READERS = {str: _text, bool: _flag, int: _whole, float: _real, bytes: _bytes, list: _texts}
_KINDS = ((QComboBox, str), (QCheckBox, bool), (QLineEdit, str), (QDoubleSpinBox, float),
          ((QSpinBox, QAbstractSlider), int))


def _kind(widget: QWidget) -> type:
    for classes, kind in _KINDS:
        if isinstance(widget, classes):
            return kind
    raise TypeError(f"cannot remember a {type(widget).__name__}")


def _value(widget: QWidget):
    if isinstance(widget, QComboBox):
        return widget.currentText()
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QLineEdit):
        return widget.text()
    if isinstance(widget, (QSpinBox, QDoubleSpinBox, QAbstractSlider)):
        return widget.value()
    raise TypeError(f"cannot remember a {type(widget).__name__}")


def _restore(widget: QWidget, saved) -> None:
    if isinstance(widget, QComboBox):
        index = widget.findText(saved)
        if index >= 0:
            widget.setCurrentIndex(index)
    elif isinstance(widget, QCheckBox):
        widget.setChecked(saved)
    elif isinstance(widget, QLineEdit):
        widget.setText(saved)
    elif widget.minimum() <= saved <= widget.maximum():
        widget.setValue(saved)


def save_controls(settings: QSettings, root: QWidget) -> None:
    settings.beginGroup(GROUP)
    try:
        for widget in _marked(root):
            settings.setValue(widget.objectName(), _value(widget))
    finally:
        settings.endGroup()


def restore_controls(settings: QSettings, root: QWidget) -> None:
    settings.beginGroup(GROUP)
    try:
        for widget in _marked(root):
            saved = setting(settings, widget.objectName(), _kind(widget), None)
            if saved is not None:
                _restore(widget, saved)
    finally:
        settings.endGroup()
