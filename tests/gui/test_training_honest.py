"""The Training tab says what a run will do before Start, keeps the previous model one click away, never
makes a run that ended no better than its start current unasked, and keeps its buttons in place."""

from __future__ import annotations

import numpy as np

from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.snapshots import Snapshot
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views.training_view import RUN_BUTTONS, TrainingView
from cnnexplorer.gui.widgets.training_curves import CurvesPanel
from cnnexplorer.gui.widgets.training_snapshots import SnapshotScrubber
from cnnexplorer.gui.workers import JobRunner
from tests.gui.test_training_view import make_folder


def make_view(qtbot) -> tuple[TrainingView, Session, JobRunner]:
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    view.resize(1280, 720)
    view.show()
    return view, session, jobs


def test_the_plan_is_shown_before_start_and_follows_the_form_and_the_model(qtbot, tmp_path):
    view, session, _ = make_view(qtbot)
    assert "Open a model" in view.plan.text()
    session.set_model(load_model("builtin:shapes", "cpu"))
    view.settings.data.setText("builtin:shapes")
    view.settings.scratch.setChecked(False)
    assert "Fine-tunes builtin:shapes" in view.plan.text() and "keeps its head" in view.plan.text()
    view.settings.scratch.setChecked(True)
    assert "from scratch" in view.plan.text()

    session.set_model(load_model("builtin:lenet5", "cpu"))
    view.settings.data.setText(f"folder:{tmp_path / 'data'}")
    assert "kept if the data has the same classes" in view.plan.text()  # no such folder yet
    make_folder(tmp_path / "data")
    view.hide()
    view.show()  # back to the tab: the folders made meanwhile count
    assert "replaced by a new one for the data's 2 classes" in view.plan.text()
    view.settings.freeze_base.setChecked(True)
    assert "Only the head (classifier) is trained; the base is frozen" in view.plan.text()


def positions(view) -> dict:
    return {name: view.buttons[name].mapTo(view, view.buttons[name].rect().topLeft()) for name in RUN_BUTTONS}


def lenet_on_stripes(view, session, tmp_path, batch_size: int, epochs: int):
    """The session on LeNet-5 (random weights), the form set to train it on the stripes folder; the model."""
    original = load_model("builtin:lenet5", "cpu")
    session.set_model(original)
    view.settings.data.setText(f"folder:{make_folder(tmp_path / 'data')}")
    view.settings.out.setText(str(tmp_path / "run.pt"))
    view.settings.batch_size.setValue(batch_size)
    view.settings.epochs.setValue(epochs)
    return original


def test_a_run_that_ends_unvalidated_leaves_the_model_and_offers_it_and_the_buttons_stay_put(qtbot, tmp_path):
    view, session, jobs = make_view(qtbot)
    original = lenet_on_stripes(view, session, tmp_path, batch_size=4, epochs=500)
    qtbot.wait(50)
    idle = positions(view)
    assert not view.buttons["Use the trained model"].isEnabled()
    assert not view.buttons["Back to the previous model"].isEnabled()

    view.start()
    qtbot.waitUntil(lambda: len(view.run.history.step) >= 2, timeout=30_000)
    assert positions(view) == idle
    view.pause()
    qtbot.wait(50)
    assert positions(view) == idle
    view.stop()  # within the first epoch: nothing validated
    qtbot.waitUntil(lambda: view.result is not None, timeout=30_000)
    assert jobs.wait(10_000)
    qtbot.wait(50)
    assert positions(view) == idle, "a longer status text moved the run buttons"
    assert view.result.final_val_acc is None
    assert session.model is original and "current model is unchanged" in view.status.text(), view.status.text()
    assert view.buttons["Use the trained model"].isEnabled()

    view.buttons["Use the trained model"].click()
    assert session.model is view.result.handle and not view.buttons["Use the trained model"].isEnabled()
    view.buttons["Back to the previous model"].click()
    assert session.model is original and view.buttons["Use the trained model"].isEnabled()
    assert positions(view) == idle


def test_a_better_run_becomes_current_and_back_to_the_previous_model_undoes_it(qtbot, tmp_path):
    view, session, jobs = make_view(qtbot)
    original = lenet_on_stripes(view, session, tmp_path, batch_size=8, epochs=3)
    view.start()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60_000)
    assert jobs.wait(10_000)
    assert not view.ready.baseline.falls_short(view.result.final_val_acc), view.status.text()
    assert session.model is view.result.handle and "Back to the previous model" in view.status.text()
    view.buttons["Back to the previous model"].click()
    assert session.model is original


def test_the_snapshot_slider_counts_the_epochs_run(qtbot):
    scrubber = SnapshotScrubber()
    qtbot.addWidget(scrubber)
    picture = np.zeros((4, 4, 3), np.uint8)
    scrubber.set_snapshots([Snapshot(epoch, picture, picture, "saliency") for epoch in (3, 4)])  # a resumed run
    scrubber.append(Snapshot(5, picture, picture, "saliency"))
    assert (scrubber.slider.minimum(), scrubber.slider.maximum(), scrubber.slider.value()) == (3, 5, 5)
    assert scrubber.label.text() == "Epoch 5 of 5 run"
    scrubber.slider.setValue(4)
    assert scrubber.label.text() == "Epoch 4 of 5 run"


def test_a_legend_above_the_plots_tells_training_from_validation(qtbot):
    panel = CurvesPanel()
    qtbot.addWidget(panel)
    panel.add_run("1: a run")
    panel.show()
    legend = panel.legend
    assert legend.isVisible() and all(words in legend.text() for words in ("train, per batch", "train, smoothed",
                                                                           "validation, per epoch"))
    plots_top = panel.graphics.mapTo(panel, panel.graphics.rect().topLeft()).y()
    assert legend.mapTo(panel, legend.rect().bottomLeft()).y() < plots_top  # above the plots: it covers no curve


def test_the_curves_take_most_of_the_tabs_height_on_a_small_screen(qtbot):
    view, _, _ = make_view(qtbot)
    view.resize(650, 560)  # what a 1280×720 window leaves the tab beside its docks
    qtbot.wait(50)
    plots = [plot.sceneBoundingRect() for plot in view.curves.plots]
    assert view.curves.graphics.height() >= 0.5 * view.height(), "the plots share the page with other parts"
    loss, accuracy, rate = (rect.height() for rect in plots)
    assert min(loss, accuracy) >= max(rate, 0.25 * view.height())
