"""Options that outlive the session: each view's controls come back as the user left them.

A widget opts in with ``remember(owner, "attr", ...)``, which names the control after its
owner's class and attribute (``HeatmapView.cmap``). The main window saves every such control in
``closeEvent`` and restores them at start-up, in the order they were marked (so a preset comes
back before the step count it would otherwise overwrite). A saved value the control can no
longer take (a colour map that was removed, a number out of range) is left at its default.
"""

from __future__ import annotations

import itertools

from PySide6.QtCore import QSettings
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
    try:
        if isinstance(widget, QComboBox):
            index = widget.findText(str(saved))
            if index >= 0:
                widget.setCurrentIndex(index)
        elif isinstance(widget, QCheckBox):
            widget.setChecked(str(saved).lower() == "true")
        elif isinstance(widget, QLineEdit):
            widget.setText(str(saved))
        elif isinstance(widget, QDoubleSpinBox):
            if widget.minimum() <= float(saved) <= widget.maximum():
                widget.setValue(float(saved))
        elif isinstance(widget, (QSpinBox, QAbstractSlider)):
            if widget.minimum() <= int(saved) <= widget.maximum():
                widget.setValue(int(saved))
    except ValueError:
        pass  # a hand-edited or foreign settings file: keep the default


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
            if settings.contains(widget.objectName()):
                _restore(widget, settings.value(widget.objectName()))
    finally:
        settings.endGroup()
