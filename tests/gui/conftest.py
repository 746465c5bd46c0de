"""GUI test set-up: offscreen Qt, one settings file per test, windows closed at teardown.

pytest-qt turns any exception that reaches the Qt event loop (a programming error in a slot,
or one re-raised from a worker by JobRunner) into a test failure, so no error escapes quietly.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from cnnexplorer.gui.app import configure_process


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)


class Confirm:
    """A scripted answer to the window's yes/no questions, recording what was asked."""

    def __init__(self, answer: bool = False):
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    def __call__(self, title: str, text: str) -> bool:
        self.asked.append((title, text))
        return self.answer


@pytest.fixture
def confirm():
    return Confirm(answer=False)


@pytest.fixture
def make_window(qtbot, settings, confirm):
    """``make_window(settings=…, confirm=…)`` → a shown MainWindow; jobs finished at teardown."""
    from cnnexplorer.gui.main_window import MainWindow

    configure_process()
    windows = []

    def make(settings=settings, confirm=confirm):
        window = MainWindow(settings, confirm=confirm)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.jobs.shutdown()


@pytest.fixture
def image_file(tmp_path):
    """A small RGB PNG with some structure."""
    rng = np.random.default_rng(0)
    path = tmp_path / "picture.png"
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(path)
    return path
