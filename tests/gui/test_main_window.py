"""The main window end to end: startup, drag-and-drop, bad inputs, export, latency, settings."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QPushButton
from torch import nn

from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.builtin import BUILTIN_MODELS
from cnnexplorer.core.charts import render_summary_table
from cnnexplorer.core.checkpoints import save_checkpoint
from cnnexplorer.core.models import load_model
from cnnexplorer.gui.window_jobs import sample_images
from cnnexplorer.gui.widgets.zoo_dialog import ZooDialog
from tests.gui.gui_helpers import ready, write_image

WAIT_MS = 30_000


def drop(target, paths: list[Path]) -> None:
    """A real drag-enter then drop of local file URLs, sent to ``target``."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, event)
    assert event.isAccepted()


def test_startup_shows_tree_samples_and_predictions_quickly(make_window):
    samples = sample_images()
    assert samples, "the package ships sample images"
    window = make_window()
    started = time.monotonic()
    window.start("builtin:shapes", "cpu", [])
    assert window.wait_for_jobs(WAIT_MS)
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"startup took {elapsed:.1f} s"
    assert window.model_dock.model.rowCount() > 0
    assert [im.path for im in window.session.images] == samples
    assert window.session.image is window.session.images[0]
    assert len(window.session.predictions) == 5
    assert window.windowTitle() == "cnnexplorer — builtin:shapes on cpu"
    assert window.messages == []


def test_dropping_images_models_and_other_files_anywhere(make_window, tmp_path):
    window = ready(make_window())
    first, second = write_image(tmp_path / "a.png", 1), write_image(tmp_path / "b.jpg", 2)
    drop(window, [first])
    assert window.wait_for_jobs(WAIT_MS)
    assert [im.name for im in window.session.images] == ["a.png"]
    summary_canvas = window.views[1].canvas.viewport()
    drop(summary_canvas, [second])  # over a pyqtgraph view, which accepts drops itself
    assert window.wait_for_jobs(WAIT_MS)
    assert [im.name for im in window.session.images] == ["a.png", "b.jpg"]
    assert window.session.image.name == "b.jpg" and len(window.session.predictions) == 5

    module = BUILTIN_MODELS["lenet5"].build()
    checkpoint = save_checkpoint(tmp_path / "lenet.pt", module, "builtin:lenet5", [f"digit {i}" for i in range(10)],
                                 BUILTIN_MODELS["lenet5"].preprocessing)
    drop(window.model_dock.footer, [checkpoint])  # a plain label inside the Model dock
    assert window.wait_for_jobs(WAIT_MS)
    assert window.session.model.spec == str(checkpoint)
    assert window.session.predictions[0].label.startswith("digit ")
    assert str(checkpoint) in window.windowTitle()
    assert torch.equal(window.session.model.module.features[0].weight, module.features[0].weight)

    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    drop(window.image_dock, [notes])
    assert window.wait_for_jobs(WAIT_MS)
    assert "notes.txt" in window.last_message
    assert [im.name for im in window.session.images] == ["a.png", "b.jpg"]


def test_bad_inputs_each_give_a_message_and_lose_nothing(make_window, confirm, tmp_path, image_file):
    window = ready(make_window(), images=[image_file])
    handle, images = window.session.model, list(window.session.images)
    fake_png = tmp_path / "fake.png"
    fake_png.write_text("this is text, not a PNG")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(image_file.read_bytes()[:120])
    junk_model = tmp_path / "junk.pt"
    junk_model.write_bytes(np.random.default_rng(0).bytes(500))
    pickled = tmp_path / "pickled.pt"
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)), pickled)

    cases = [
        ([tmp_path / "missing.png"], "missing.png"),
        ([tmp_path / "table.csv"], "table.csv"),
        ([fake_png], "fake.png"),
        ([corrupt], "corrupt.png"),
        ([junk_model], "junk.pt"),
        ([tmp_path / "nothing.pth"], "nothing.pth"),
    ]
    for paths, name in cases:
        count = len(window.messages)
        window.open_files([str(p) for p in paths])
        assert window.wait_for_jobs(WAIT_MS)
        assert len(window.messages) == count + 1 and name in window.last_message, (name, window.messages[count:])
        assert window.session.model is handle and window.session.images == images

    window.open_files([str(pickled)])
    assert window.wait_for_jobs(WAIT_MS)
    assert len(confirm.asked) == 1
    title, text = confirm.asked[0]
    assert "runs code" in text and "trust" in text.lower()
    assert window.session.model is handle and window.session.images == images

    confirm.answer = True
    window.open_files([str(pickled)])
    assert window.wait_for_jobs(WAIT_MS)
    assert window.session.model.spec == str(pickled) and window.session.model.num_classes == 3


def test_zoo_choice_without_weights_offers_random_initialisation(make_window, confirm, monkeypatch, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on: the download fails at once, offline
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("CNNEXPLORER_WEIGHTS_MIRROR", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    confirm.answer = True
    window = make_window()
    window.device = "cpu"
    zoo_button = next(b for b in window.model_dock.findChildren(QPushButton) if b.text() == "Zoo…")
    zoo_button.click()
    zoo = window.findChild(ZooDialog)
    zoo.filter.setText("resnet18")
    assert zoo.selected_spec() == "torchvision:resnet18"
    zoo.open_button.click()
    assert window.wait_for_jobs(WAIT_MS)
    assert [title for title, _ in confirm.asked] == ["Weights not available"]
    assert confirm.asked[0][1].endswith("Load it with random weights instead?")
    assert window.session.model.spec == "torchvision:resnet18:none"
    assert window.windowTitle() == "cnnexplorer — torchvision:resnet18:none on cpu — untrained"


def test_export_writes_the_core_render_and_a_sidecar(make_window, tmp_path, image_file):
    window = ready(make_window(), images=[image_file])
    assert window.views[1].picture() is None
    window.tabs.setCurrentWidget(window.views[1])  # a hidden tab computes nothing until it is shown
    assert window.wait_for_jobs(WAIT_MS)
    png, sidecar = window.export_current_view(tmp_path / "out" / "summary.png")
    expected = render_summary_table(summarize_handle(load_model("builtin:tinyvgg", "cpu")))
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), expected)
    meta = json.loads(sidecar.read_text())
    assert meta["view"] == "summary" and meta["model"]["spec"] == "builtin:tinyvgg"
    assert meta["image"]["sha256"] == window.session.image.sha256
    assert sidecar.name == "summary.png.json"

    window.tabs.setCurrentWidget(window.views[0])
    png, _ = window.export_current_view(tmp_path / "input.png")
    pixels = np.asarray(Image.open(png))
    assert pixels.shape == (64, 64, 3)
    resized = np.asarray(Image.open(image_file).convert("RGB").resize((64, 64), Image.BILINEAR))
    assert np.abs(pixels.astype(int) - resized).max() <= 1

    window.copy_picture()
    copied = QGuiApplication.clipboard().image().convertToFormat(QImage.Format.Format_RGB888)
    as_array = np.frombuffer(copied.constBits(), np.uint8).reshape(copied.height(), copied.bytesPerLine())
    assert np.array_equal(as_array[:, : 64 * 3].reshape(64, 64, 3), pixels)


def test_a_failed_export_asks_for_another_place_and_writes_the_picture_it_was_asked_for(
        make_window, tmp_path, image_file, monkeypatch):
    from functools import partial

    from PySide6.QtGui import QAction

    from cnnexplorer.gui import main_window

    window = make_window()
    asked, said = [], []

    def ask(*_):
        asked.append(window.session.image)
        window.session.set_image(None)  # the view changes while the dialog is open
        return [str(tmp_path / "a file" / "input.png"), str(tmp_path / "saved" / "input.png")][len(asked) - 1]

    monkeypatch.setattr(main_window, "save_as", partial(main_window.save_as, ask=ask,
                                                        say=lambda parent, text: said.append(text)))
    export = next(a for a in window.findChildren(QAction) if a.text() == "Export view as PNG…")
    export.trigger()
    assert asked == [] and "shows nothing yet" in window.last_message, "nothing to export: no dialog"
    ready(window, images=[image_file])
    window.tabs.setCurrentWidget(window.views[0])
    assert window.wait_for_jobs(WAIT_MS)
    shown = window.views[0].picture()[0]
    (tmp_path / "a file").write_text("not a folder")
    export.trigger()
    assert len(asked) == 2 and len(said) == 1 and "choose another place" in said[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "saved" / "input.png")), shown)
    assert json.loads((tmp_path / "saved" / "input.png.json").read_text())["image"]["path"] == str(asked[0].path)
    assert window.statusBar().currentMessage().startswith("wrote ")


def test_paste_opens_the_clipboard_image(make_window, tmp_path):
    window = ready(make_window())
    window.paste_dir = tmp_path / "pasted"
    picture = np.zeros((16, 24, 3), np.uint8)
    picture[:, :12] = (255, 0, 0)
    QGuiApplication.clipboard().setImage(QImage(picture.data, 24, 16, 72, QImage.Format.Format_RGB888).copy())
    window.paste()
    assert window.wait_for_jobs(WAIT_MS)
    image = window.session.image
    assert image.path.parent == window.paste_dir
    assert np.array_equal(np.asarray(image.image), picture)


def test_device_change_moves_the_model_and_keeps_the_layer(make_window, image_file):
    window = ready(make_window(), images=[image_file])
    handle = window.session.model
    target = "cuda:0" if torch.cuda.is_available() else "cpu"
    window.session.set_layer("features.2")
    window.model_dock.device_box.textActivated.emit(target)
    assert window.wait_for_jobs(WAIT_MS)
    moved = window.session.model
    assert window.session.layer == "features.2" and window.device == target
    assert moved.device == torch.device(target) and next(moved.module.parameters()).device == torch.device(target)
    assert next(handle.module.parameters()).device == torch.device("cpu")  # jobs on the original are unharmed
    assert len(window.session.predictions) == 5 and f"on {target}" in window.windowTitle()
    selected = window.model_dock.tree.selectionModel().selectedRows()
    assert [i.data(Qt.ItemDataRole.UserRole + 1) for i in selected] == ["features.2"]


def test_menus_carry_the_documented_shortcuts_and_tooltips(make_window):
    from PySide6.QtWidgets import QMenu

    window = make_window()
    actions = {a.text(): a for menu in window.menuBar().findChildren(QMenu) for a in menu.actions()}
    expected = {"Open image…": "Ctrl+O", "Open model file…": "Ctrl+Shift+O", "Model zoo…": "Ctrl+M",
                "Paste image": "Ctrl+V", "Export view as PNG…": "Ctrl+E", "Copy picture": "Ctrl+Shift+C",
                "Quit": "Ctrl+Q"}
    assert {text: actions[text].shortcut().toString() for text in expected} == expected
    assert all(actions[text].toolTip() for text in expected)
    assert {"Model", "Images", "Recent files", "Keyboard shortcuts", "About cnnexplorer"} <= set(actions)


def test_tabs_and_images_have_keys(make_window, tmp_path):
    from PySide6.QtWidgets import QMenu

    from cnnexplorer.gui.views.activations_view import ActivationsView

    window = ready(make_window(), "builtin:lenet5", [write_image(tmp_path / f"{i}.png", i) for i in range(3)])
    actions = {a.text(): a for menu in window.menuBar().findChildren(QMenu) for a in menu.actions()}
    assert [actions[f"{v.title} tab"].shortcut().toString() for v in window.views] == \
        [f"Ctrl+{n % 10}" for n in range(1, len(window.views) + 1)]  # the tenth, Lab, on Ctrl+0
    actions["Activations tab"].trigger()
    assert window.tabs.currentWidget() is window.view(ActivationsView)
    assert (actions["Next image"].shortcut().toString(), actions["Previous image"].shortcut().toString()) == \
        ("Alt+Right", "Alt+Left")
    names = [window.session.image.name]
    for _ in range(3):
        actions["Next image"].trigger()
        names.append(window.session.image.name)
    actions["Previous image"].trigger()
    assert names == ["2.png", "0.png", "1.png", "2.png"] and window.session.image.name == "1.png"
    assert window.wait_for_jobs(WAIT_MS)


def test_toolbar_offers_open_export_and_copy(make_window):
    from PySide6.QtWidgets import QToolBar

    window = make_window()
    (toolbar,) = window.findChildren(QToolBar)
    texts = [a.text() for a in toolbar.actions() if not a.isSeparator()]
    assert texts == ["Open image…", "Open model file…", "Model zoo…", "Export view as PNG…", "Copy picture"]


def test_the_trees_freeze_boxes_show_only_on_the_training_tab(make_window):
    from PySide6.QtCore import Qt

    from cnnexplorer.gui.views.activations_view import ActivationsView
    from cnnexplorer.gui.views.training_view import TrainingView

    window = ready(make_window(), "builtin:lenet5", [])
    dock, conv = window.model_dock, window.model_dock.item("features.0")
    stats = [dock.model.horizontalHeaderItem(c).text() for c in range(dock.model.columnCount())].index("Zeros")
    window.show_view(ActivationsView)
    assert not conv.isCheckable() and conv.data(Qt.ItemDataRole.CheckStateRole) is None
    assert not dock.tree.isColumnHidden(stats)
    window.show_view(TrainingView)
    assert conv.isCheckable() and conv.checkState() == Qt.CheckState.Checked
    assert dock.tree.isColumnHidden(stats) and dock.tree.isColumnHidden(stats + 1)  # Zeros, Dead: room for the boxes
    assert not dock.item("features.1").isCheckable()  # a ReLU has nothing to freeze
    conv.setCheckState(Qt.CheckState.Unchecked)
    assert not any(p.requires_grad for p in window.session.model.module.features[0].parameters())
    window.show_view(ActivationsView)
    assert not conv.isCheckable() and conv.data(Qt.ItemDataRole.CheckStateRole) is None
    assert conv.foreground().color().getRgb()[:3] == (150, 150, 150)  # frozen rows stay grey
    window.show_view(TrainingView)
    assert conv.checkState() == Qt.CheckState.Unchecked


def test_the_summary_table_marks_the_current_layer_and_a_click_on_a_row_selects_it(make_window, qtbot):
    from PySide6.QtCore import QPointF, Qt

    from cnnexplorer.core.charts import ROW_HEIGHT, summary_rows
    from cnnexplorer.gui.views.summary_view import SummaryView

    window = ready(make_window(), "torchvision:resnet18:none", [])
    view = window.show_view(SummaryView)
    assert window.wait_for_jobs(30_000)
    rows = summary_rows(window.session.summary)
    assert view.canvas.view_box.viewRange()[1][1] < rows["layer4.1.conv2"]  # out of view at first
    window.session.set_layer("layer4.1.conv2")  # far down: the table scrolls to it
    assert view.highlight.isVisible() and view.highlight.rect().top() == rows["layer4.1.conv2"]
    shown_top, shown_bottom = view.canvas.view_box.viewRange()[1]
    assert shown_top <= rows["layer4.1.conv2"] <= shown_bottom - ROW_HEIGHT
    assert shown_top <= rows["layer4.0.conv1"]  # a row in view
    centre = QPointF(40, rows["layer4.0.conv1"] + ROW_HEIGHT / 2)
    point = view.canvas.mapFromScene(view.canvas.view_box.mapViewToScene(centre))
    qtbot.mouseClick(view.canvas.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert window.session.layer == "layer4.0.conv1"
    assert view.highlight.rect().top() == rows["layer4.0.conv1"]


def test_exporting_an_empty_view_says_what_it_waits_for(make_window):
    from cnnexplorer.gui.views.adversarial_view import AdversarialView
    from cnnexplorer.gui.views.featurevis_view import FeatureVisView

    window = ready(make_window(), "builtin:shapes", sample_images()[:1])
    for kind, step in ((AdversarialView, "press Attack"), (FeatureVisView, "press Start")):
        window.show_view(kind)
        window.copy_picture()
        assert step in window.last_message and "load a model" not in window.last_message


def test_the_window_says_when_the_model_is_untrained(make_window):
    window = ready(make_window(), "builtin:shapes")
    assert window.untrained_label.isHidden()
    window.load_model("builtin:tinyvgg", "cpu")  # no shipped weights: random initialisation
    assert window.wait_for_jobs(WAIT_MS) and not window.session.model.trained
    assert window.untrained_label.isVisible() and "random weights" in window.untrained_label.text()
    window.load_model("builtin:shapes", "cpu")
    assert window.wait_for_jobs(WAIT_MS) and window.untrained_label.isHidden()
