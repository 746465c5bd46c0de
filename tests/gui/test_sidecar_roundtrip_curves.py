"""The Training tab's curves are made again, pixel for pixel, by ``cnnexplorer export --from-sidecar``
from the checkpoint the run wrote."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cnnexplorer.cli import main
from cnnexplorer.gui.views.training_view import TrainingView
from tests.gui.gui_helpers import shapes_window
from tests.gui.test_training_view import make_folder, train_one_epoch


def test_the_curves_of_a_run_are_made_again_from_its_checkpoint(make_window, qtbot, tmp_path, capsys):
    window = shapes_window(make_window)
    view = window.show_view(TrainingView)
    view.curves.slider.setValue(90)  # not the default smoothing, so the settings round trip is tested
    train_one_epoch(qtbot, view, make_folder(tmp_path / "data"), tmp_path / "run.pt")
    assert window.wait_for_jobs(60_000)
    png, sidecar = window.export_current_view(tmp_path / "gui.png")
    recorded = json.loads(sidecar.read_text())
    assert recorded["view"] == "curves" and recorded["model"]["spec"] == str(tmp_path / "run.pt")
    out = tmp_path / "cli.png"
    assert main(["export", "--from-sidecar", str(sidecar), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["epochs"] == 1 and report["steps"] > 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(png)))
    assert recorded["settings"]["smoothing"] == 0.9
    assert json.loads((tmp_path / "cli.png.json").read_text())["settings"]["smoothing"] == 0.9


def test_curves_of_a_model_that_is_no_training_checkpoint_are_refused(tmp_path, capsys):
    code = main(["export", "curves", "--model", "builtin:shapes", "--out", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "training checkpoint" in err
    code = main(["export", "curves", "--model", "builtin:shapes", "--smoothing", "1.5", "--out", str(tmp_path / "c.png")])
    assert code == 2 and "--smoothing" in capsys.readouterr().err
