"""A malformed settings file never stops the app from starting: each bad value is ignored on its
own and its default used, while the good values in the same file still take effect."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import (QAbstractSlider, QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit,
                               QSpinBox, QWidget)

from cnnexplorer.core.models import DEFAULT_SPEC
from cnnexplorer.gui.app import initial_model
from cnnexplorer.gui.remembered import save_controls
from cnnexplorer.gui.views.heatmap_view import HeatmapView

NO_VALUE_OF_ANY_KIND = [
    "@Invalid()",  # what Qt itself writes for an empty list
    "@Invalid(), @Size(1 2)",  # a list, and of no texts
    "@ByteArray(garbage)",
    "@Size(1 2)",
    r"@Variant(\0\0\0\x7f\0\0\0\x1)",  # a type no one knows
]
WRONG_FOR_THE_CONTROL = [  # by kind of control, in rounds; any text suits a line edit, not a list
    (QComboBox, ["no such choice", '""', "42", "1, 2"]),
    (QCheckBox, ["maybe", "1", '""', "true, false"]),
    (QDoubleSpinBox, ["nan", "1e999", "lots", "1, 2"]),
    ((QSpinBox, QAbstractSlider), ["many", "99999999999999999999999", "2.5", "1, 2"]),
    (QLineEdit, [None, None, None, "a, b"]),
]


def write_ini(path: Path, values: dict[str, str]) -> QSettings:
    """A settings file written by hand: ``values`` maps ``group/key`` to the raw INI text."""
    groups: dict[str, list[str]] = {}
    for key, text in values.items():
        group, _, name = key.rpartition("/")
        groups.setdefault(group or "General", []).append(f"{name}={text}")
    path.write_text("".join(f"[{group}]\n" + "\n".join(lines) + "\n\n" for group, lines in groups.items()))
    return QSettings(str(path), QSettings.Format.IniFormat)


def controls(window, path: Path) -> dict[str, object]:
    """The remembered controls' values, as the window would save them."""
    saved = QSettings(str(path), QSettings.Format.IniFormat)
    save_controls(saved, window)
    return {key: saved.value(key) for key in saved.allKeys()}


@pytest.fixture
def defaults(make_window, tmp_path):
    """What a window on empty settings shows, and every key a closing window writes."""
    window = make_window(settings=QSettings(str(tmp_path / "empty.ini"), QSettings.Format.IniFormat))
    shown = {"size": window.size(), "tab": window.tabs.currentIndex(), "controls": controls(window, tmp_path / "d.ini")}
    window.close()
    keys = [*QSettings(str(tmp_path / "empty.ini"), QSettings.Format.IniFormat).allKeys(), "model/spec"]
    assert {"window/geometry", "window/state", "window/tab", "recent", "model/device"} <= set(keys)
    assert len([key for key in keys if key.startswith("controls/")]) > 20
    return shown, keys


def assert_defaults(window, shown: dict, tmp_path: Path) -> None:
    assert window.size() == shown["size"] and window.tabs.currentIndex() == shown["tab"]
    assert window.recent == [] and window.recent_menu.actions() == []
    assert all(dock.isVisible() for dock in window.docks)
    assert controls(window, tmp_path / "now.ini") == shown["controls"]


@pytest.mark.parametrize("garbage", NO_VALUE_OF_ANY_KIND)
def test_garbage_under_every_key_leaves_each_at_its_default(make_window, defaults, tmp_path, garbage):
    shown, keys = defaults
    settings = write_ini(tmp_path / "bad.ini", {key: garbage for key in keys})
    assert initial_model(settings, None, None) == (DEFAULT_SPEC, "auto")
    assert_defaults(make_window(settings=settings), shown, tmp_path)


def wrong_value(widget: QWidget, round_: int) -> str | None:
    return next((values[round_] for kind, values in WRONG_FOR_THE_CONTROL if isinstance(widget, kind)), None)


@pytest.mark.parametrize("round_", range(4))
def test_a_value_of_the_wrong_kind_for_each_control_is_ignored(make_window, defaults, tmp_path, round_):
    shown, keys = defaults
    window = make_window()
    values = {"window/geometry": "garbage", "window/state": "garbage", "window/tab": "No such tab",
              "model/device": "cuda:99", "recent": "@Invalid()"}
    for key in keys:
        widget = window.findChild(QWidget, key.removeprefix("controls/")) if key.startswith("controls/") else None
        if widget is not None and wrong_value(widget, round_) is not None:
            values[key] = wrong_value(widget, round_)
    assert len(values) > 20
    settings = write_ini(tmp_path / "bad.ini", values)
    assert initial_model(settings, None, None) == (DEFAULT_SPEC, "auto")
    assert_defaults(make_window(settings=settings), shown, tmp_path)


def corrupt_state(settings: QSettings) -> None:
    """The first dock area's number out of range: Qt's restoreState crashes on such a state."""
    state = bytearray(settings.value("window/state").data())
    assert state[16] == 0
    state[16] = 44
    settings.setValue("window/state", bytes(state))


@pytest.mark.parametrize("broken", ["geometry", "state"])
def test_good_values_beside_bad_ones_still_take_effect(make_window, defaults, settings, tmp_path, broken):
    shown, _ = defaults
    window = make_window()
    window.resize(1100, 700)
    QApplication.processEvents()
    window.docks[1].hide()
    window.tabs.setCurrentWidget(window.view(HeatmapView))
    window.view(HeatmapView).cmap.setCurrentText("magma")
    window.view(HeatmapView).opacity.setValue(35)
    window.recent = ["/pictures/cat.png", "/pictures/dog.png"]
    window.close()
    settings.setValue("controls/HeatmapView.opacity", ["1", "2"])
    settings.setValue("recent", ["/pictures/cat.png", None, b"\0", "", "/pictures/dog.png"])
    if broken == "geometry":
        settings.setValue("window/geometry", "garbage")
    else:
        corrupt_state(settings)
    settings.sync()

    again = make_window(settings=QSettings(settings.fileName(), QSettings.Format.IniFormat))
    heatmaps = again.view(HeatmapView)
    assert again.tabs.currentWidget() is heatmaps and heatmaps.cmap.currentText() == "magma"
    assert heatmaps.opacity.value() == 70  # its default
    assert again.recent == ["/pictures/cat.png", "/pictures/dog.png"]
    assert (again.width(), again.height()) == ((shown["size"].width(), shown["size"].height()) if broken == "geometry"
                                               else (1100, 700))
    assert again.docks[1].isVisible() == (broken == "state")


def test_initial_model_takes_each_good_value_and_defaults_the_bad_one(tmp_path):
    good_spec = write_ini(tmp_path / "a.ini", {"model/spec": "builtin:lenet5", "model/device": "cpu, cuda"})
    assert initial_model(good_spec, None, None) == ("builtin:lenet5", "auto")
    good_device = write_ini(tmp_path / "b.ini", {"model/spec": "@ByteArray(builtin:lenet5)", "model/device": "cpu"})
    assert initial_model(good_device, None, None) == (DEFAULT_SPEC, "cpu")
    empty = write_ini(tmp_path / "c.ini", {"model/spec": '""', "model/device": "@Invalid()"})
    assert initial_model(empty, None, None) == (DEFAULT_SPEC, "auto")
    assert initial_model(empty, "builtin:tinyvgg", "cpu") == ("builtin:tinyvgg", "cpu")  # the command line's


def test_the_app_starts_on_a_garbage_settings_file_and_saves_good_values(qtbot, monkeypatch, defaults, tmp_path):
    from cnnexplorer.gui.app import run_gui
    from cnnexplorer.gui.main_window import MainWindow

    _, keys = defaults
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "config"))
    path = Path(QSettings("cnnexplorer", "cnnexplorer").fileName())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_ini(path, {key: garbage for key, garbage in zip(keys, NO_VALUE_OF_ANY_KIND * len(keys))})
    monkeypatch.setattr("sys.excepthook", __import__("sys").excepthook)  # run_gui installs its own
    seen = {}

    def close_when_ready():
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        window.wait_for_jobs(30_000)
        seen.update(spec=window.session.model.spec, images=len(window.session.images))
        window.close()

    QTimer.singleShot(0, close_when_ready)
    assert run_gui(None, None, [], fresh=False) == 0
    assert seen == {"spec": DEFAULT_SPEC, "images": 6}
    saved = QSettings("cnnexplorer", "cnnexplorer")
    assert saved.value("model/spec") == DEFAULT_SPEC and saved.value("window/tab") == "Input"
