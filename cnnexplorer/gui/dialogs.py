"""The app's questions and its save-as: none of them blocks a run without a screen.

Under the offscreen or minimal platforms (tests, benchmarks, CI) nobody can answer a modal
dialog, so a question is answered "no" and a save dialog "cancel", each said on stderr.
``save_as`` keeps what it saves in memory (the caller's ``write`` holds it): when the write fails
(a full disk, a read-only folder) it says why and asks for another place.
"""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from cnnexplorer.core.errors import UserError

NON_NATIVE = QFileDialog.Option.DontUseNativeDialog  # the same dialogs on every platform
HEADLESS_PLATFORMS = ("offscreen", "minimal")
T = TypeVar("T")


def headless() -> bool:
    return QGuiApplication.platformName() in HEADLESS_PLATFORMS


def ask_yes_no(parent: QWidget | None, title: str, text: str) -> bool:
    """A yes/no question; "no" without asking when there is no screen."""
    if headless():
        print(f"cnnexplorer: {title} {text} — answered no (no screen to ask on)", file=sys.stderr)
        return False
    return QMessageBox.question(parent, title, text) == QMessageBox.StandardButton.Yes


def warn(parent: QWidget | None, text: str) -> None:
    """A warning the user must acknowledge; on stderr when there is no screen."""
    if headless():
        print(f"cnnexplorer: {text}", file=sys.stderr)
        return
    QMessageBox.warning(parent, "cnnexplorer", text)


def ask_save_path(parent: QWidget | None, title: str, start: str, file_filter: str) -> str:
    """The path the user picks to save to, or "" (cancelled, or no screen)."""
    if headless():
        return ""
    path, _ = QFileDialog.getSaveFileName(parent, title, start, file_filter, options=NON_NATIVE)
    return path


def save_as(parent: QWidget | None, title: str, start: str, file_filter: str, write: Callable[[str], T],
            ask: Callable[[QWidget | None, str, str, str], str] = ask_save_path,
            say: Callable[[QWidget | None, str], None] = warn) -> T | None:
    """Ask where, ``write(path)``; on a ``UserError`` say it and ask again. None when cancelled."""
    while path := ask(parent, title, start, file_filter):
        try:
            return write(path)
        except UserError as exc:
            say(parent, f"{exc}\n\nNothing is lost: choose another place to save it.")
            start = path
    return None
