"""The Training tab: start, pause, continue and stop a real run with the curves updating; resume; export."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from cnnexplorer.core.models import load_model
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views.training_view import TrainingView
from cnnexplorer.gui.workers import JobRunner


def make_folder(root):
    rng = np.random.default_rng(0)
    for name, axis in (("across", 0), ("down", 1)):
        (root / name).mkdir(parents=True)
        for i in range(40):
            wave = (np.arange(32) // 3 % 2) * 160 + 40
            image = np.repeat(wave[:, None] if axis == 0 else wave[None, :], 32, axis=1 - axis)
            Image.fromarray(np.clip(image + rng.normal(0, 25, (32, 32)), 0, 255).astype(np.uint8)).save(
                root / name / f"{i}.png")
    return root


def train_one_epoch(qtbot, view, folder, out) -> None:
    """Train the session's model for one epoch on ``folder`` from the tab's form, and wait for the end."""
    view.settings.data.setText(f"folder:{folder}")
    view.settings.out.setText(str(out))
    view.settings.batch_size.setValue(16)
    view.settings.epochs.setValue(1)
    view.start()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60_000)
    view.use_trained()  # a no-op unless the run ended worse than its start and left the model current


def steps(view) -> int:
    return len(view.run.history.step)


def test_start_pause_continue_stop_with_live_curves_then_resume(qtbot, tmp_path):
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    view.show()
    session.set_model(load_model("builtin:lenet5", "cpu"))
    view.settings.data.setText(f"folder:{make_folder(tmp_path / 'data')}")
    view.settings.out.setText(str(tmp_path / "run.pt"))
    view.settings.batch_size.setValue(8)
    view.settings.epochs.setValue(200)
    messages = []
    jobs.message.connect(messages.append)
    try:
        view.start()
        assert not view.buttons["Start"].isEnabled() and view.buttons["Pause"].isEnabled()
        qtbot.waitUntil(lambda: bool(view.scrubber.snapshots) and steps(view) >= 10, timeout=30_000)
        loss_curve = view.curves.plots[0].listDataItems()[0]
        qtbot.waitUntil(lambda: len(loss_curve.getOriginalDataset()[1] if loss_curve.getOriginalDataset()[1] is not None else ()) >= 10,
                        timeout=2_000)  # the loss curve is drawn by the refresh timer

        view.pause()
        assert view.buttons["Continue"].isEnabled() and not view.buttons["Pause"].isEnabled()
        qtbot.wait(400)
        paused_at = steps(view)
        qtbot.wait(600)
        assert steps(view) == paused_at and "paused" in view.status.text()

        view.resume()
        qtbot.waitUntil(lambda: steps(view) >= paused_at + 3, timeout=10_000)
        assert view.scrubber.slider.maximum() == view.scrubber.snapshots[-1].epoch == len(view.scrubber.snapshots)

        view.stop()
        qtbot.waitUntil(lambda: view.result is not None, timeout=10_000)
        assert view.result.stopped == "stopped by request" and "Stopped by request" in view.status.text()
        kept = view.ready.baseline.falls_short(view.result.final_val_acc)  # the stop may fall in a poorer epoch
        assert (session.model is view.result.handle) is not kept
        view.use_trained()
        assert session.model is view.result.handle and session.model.class_names == ["across", "down"]
        assert view.buttons["Start"].isEnabled() and not view.buttons["Stop"].isEnabled()
        first_run = view.run
        saved_steps = view.result.history.val_step[-1]  # the checkpoint holds the last finished epoch

        png, table = view.export_png(tmp_path / "c.png"), view.export_csv(tmp_path / "m.csv")
        assert Image.open(png).size[0] > 600 and len(list(csv.DictReader(open(table)))) == steps(view)

        view.resume_from(tmp_path / "run.pt")
        assert view.run is not first_run and len(view.curves.runs) == 2
        start_len = steps(view)
        assert start_len == saved_steps
        qtbot.waitUntil(lambda: steps(view) > start_len, timeout=20_000)
        assert view.run.history.step[start_len] == saved_steps + 1  # the curve continues where the checkpoint ended
        view.curves.run_list.item(0).setCheckState(view.curves.run_list.item(0).checkState().Unchecked)
        assert not view.curves.runs[0].visible and view.curves.runs[1].visible
        view.stop()
        qtbot.waitUntil(lambda: view.result is not None, timeout=10_000)
        assert not messages
    finally:
        if view.control is not None:
            view.control.stop()
        jobs.wait(20_000)


def test_an_existing_checkpoint_is_written_over_only_when_confirmed(qtbot, tmp_path):
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    session.set_model(load_model("builtin:lenet5", "cpu"))
    view.settings.data.setText(f"folder:{make_folder(tmp_path / 'data')}")
    old = tmp_path / "old.pt"
    old.write_bytes(b"an earlier run")
    view.settings.out.setText(str(old))
    asked, answers = [], [False, True]
    view.confirm = lambda title, text: asked.append((title, text)) or answers.pop(0)
    view.start()
    assert len(asked) == 1 and str(old) in asked[0][1] and "Resume file" in asked[0][1]
    assert not view.running and old.read_bytes() == b"an earlier run"
    view.start()
    try:
        assert len(asked) == 2 and view.running
    finally:
        view.stop()
        assert jobs.wait(60_000)


def test_tree_checkboxes_freeze_modules_and_training_honours_them(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    from cnnexplorer.core.architecture import summarize_handle
    from cnnexplorer.gui.widgets.model_dock import ModelDock

    session, jobs = Session(), JobRunner()
    dock, view = ModelDock(session), TrainingView(session, jobs)
    qtbot.addWidget(dock)
    qtbot.addWidget(view)
    handle = load_model("builtin:lenet5", "cpu")
    session.set_model(handle, summarize_handle(handle))
    conv = dock.item("features.0")
    assert conv.isCheckable() and conv.checkState() == Qt.CheckState.Checked
    assert not dock.item("features.1").isCheckable()  # a ReLU has nothing to freeze

    conv.setCheckState(Qt.CheckState.Unchecked)
    frozen = sum(p.numel() for p in handle.module.features[0].parameters())
    assert not any(p.requires_grad for p in handle.module.features[0].parameters())
    assert dock.item("features").checkState() == Qt.CheckState.PartiallyChecked
    assert conv.foreground().color().getRgb()[:3] == (150, 150, 150)
    assert f"{frozen:,} frozen" in dock.footer.text()

    before = handle.module.features[0].weight.detach().clone()
    other = handle.module.features[3].weight.detach().clone()
    train_one_epoch(qtbot, view, make_folder(tmp_path / "data"), tmp_path / "run.pt")
    trained = session.model.module
    assert torch_equal(trained.features[0].weight, before)  # the frozen row's weights did not move
    assert not torch_equal(trained.features[3].weight, other)  # a ticked row's weights did
    assert dock.item("features.0").checkState() == Qt.CheckState.Unchecked  # the new model keeps the freeze
    jobs.wait(10_000)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_cancelling_from_the_status_bar_frees_the_buttons(qtbot, tmp_path):
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    model = load_model("builtin:lenet5", "cpu")
    session.set_model(model)
    view.settings.data.setText(f"folder:{make_folder(tmp_path / 'data')}")
    view.settings.out.setText(str(tmp_path / "run.pt"))
    view.settings.epochs.setValue(500)
    view.start()
    qtbot.waitUntil(lambda: len(view.run.history.step) >= 2, timeout=20_000)
    view.pause()
    jobs.cancel_all()  # a paused run still ends: the loop yields while it waits
    assert jobs.wait(10_000)
    qtbot.waitUntil(lambda: view.buttons["Start"].isEnabled(), timeout=2_000)
    assert "cancelled" in view.status.text() and session.model is model


def test_unreadable_files_in_the_folder_are_skipped_and_named(qtbot, tmp_path):
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    root = make_folder(tmp_path / "data")
    (root / "across" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "down" / "empty.png").write_bytes(b"")
    session.set_model(load_model("builtin:lenet5", "cpu"))
    train_one_epoch(qtbot, view, root, tmp_path / "run.pt")
    jobs.wait(10_000)
    text, tip = view.status.text(), view.status.toolTip()
    assert "Finished after 1 epochs" in text
    # a file may fall in the validation part, which an epoch reads too: both are named
    assert "Skipped 2 unreadable files" in text, text
    assert "broken.png" in tip and "empty.png" in tip


SAME_RUN_FLAGS = ("--scratch", "--seed", "3", "--epochs", "1", "--batch-size", "8", "--optimizer", "sgd", "--lr",
                  "0.02", "--schedule", "step", "--augment", "rotation=10,hflip")


def fill_form(form, data, out) -> None:
    """The Training tab's form set to ``SAME_RUN_FLAGS``."""
    form.data.setText(f"folder:{data}")
    form.out.setText(str(out))
    form.scratch.setChecked(True)
    form.seed.setValue(3)
    form.epochs.setValue(1)
    form.batch_size.setValue(8)
    form.optimizer.setCurrentText("sgd")
    form.lr.setValue(0.02)
    form.schedule.setCurrentText("step")
    form.rotation.setValue(10)
    form.hflip.setChecked(True)


def test_the_cli_and_the_tab_make_the_same_request_and_the_same_run(qtbot, tmp_path):
    from dataclasses import replace

    import torch

    from cnnexplorer.cli import build_parser, main
    from cnnexplorer.cli_train import train_request
    from cnnexplorer.core.checkpoints import read_model_file

    data, cli_out, gui_out = make_folder(tmp_path / "data"), tmp_path / "cli.pt", tmp_path / "gui.pt"
    flags = ["train", "--model", "builtin:lenet5", "--device", "cpu", "--data", f"folder:{data}", *SAME_RUN_FLAGS]
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    handle = load_model("builtin:lenet5", "cpu")
    session.set_model(handle)
    fill_form(view.settings, data, gui_out)
    from_flags = train_request(build_parser().parse_args([*flags, "--out", str(cli_out)]), lambda args: handle)
    assert replace(from_flags, out=gui_out) == view.settings.request(handle, gui_out)

    assert main([*flags, "--out", str(cli_out)]) == 0
    view.start()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60_000)
    assert jobs.wait(10_000) and view.result.stopped is None
    cli, gui = read_model_file(cli_out), read_model_file(gui_out)
    cli_run, gui_run = cli.extra["training"], gui.extra["training"]
    assert cli_run["config"] == gui_run["config"] and cli_run["epochs_done"] == gui_run["epochs_done"] == 1
    assert torch.allclose(cli_run["history"]["loss"], gui_run["history"]["loss"], atol=1e-6)
    assert cli.state_dict.keys() == gui.state_dict.keys()
    for name, weights in cli.state_dict.items():
        assert torch.allclose(weights, gui.state_dict[name], atol=1e-6), name


def test_a_run_in_several_processes_gets_the_command_of_the_forms_request(qtbot, tmp_path):
    """The arguments the tab passes to ``cnnexplorer train`` under torchrun make the form's own request."""
    from cnnexplorer.cli import build_parser
    from cnnexplorer.cli_train import train_request

    view = TrainingView(Session(), JobRunner())
    qtbot.addWidget(view)
    handle = load_model("builtin:lenet5", "cpu")
    fill_form(view.settings, tmp_path, tmp_path / "run.pt")
    view.settings.freeze_base.setChecked(True)
    view.settings.unfreeze_top.setValue(1)
    view.settings.base_lr.setValue(0.001)
    argv = view.settings.command_args(handle, tmp_path / "run.pt")
    assert train_request(build_parser().parse_args(argv), lambda args: handle) == view.settings.request(
        handle, tmp_path / "run.pt")


def test_the_tabs_picture_is_the_curves_picture_with_the_chosen_smoothing(make_window, tmp_path):
    import json

    from cnnexplorer.core.training.curves import CurvesOptions, History, curves_picture, render_curves

    window = make_window()
    view = window.view(TrainingView)
    window.show_view(TrainingView)
    assert view.picture() is None  # no run yet
    history = History(step=[1, 2, 3, 4], epoch=[0.5, 1, 1.5, 2], time=[0.1, 0.2, 0.3, 0.4],
                      loss=[2, 0.5, 1.5, 0.3], acc=[0.2, 0.6, 0.4, 0.8], lr=[0.1] * 4, images_per_s=[100] * 4,
                      val_step=[2, 4], val_epoch=[1, 2], val_time=[0.2, 0.4], val_loss=[1.4, 0.9], val_acc=[0.5, 0.75])
    run = view.curves.add_run("1: lenet5 on data", history)
    view.curves.run_list.setCurrentRow(0)
    view.curves.slider.setValue(90)
    pixels, settings = view.picture()
    expected_pixels, expected = curves_picture(history, run.name, CurvesOptions(smoothing=0.9))
    assert settings == expected == {"run": run.name, "smoothing": 0.9}
    assert np.array_equal(pixels, expected_pixels) and not np.array_equal(pixels, render_curves(history))
    exported = np.asarray(Image.open(view.export_png(tmp_path / "curves.png")).convert("RGB"))
    assert np.array_equal(exported, pixels)
    png, sidecar = window.export_current_view(tmp_path / "window.png")
    recorded = json.loads(sidecar.read_text())
    assert recorded["view"] == "curves" and recorded["settings"] == expected
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), pixels)


def test_a_model_loaded_elsewhere_after_a_run_replaces_the_runs_message(qtbot, tmp_path):
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    session.set_model(load_model("builtin:lenet5", "cpu"))
    train_one_epoch(qtbot, view, make_folder(tmp_path / "data"), tmp_path / "run.pt")
    jobs.wait(10_000)
    assert "epochs" in view.status.text()
    view.use_previous()  # the tab's own switches keep speaking of the run
    assert "before the run" in view.status.text()
    session.set_model(load_model("builtin:tinyvgg", "cpu"))  # as the Model dock would
    assert "builtin:tinyvgg" in view.status.text() and "epochs" not in view.status.text()


def test_the_data_preview_is_drawn_near_its_own_size(qtbot, tmp_path):
    """As many preview columns as fit the page at 1:1, so the class names under the tiles stay readable."""
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    view.resize(760, 560)
    view.show()
    session.set_model(load_model("builtin:lenet5", "cpu"))
    view.settings.data.setText(f"folder:{make_folder(tmp_path / 'data')}")
    view.show_preview()
    assert jobs.wait(30_000)
    qtbot.wait(50)
    (left, right), _ = view.preview.view_box.viewRange()
    assert view.preview.view_box.width() / (right - left) >= 0.8


def test_before_any_run_a_new_model_keeps_the_tabs_invitation(qtbot):
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    session.set_model(load_model("builtin:lenet5", "cpu"))
    assert view.status.text().startswith("Choose the data and settings, then Start.")
