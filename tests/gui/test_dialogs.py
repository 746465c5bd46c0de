"""No dialog blocks a run without a screen, and a failed save keeps the picture and asks again."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from cnnexplorer.core.images import load_image
from cnnexplorer.core.models import load_model
from cnnexplorer.core.predict import ClassScore
from cnnexplorer.gui.dialogs import ask_save_path, ask_yes_no, headless, save_as, warn
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views.training_view import TrainingView
from cnnexplorer.gui.widgets.predictions_panel import PredictionsPanel
from cnnexplorer.gui.workers import JobRunner


@pytest.fixture
def unblock(qtbot):
    """Closes any modal dialog left open after 3 s and records that one was: a blocked test fails, not hangs."""
    blocked = []

    def close_modal():
        modal = QApplication.activeModalWidget()
        if modal is not None:
            blocked.append(modal.windowTitle())
            modal.close()

    timer = QTimer()
    timer.setInterval(3000)
    timer.timeout.connect(close_modal)
    timer.start()
    yield blocked
    timer.stop()


def test_questions_warnings_and_save_dialogs_never_block_without_a_screen(unblock, capsys):
    assert headless()
    assert ask_yes_no(None, "Overwrite?", "x.pt exists.") is False
    warn(None, "the disk is full")
    assert ask_save_path(None, "Export", "x.png", "PNG (*.png)") == ""
    assert unblock == []
    err = capsys.readouterr().err
    assert "Overwrite? x.pt exists. — answered no" in err and "the disk is full" in err


def test_a_view_alone_asks_no_modal_question(qtbot, tmp_path, unblock):
    """The training benchmark's set-up: a Training tab outside the window, its checkpoint already there."""
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    session.set_model(load_model("builtin:lenet5", "cpu"))
    existing = tmp_path / "run.pt"
    existing.write_bytes(b"last week's run")
    view.settings.out.setText(str(existing))
    view.start()
    assert unblock == [] and not jobs.active, "the run must not start over the file unasked"
    jobs.shutdown()
    assert existing.read_bytes() == b"last week's run"


@pytest.fixture
def panel(qtbot, tmp_path):
    Image.new("RGB", (40, 30), (200, 120, 40)).save(tmp_path / "cat.png")
    session = Session()
    session.add_images([load_image(tmp_path / "cat.png")])
    session.set_predictions([ClassScore(1, "tabby", 0.7), ClassScore(2, "lynx", 0.2)])
    widget = PredictionsPanel(session)
    qtbot.addWidget(widget)
    return widget


def test_a_failed_save_says_why_and_asks_again_with_the_picture_kept(panel, tmp_path):
    (tmp_path / "a file").write_text("not a folder")
    answers = [str(tmp_path / "a file" / "chart.png"), str(tmp_path / ("x" * 300 + ".png")),
               str(tmp_path / "saved" / "chart.png")]
    asked, said = [], []

    def ask(parent, title, start, file_filter):
        asked.append(start)
        return answers.pop(0)

    written = save_as(panel, "Export chart as PNG", "chart.png", "PNG (*.png)", panel.export_png, ask=ask,
                      say=lambda parent, text: said.append(text))
    png, sidecar = written
    assert png == tmp_path / "saved" / "chart.png"
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), panel.picture()[0])
    assert json.loads(sidecar.read_text())["view"] == "predictions"
    assert len(said) == 2 and "a file" in said[0] and "too long" in said[1]
    assert all("choose another place" in text for text in said)
    assert asked[1] == str(tmp_path / "a file" / "chart.png"), "the next question starts where the last failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file", "cat.png", "saved"]


def test_cancelling_after_a_failure_writes_nothing(panel, tmp_path):
    answers = [str(tmp_path / "cat.png" / "x.png"), ""]
    said = []
    result = save_as(panel, "Export", "x.png", "PNG (*.png)", panel.export_png,
                     ask=lambda *_: answers.pop(0), say=lambda parent, text: said.append(text))
    assert result is None and len(said) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png"]
