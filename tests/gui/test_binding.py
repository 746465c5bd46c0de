"""The Qt binding keeps Python's reference counts intact.

PySide6 6.12.0 under Python 3.11 returned ``None`` from void methods without a new reference:
every ``widget.setEnabled(...)`` dropped one reference to ``None``, and a long session (or the
test suite) ended in "Fatal Python error: none_dealloc". pyproject.toml excludes that release.
"""

from __future__ import annotations

import sys

from PySide6.QtGui import QStandardItem
from PySide6.QtWidgets import QWidget


def test_void_methods_do_not_drop_references_to_none(qtbot):
    widget, item = QWidget(), QStandardItem("row")
    qtbot.addWidget(widget)
    before = sys.getrefcount(None)
    for _ in range(1000):
        widget.setEnabled(True)
        item.setData(True, 300)
    assert sys.getrefcount(None) - before > -100
