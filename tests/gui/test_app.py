"""The application around the window: settings that come back, start-up and close, the error
dialog, and an event loop that stays responsive while a job runs."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.gui.app import initial_model
from tests.gui.gui_helpers import ready, write_image

WAIT_MS = 30_000


LATENCY_SCRIPT = r"""
import json, sys
from cnnexplorer.gui.app import configure_process  # first, as in the app: importing cnnexplorer sets the OpenMP policy before torch loads
from PySide6.QtCore import QElapsedTimer, QSettings, QTimer
from PySide6.QtWidgets import QApplication

app = QApplication([])
configure_process()
from cnnexplorer.gui.main_window import MainWindow

window = MainWindow(QSettings(sys.argv[1], QSettings.Format.IniFormat), confirm=lambda title, text: False)
window.show()
window.load_model("builtin:tinyvgg", "cpu")
window.open_files([sys.argv[2]])
assert window.wait_for_jobs(30_000)
clock, gaps = QElapsedTimer(), []
clock.start()
last = [clock.elapsed()]

def tick():
    now = clock.elapsed()
    gaps.append(now - last[0])
    last[0] = now

timer = QTimer()
timer.setInterval(10)
timer.timeout.connect(tick)
timer.start()
window.load_model("torchvision:resnet50:none", "cpu")  # build, summary, table, preprocessing, prediction
finished = window.wait_for_jobs(60_000)
timer.stop()
print(json.dumps({"finished": finished, "ms": clock.elapsed(), "gaps": gaps, "spec": window.session.model.spec,
                  "predictions": len(window.session.predictions)}))
window.close()
"""


def test_event_loop_stays_responsive_during_a_long_job(tmp_path, image_file):
    """In a fresh process configured like the app, a 10 ms timer keeps ticking during real work."""
    # the timeout only guards against a hang: the work takes about 7 s, but a busy machine can stretch it
    run = subprocess.run([sys.executable, "-c", LATENCY_SCRIPT, str(tmp_path / "s.ini"), str(image_file)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["finished"] and result["spec"] == "torchvision:resnet50:none" and result["predictions"] == 5
    assert result["ms"] > 500 and len(result["gaps"]) > 20
    assert max(result["gaps"]) < 100, f"largest gap between 10 ms ticks: {max(result['gaps'])} ms"


def test_settings_round_trip(make_window, settings, tmp_path):
    images = [write_image(tmp_path / f"{i}.png", i) for i in range(3)]
    window = ready(make_window(), "builtin:lenet5", images)
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 720, \
        "the window no longer fits a 1280×720 screen"
    window.resize(1100, 700)  # within the test screen (1600×1000), which restoreGeometry clamps to
    QApplication.processEvents()  # lay the docks out for the new size, as before any real close
    window.close()
    assert initial_model(settings, None, None) == ("builtin:lenet5", "cpu")
    assert initial_model(settings, "builtin:tinyvgg", "auto") == ("builtin:tinyvgg", "auto")

    again = make_window(settings=settings)
    assert again.recent == [str(p.resolve()) for p in reversed(images)]
    assert [a.text() for a in again.recent_menu.actions()] == ["2.png", "1.png", "0.png"]
    assert (again.width(), again.height()) == (1100, 700)
    settings.setValue("model/device", "cuda:7")
    assert initial_model(settings, None, None)[1] == ("cuda:7" if torch.cuda.device_count() > 7 else "auto")



def test_view_options_and_the_tab_come_back_next_time(make_window, settings):
    from cnnexplorer.gui.views.activations_view import ActivationsView
    from cnnexplorer.gui.views.dataset_view import DatasetView
    from cnnexplorer.gui.views.featurevis_view import FeatureVisView
    from cnnexplorer.gui.views.heatmap_view import AUTO_CMAP, HeatmapView
    from cnnexplorer.gui.views.training_view import TrainingView

    window = make_window()
    heatmaps, grid = window.view(HeatmapView), window.view(ActivationsView).controls
    training, featurevis = window.view(TrainingView), window.view(FeatureVisView).controls
    heatmaps.cmap.setCurrentText("magma")
    heatmaps.opacity.setValue(35)
    grid.norm_box.setCurrentText("shared (layer)")
    grid.dead_box.setChecked(True)
    featurevis.preset.setCurrentText("quality")
    featurevis.steps.setValue(123)  # after the preset, which sets the steps itself
    training.settings.epochs.setValue(7)
    training.settings.precision.setCurrentText("bf16")
    training.settings.data.setText("folder:/data/pets")
    training.settings.hflip.setChecked(True)
    training.curves.slider.setValue(80)
    dataset = window.view(DatasetView)
    dataset.k.setValue(5)
    dataset.projection.setCurrentText("t-SNE")
    dataset.colour_by.setCurrentText("right or wrong")
    dataset.faith_steps.setValue(dataset.faith_steps.value() + 3)
    faith_steps = dataset.faith_steps.value()
    window.tabs.setCurrentWidget(heatmaps)
    window.close()

    again = make_window(settings=settings)
    heatmaps, grid = again.view(HeatmapView), again.view(ActivationsView).controls
    training, featurevis = again.view(TrainingView), again.view(FeatureVisView).controls
    assert again.tabs.currentWidget() is heatmaps
    assert (heatmaps.cmap.currentText(), heatmaps.opacity.value()) == ("magma", 35)
    assert grid.options().norm == "layer" and grid.options().hide_dead
    assert (featurevis.preset.currentText(), featurevis.steps.value()) == ("quality", 123)
    config = training.settings.config()
    assert (config.epochs, config.precision, config.augment.hflip) == (7, "bf16", True)
    assert training.settings.data.text() == "folder:/data/pets" and training.curves.slider.value() == 80
    dataset = again.view(DatasetView)
    assert (dataset.k.value(), dataset.projection.currentText(), dataset.colour_by.currentText(),
            dataset.faith_steps.value()) == (5, "t-SNE", "right or wrong", faith_steps)
    again.close()

    settings.setValue("controls/HeatmapView.cmap", "no-such-map")  # values the controls cannot take
    settings.setValue("controls/TrainingSettings.epochs", "many")
    settings.setValue("controls/FeatureVisControls.steps", 10**9)
    third = make_window(settings=settings)
    assert third.view(HeatmapView).cmap.currentText() == AUTO_CMAP  # the default
    assert third.view(TrainingView).settings.epochs.value() == TrainConfig().epochs
    assert third.view(FeatureVisView).controls.steps.value() == 512  # the quality preset's, not 10⁹


def test_run_gui_starts_with_settings_of_its_own_and_returns_on_close(qtbot, monkeypatch, tmp_path, image_file):
    from PySide6.QtCore import QSettings

    from cnnexplorer.gui.app import run_gui
    from cnnexplorer.gui.main_window import MainWindow

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "config"))
    monkeypatch.setattr("sys.excepthook", __import__("sys").excepthook)  # run_gui installs its own
    seen = {}

    def close_when_ready():
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        window.wait_for_jobs(WAIT_MS)
        seen.update(title=window.windowTitle(), images=[im.name for im in window.session.images],
                    icon=not QApplication.windowIcon().isNull())
        window.close()

    QTimer.singleShot(0, close_when_ready)
    assert run_gui("builtin:lenet5", "cpu", [str(image_file)], fresh=True) == 0
    assert seen == {"title": "cnnexplorer — builtin:lenet5 on cpu", "images": ["picture.png"], "icon": True}
    saved = QSettings("cnnexplorer", "cnnexplorer")
    assert saved.value("model/spec") == "builtin:lenet5" and saved.value("model/device") == "cpu"


def test_unexpected_errors_show_a_dialog_with_the_traceback(qtbot):
    from PySide6.QtWidgets import QMessageBox

    from cnnexplorer.gui.app import show_exception

    try:
        {}["missing key"]
    except KeyError as exc:
        show_exception(exc)
    box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
    qtbot.addWidget(box)
    assert "KeyError" in box.text() and "keeps running" in box.text()
    assert "Traceback" in box.detailedText() and "missing key" in box.detailedText()


def test_without_a_display_the_app_says_so_in_one_line():
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "cnnexplorer", "builtin:shapes"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["cnnexplorer: error: no display to show the window on; run it on a "
                                                "desktop, or set QT_QPA_PLATFORM=offscreen for a headless run"]


def test_a_display_or_a_chosen_platform_is_enough():
    from cnnexplorer.gui.app import check_display

    for environ in ({"DISPLAY": ":0"}, {"WAYLAND_DISPLAY": "wayland-0"}, {"QT_QPA_PLATFORM": "offscreen"}):
        check_display(environ, "linux")
    check_display({}, "darwin")
    check_display({}, "win32")
