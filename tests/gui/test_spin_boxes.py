"""A value typed out of range is brought to the nearest bound and said, never silently cut."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from cnnexplorer.gui.widgets.adversarial_controls import AttackControls
from cnnexplorer.gui.widgets.featurevis_controls import FeatureVisControls


def type_into(qtbot, box, text: str) -> None:
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)


@pytest.fixture
def featurevis(qtbot):
    controls = FeatureVisControls()
    qtbot.addWidget(controls)
    controls.show()
    return controls


def test_a_size_typed_above_the_largest_becomes_the_largest_and_is_said(qtbot, featurevis):
    box = featurevis.size
    said = []
    box.clamped.connect(said.append)
    type_into(qtbot, box, "99999")
    assert box.value() == box.maximum() == 1024, "not 999: the typed number is not cut short"
    assert said == [box.notice] and "99999" in box.notice and "largest" in box.notice and "1024" in box.notice
    type_into(qtbot, box, "3")
    assert box.value() == box.minimum() and "smallest" in box.notice


def test_a_budget_typed_beyond_its_range_is_said_too(qtbot):
    controls = AttackControls()
    qtbot.addWidget(controls)
    controls.show()
    box = controls.eps
    type_into(qtbot, box, "999")
    assert box.value() == box.maximum() and "999" in box.notice and "largest" in box.notice


def test_values_in_range_are_taken_as_typed_and_say_nothing(qtbot, featurevis):
    box = featurevis.size
    type_into(qtbot, box, "200")
    assert box.value() == 200 and box.notice == ""


def test_the_training_form_says_so_too(qtbot):
    from cnnexplorer.gui.widgets.training_settings import TrainingSettings

    form = TrainingSettings()
    qtbot.addWidget(form)
    form.show()
    type_into(qtbot, form.epochs, "99999999")
    assert form.epochs.value() == form.epochs.maximum() and "largest" in form.epochs.notice
