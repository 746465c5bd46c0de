"""The convolution stepper: the course's 2×2 filter over a 3×4 input gives 2×3, one dot product per step."""

from __future__ import annotations

import numpy as np
import pytest

from cnnexplorer.gui.widgets.conv_stepper import COURSE_INPUT, COURSE_KERNEL, ConvStepper


@pytest.fixture
def stepper(qtbot):
    widget = ConvStepper()
    qtbot.addWidget(widget)
    widget.resize(500, 300)
    widget.show()
    return widget


def test_steps_through_the_courses_example_and_writes_each_dot_product(stepper):
    assert stepper.output.shape == (2, 3) and len(stepper.steps) == 6
    assert "6 output cells (2×3)" in stepper.formula.text()
    stepper.advance()
    # input 1..12 in rows of 4, kernel [[1, 0], [0, -1]]: 1·1 + 2·0 + 5·0 + 6·(−1) = −5
    assert stepper.formula.text() == "output[0, 0] = 1·1 + 2·0 + 5·0 + 6·(-1) = -5"
    for _ in range(10):  # past the last step nothing changes
        stepper.advance()
    assert stepper.step == 5 and not stepper.step_button.isEnabled()
    assert stepper.formula.text().startswith("output[1, 2] = 7·1 + 8·0 + 11·0 + 12·(-1)")
    expected = np.array([[COURSE_INPUT[r:r + 2, c:c + 2].ravel() @ COURSE_KERNEL.ravel() for c in range(3)]
                         for r in range(2)])
    np.testing.assert_allclose(stepper.output, expected, atol=1e-12)
    stepper.grab()  # paints every grid without error
    stepper.reset_button.click()
    assert stepper.step == -1 and stepper.step_button.isEnabled()


def test_play_slides_on_a_timer_and_stops_at_the_end(stepper, qtbot):
    stepper.set_problem(np.arange(9.0).reshape(3, 3), np.ones((2, 2)), stride=1, padding=1)
    assert stepper.output.shape == (4, 4)  # padding 1: (3 − 2 + 2)/1 + 1
    stepper.timer.setInterval(1)
    stepper.play_button.click()
    assert stepper.play_button.text() == "Pause"
    qtbot.waitUntil(lambda: not stepper.play_button.isChecked(), timeout=3000)
    assert stepper.step == 15 and stepper.play_button.text() == "Play"
