"""The target picker: any of a model's classes by typing part of its name, kept in step with the session."""

from __future__ import annotations

from PySide6.QtCore import Qt

from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.models import load_model
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.widgets.target_picker import NO_TARGET, TargetPicker


def type_and_enter(qtbot, picker: TargetPicker, text: str) -> None:
    edit = picker.box.lineEdit()
    edit.clear()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key.Key_Return)


def test_any_class_can_be_typed_and_the_box_follows_the_session(qtbot):
    session = Session()
    picker = TargetPicker(session)
    qtbot.addWidget(picker)
    handle = load_model("torchvision:resnet18:none", "cpu")
    session.set_model(handle, summarize_handle(handle))
    assert picker.box.count() == 1 + 1000 and picker.box.currentText() == NO_TARGET

    type_and_enter(qtbot, picker, "tiger cat")  # class 282, far from any top-5 of a random model
    assert session.target == 282 and picker.box.currentText() == "282: tiger cat"
    type_and_enter(qtbot, picker, "cat")  # many classes: nothing changes
    assert session.target == 282 and picker.box.currentText() == "282: tiger cat"

    session.set_target(5)  # a click in the predictions panel
    assert picker.box.currentText() == f"5: {handle.label(5)}"
    session.set_target(None)
    assert picker.box.currentText() == NO_TARGET
    type_and_enter(qtbot, picker, NO_TARGET)
    assert session.target is None


def test_typed_text_finds_a_class_as_the_cli_does(qtbot):
    session = Session()
    picker = TargetPicker(session)
    qtbot.addWidget(picker)
    handle = load_model("builtin:shapes", "cpu")  # circle, square, triangle, star, cross, ring
    session.set_model(handle, summarize_handle(handle))
    for text, index in (("2", 2), ("STAR", 3), ("rin", 5), ("0: circle", 0)):
        type_and_enter(qtbot, picker, text)
        assert session.target == index and picker.box.currentText() == f"{index}: {handle.label(index)}"
    type_and_enter(qtbot, picker, "ri")  # triangle and ring: nothing changes
    assert session.target == 0
