"""Interventions in the window: the tile menu edits a channel, the grid and the predictions are
recomputed on the edited model, the badge says so and clears it, the sweep ranks the channels,
and a new model leaves no hook behind."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF, Qt

from cnnexplorer.cli import main
from cnnexplorer.core.interventions import Edit
from cnnexplorer.gui.views.activations_view import ActivationsView
from cnnexplorer.gui.widgets.edited_badge import EditedBadge
from tests.gui.gui_helpers import shapes_window

WAIT_MS = 30_000


def hooks_on(module) -> int:
    return sum(len(m._forward_hooks) for m in module.modules())


def action(menu, starts: str):
    return next(a for a in menu.actions() if a.text().startswith(starts))


def test_the_tile_menu_edits_the_model_and_the_badge_clears_it(make_window, qtbot, tmp_path):
    window = shapes_window(make_window)
    session = window.session
    view = window.show_view(ActivationsView)
    badge = EditedBadge(session)
    qtbot.addWidget(badge)
    session.set_layer("features.5.0")
    assert window.wait_for_jobs(WAIT_MS)
    module = session.model.module
    plain_stats, plain_top = view.result.grid.stats, session.predictions[0].prob
    assert hooks_on(module) == 0 and badge.isHidden()

    layout = view.result.panels[0].layout
    x, y = layout.tile_origin(7)
    point = view.canvas.mapFromScene(view.canvas.view_box.mapViewToScene(QPointF(x + 2, y + 2)))
    qtbot.mouseClick(view.canvas.viewport(), Qt.MouseButton.RightButton, pos=point)
    menu = view.context_menu
    assert not action(menu, "Set channel 7 to its dataset mean").isEnabled()  # no dataset index open
    action(menu, "Switch off channel 7").trigger()
    menu.close()
    assert window.wait_for_jobs(WAIT_MS)
    assert session.interventions == (Edit("features.5.0", (7,)),) and hooks_on(module) == 1
    stats = view.result.grid.stats
    assert stats.channel(7)["min"] == stats.channel(7)["max"] == 0 != plain_stats.channel(7)["max"]
    assert stats.channel(8) == plain_stats.channel(8)
    assert badge.isVisible() and badge.label.text() == "Edited: features.5.0: 7 off"

    view.edit(Edit("features.2.0", (1,), "scale", 2.0))
    view.edit(Edit("features.5.0", (3,), "keep"))
    assert window.wait_for_jobs(WAIT_MS)
    assert [e.mode for e in session.interventions] == ["scale", "keep"] and hooks_on(module) == 2
    assert session.predictions and session.predictions[0].prob != plain_top  # predicted again, edited
    assert "features.2.0: 1 × 2" in badge.toolTip() and "only 3 kept" in badge.toolTip()
    in_bar = window.statusBar().findChild(EditedBadge)
    assert in_bar is not None and in_bar.isVisible() and in_bar.label.text() == badge.label.text()
    png, sidecar = window.export_current_view(tmp_path / "edited.png")  # the window's Export keeps the edits
    code = main(["export", "--from-sidecar", str(sidecar), "--out", str(tmp_path / "again.png")])
    assert code == 0 and np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(tmp_path / "again.png")))
    assert [Edit.from_json(e) for e in json.loads(sidecar.read_text())["interventions"]] == list(session.interventions)

    qtbot.mouseClick(badge.clear_button, Qt.MouseButton.LeftButton)
    assert window.wait_for_jobs(WAIT_MS)
    assert session.interventions == () and hooks_on(module) == 0 and badge.isHidden()
    assert view.result.grid.stats.channel(7) == plain_stats.channel(7) and session.predictions[0].prob == plain_top


def test_the_sweep_ranks_the_channels_and_a_new_model_takes_the_edits_off(make_window):
    window = shapes_window(make_window)
    session = window.session
    view = window.show_view(ActivationsView)
    session.set_layer("features.7.conv2")
    assert window.wait_for_jobs(WAIT_MS)
    view.sweep()
    assert window.wait_for_jobs(WAIT_MS)
    result = view.sweep_panel.result
    assert result is not None and sorted(result.channels) == list(range(96))
    assert view.sweep_panel.table.item(0, 0).text() == str(result.channels[0])
    view.sweep_panel.table.cellClicked.emit(1, 0)
    assert session.unit.channel == result.channels[1]

    old = session.model.module
    session.dataset_means = {"features.7.conv2": tuple(float(c) for c in range(96))}
    view.edit(Edit("features.7.conv2", (0,), "mean", values=(0.0,)))
    assert hooks_on(old) == 1
    window.load_model("builtin:shapes", "cpu")
    assert window.wait_for_jobs(WAIT_MS)
    assert hooks_on(old) == 0 and session.interventions == ()
