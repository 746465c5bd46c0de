"""The Training tab's Gradient flow page: a layer × step strip filled live from a real run, and its CSV."""

from __future__ import annotations

import csv

import numpy as np

from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.gradient_flow import GradientFlow
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views.training_view import TrainingView
from cnnexplorer.gui.widgets.gradient_strip import GradientStrip
from cnnexplorer.gui.workers import JobRunner
from tests.gui.test_training_view import make_folder, train_one_epoch


def test_a_run_fills_the_strip_with_one_row_per_layer_and_one_column_per_step(qtbot, tmp_path):
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    view.show()
    session.set_model(load_model("builtin:lenet5", "cpu"))
    train_one_epoch(qtbot, view, make_folder(tmp_path / "data"), tmp_path / "run.pt")
    strip = view.gradients
    strip.redraw()
    steps = len(view.run.history.step)
    assert strip.layers == ("features.0", "features.3", "features.6", "classifier.0", "classifier.2")
    assert strip.image.image.shape[:2] == (5, steps) and np.isfinite(strip.values()).all()
    assert "features.0" in strip.scale.text()
    rows = list(csv.DictReader(open(view.export_gradient_csv(tmp_path / "g.csv"))))
    assert len(rows) == 5 * steps and {r["layer"] for r in rows} == set(strip.layers)


def test_a_vanishing_layer_is_the_dark_row_and_update_ratios_are_a_choice(qtbot):
    strip = GradientStrip()
    qtbot.addWidget(strip)
    for step in range(1, 4):
        strip.add(GradientFlow(step, ("first", "last"), np.array([1e-6, 1.0]), np.array([1e-3, 1e-2])))
    strip.redraw()
    pixels = strip.image.image
    assert pixels[0].sum() < pixels[1].sum()  # viridis: dark for the small norm
    strip.quantity.setCurrentText("update / weight")
    assert np.allclose(strip.values()[:, 0], [-3, -2])
    strip.add(GradientFlow(4, ("other",), np.array([1.0]), np.array([1.0])))  # another model's run: a new strip
    assert strip.layers == ("other",) and strip.steps == [4]
