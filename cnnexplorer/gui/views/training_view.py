"""The "Training" tab: train or fine-tune the current model with live curves and per-epoch snapshots.

The form makes a ``TrainRequest`` and the tab runs the same ``training_job`` as ``cnnexplorer train``
in a ``JobRunner`` worker; Pause/Continue/Stop go through its thread-safe ``RunControl``, so a stop
ends the run cleanly and its trained model at once becomes the session's current model (every view
follows), unless it ended worse than the model it started from or at chance level: then that model
stays current until the user picks "Use the trained model". "Back to the previous model" undoes a
switch. What a run will do to the model (fine-tune or scratch, head kept or replaced, frozen parts)
is shown before Start. The run buttons keep their places in every state: only their enabled state
changes. Each Start adds a run to the overlaid curves; the Gradient flow page shows each step's
per-layer gradient norms as a heat strip.

With more than one process in the form, Start launches ``cnnexplorer train … --progress-jsonl FILE``
under torchrun (``ProcessRun``) in a session of its own; the tab reads rank 0's progress lines on the
curves' timer and shows them as a run of its own, Stop ends the process group (the last epoch's
checkpoint stays), and the finished checkpoint is opened as the trained model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import (QApplication, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QPushButton, QScrollArea,
                               QSplitter, QTabWidget, QVBoxLayout, QWidget)

from cnnexplorer.core.distributed import Launch, launch_command
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.models import open_model
from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.training.progress_log import ProgressTail, item_of
from cnnexplorer.core.training.curves import curves_picture, write_curves_png
from cnnexplorer.core.training.gradient_flow import GradientFlow, GradientLog
from cnnexplorer.core.training.loop import BatchMetrics, EpochMetrics, RunControl, TrainResult
from cnnexplorer.core.training.plan import describe_plan
from cnnexplorer.core.training.run import RunReady, TrainRequest, preview_job, summarised_training_job
from cnnexplorer.core.training.snapshots import Snapshot
from cnnexplorer.core.training.state import read_resume, saved_progress
from cnnexplorer.gui.dialogs import save_as
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.widgets.gradient_strip import GradientStrip
from cnnexplorer.gui.widgets.training_curves import CurvesPanel, Run
from cnnexplorer.gui.widgets.training_settings import TrainingSettings
from cnnexplorer.gui.widgets.training_snapshots import SnapshotScrubber
from cnnexplorer.gui.workers import JobRunner

class ProcessRun:
    """``cnnexplorer train ARGV`` in ``processes`` processes under torchrun, in a process group of its own, with
    rank 0's progress lines read as they come and its output kept in a log beside the checkpoint."""

    def __init__(self, argv: list[str], out: Path, processes: int):
        self.out, self.final, self.cancelled = out, None, False
        self.progress = out.with_name(out.name + ".progress.jsonl")
        self.log = out.with_name(out.name + ".log")
        self.progress.unlink(missing_ok=True)
        self.tail = ProgressTail(self.progress)
        with open(self.log, "w", encoding="utf-8") as log:
            self.popen = subprocess.Popen(
                launch_command([*argv, "--progress-jsonl", str(self.progress)], Launch(nproc_per_node=processes)),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def records(self) -> list[dict]:
        return self.tail.read()

    def returncode(self) -> int | None:
        return self.popen.poll()

    def cancel(self) -> None:
        """End torchrun and every rank (SIGTERM to the process group; torchrun stops its workers)."""
        self.cancelled = True
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)

    def log_tail(self) -> str:
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if "error" in line.lower()]
        return lines[0] if lines else f"exit status {self.popen.returncode}; see {self.log}"


def _opened(path: str, device):
    """The checkpoint a multi-process run wrote, opened with its summary (to become the current model)."""
    handle = yield from open_model(path, device)
    return handle, summarize_handle(handle)


def skipped_note(skipped: dict[str, str]) -> str:
    """A sentence naming the unreadable files a run left out (the tooltip lists them all)."""
    if not skipped:
        return ""
    first = Path(next(iter(skipped))).name
    more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
    return f" Skipped {len(skipped)} unreadable file{'s' if len(skipped) > 1 else ''}: {first}{more}."


RUN_BUTTONS = ("Preview", "Resume file…", "Start", "Stop", "Pause", "Continue", "Use the trained model",
               "Back to the previous model")
GRADIENT_EVERY = 1  # the Gradient flow page records every step (a cheap norm per layer after backward)
PREVIEW_COLUMN_PX = 100  # a preview tile (96 px) and the gap beside it


class TrainingView(View):
    title = "Training"
    view_name = "curves"
    waiting_for = "train the model (Start), or open a run with Resume file…"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.settings = TrainingSettings()
        self.control: RunControl | None = None
        self.job = None
        self.run: Run | None = None
        self.result: TrainResult | None = None
        self.ready: RunReady | None = None
        self.previous = None  # the session's (model, summary) before the last run, to go back to
        self.trained = None  # the last run's (model, summary), to switch to
        self.curves = CurvesPanel()
        self.scrubber = SnapshotScrubber()
        self.gradients = GradientStrip()
        self.gradient_log = GradientLog()
        self.preview = ImageCanvas(fit="width")  # at most 1:1, so the class names under the tiles stay readable
        self.preview_label = QLabel("Preview shows a labelled batch as it comes (top) and augmented (bottom).")
        self.preview_label.setWordWrap(True)
        self.status = QLabel("Choose the data and settings, then Start.")
        self.status.setWordWrap(True)
        self.plan = QLabel()
        self.plan.setWordWrap(True)
        self.plan.setToolTip("What Start will do to the current model")

        self.buttons = {name: QPushButton(name) for name in RUN_BUTTONS + ("Export PNG…", "Export CSV…",
                                                                           "Export gradients CSV…")}
        actions = {"Export gradients CSV…": self._choose_gradient_csv, "Preview": self.show_preview, "Start": self.start, "Pause": self.pause, "Continue": self.resume,
                   "Stop": self.stop, "Resume file…": self._choose_resume, "Export PNG…": self._choose_png,
                   "Export CSV…": self._choose_csv, "Use the trained model": self.use_trained,
                   "Back to the previous model": self.use_previous}
        for name, button in self.buttons.items():
            button.clicked.connect(actions[name])
        self.buttons["Resume file…"].setToolTip("Continue a run from its checkpoint; its curves continue")
        self.buttons["Use the trained model"].setToolTip("Make the last run's model the current model")
        self.buttons["Back to the previous model"].setToolTip("Make the model the last run started from current again")
        self._set_running(False)
        self.settings.changed.connect(self._on_change)
        self.settings.set_model(session.model)
        session.model_changed.connect(self._on_model)
        session.layer_changed.connect(self.settings.suggest_layer)

        scroll = QScrollArea()
        scroll.setWidget(self.settings)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(200)
        run_grid = QGridLayout()
        for k, name in enumerate(RUN_BUTTONS[:6]):
            run_grid.addWidget(self.buttons[name], k // 2, k % 2)
        for row, name in enumerate(RUN_BUTTONS[6:], start=3):  # long names: a row each keeps the column narrow
            run_grid.addWidget(self.buttons[name], row, 0, 1, 2)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(run_grid)  # on top: texts of changing length below cannot move the buttons
        left_layout.addWidget(self.status)
        left_layout.addWidget(self.plan)
        left_layout.addWidget(scroll, 1)

        export_row = QHBoxLayout()
        export_row.addStretch(1)
        export_row.addWidget(self.buttons["Export PNG…"])
        export_row.addWidget(self.buttons["Export CSV…"])
        curves_page = QWidget()  # the curves get the page's whole height; the snapshots have a page of their own
        curves_layout = QVBoxLayout(curves_page)
        curves_layout.addWidget(self.curves, 1)
        curves_layout.addLayout(export_row)
        self.preview_page = preview_page = QWidget()
        preview_layout = QVBoxLayout(preview_page)
        preview_layout.addWidget(self.preview_label)
        preview_layout.addWidget(self.preview, 1)
        self.pages = QTabWidget()
        self.pages.addTab(curves_page, "Curves")
        self.pages.addTab(self.scrubber, "Snapshots")
        gradient_page = QWidget()
        gradient_layout = QVBoxLayout(gradient_page)
        gradient_layout.addWidget(self.gradients, 1)
        gradient_row = QHBoxLayout()
        gradient_row.addStretch(1)
        gradient_row.addWidget(self.buttons["Export gradients CSV…"])
        gradient_layout.addLayout(gradient_row)
        self.pages.addTab(gradient_page, "Gradient flow")
        self.pages.addTab(preview_page, "Data preview")

        self.process: ProcessRun | None = None
        QApplication.instance().aboutToQuit.connect(self._end_processes)  # no training processes outlive the app
        self.curves.timer.timeout.connect(self._check_cancelled)
        self.curves.timer.timeout.connect(self._poll_process)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.pages)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([270, 830])  # the settings form, the rest for the curves
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

    # run control -------------------------------------------------------------------------

    def _set_running(self, running: bool, paused: bool = False) -> None:
        self.buttons["Start"].setEnabled(not running)
        self.buttons["Resume file…"].setEnabled(not running)
        self.buttons["Preview"].setEnabled(not running)
        self.buttons["Pause"].setEnabled(running and not paused)
        self.buttons["Continue"].setEnabled(running and paused)
        self.buttons["Stop"].setEnabled(running)
        self.buttons["Use the trained model"].setEnabled(not running and self._can_switch_to(self.trained))
        self.buttons["Back to the previous model"].setEnabled(not running and self._can_switch_to(self.previous))
        if not running:
            self.update_plan()

    def _can_switch_to(self, pair) -> bool:
        return pair is not None and pair[0] is not self.session.model

    @property
    def running(self) -> bool:
        return (self.job is not None and not self.job.done) or self.process is not None

    def _out_path(self) -> Path:
        text = self.settings.out.text().strip()
        if text:
            return Path(text).expanduser()
        folder = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)) / "runs"
        return folder / time.strftime("run-%Y%m%d-%H%M%S.pt")

    def _form_request(self, out: Path | None = None) -> TrainRequest | None:
        """A new run of the current model with the form's settings, or None after saying in the tab what is
        wrong with them."""
        if self.session.model is None:
            return None
        try:
            request = self.settings.request(self.session.model, out)
            describe_plan(request)  # refuses transfer settings the model cannot take (a layer it lacks)
            return request
        except UserError as exc:
            self.status.setText(f"Cannot start: {exc}")
            return None

    def start(self) -> None:
        """Train the session's current model with the form's settings, as a new run on the curves."""
        request = self._form_request(self._out_path()) if not self.running else None
        if request is None:
            return
        out = request.out
        if out.exists() and not self.confirm("Overwrite checkpoint?", f"{out} exists; the run would write over it "
                                             "every epoch. Overwrite it?\n\nTo continue that run instead, use "
                                             "Resume file…"):
            return
        name = f"{request.model.spec.rsplit('/', 1)[-1]} on {request.data.rsplit('/', 1)[-1]}"
        if self.settings.processes.value() > 1:
            self._start_processes(request, name)
            return
        control = RunControl()
        request = replace(request, gradient_every=GRADIENT_EVERY)
        self._begin(name, control, lambda: summarised_training_job(request, control))

    def _start_processes(self, request: TrainRequest, name: str) -> None:
        """The run in ``processes`` processes under torchrun, followed through its progress file."""
        processes = self.settings.processes.value()
        try:
            argv = self.settings.command_args(request.model, request.out)
            request.out.parent.mkdir(parents=True, exist_ok=True)
            self.process = ProcessRun(argv, request.out, processes)
        except (UserError, OSError) as exc:
            self.status.setText(f"Cannot start: {exc}")
            return
        self.control = self.job = None
        self.run = self.curves.add_run(f"{len(self.curves.runs) + 1}: {name} ×{processes}")
        self.scrubber.set_snapshots([])
        self.gradients.clear()
        self.gradient_log = GradientLog()
        self.result = self.ready = self.trained = None
        self.previous = (self.session.model, self.session.summary)
        self.status.setText(f"Starting {processes} training processes with torchrun…")
        self._set_running(True)
        self.buttons["Pause"].setEnabled(False)  # the processes run on their own: Stop ends them
    def resume_from(self, path: str | Path) -> None:
        """Continue the run saved in ``path``; its curves and snapshots are shown first."""
        if self.running:
            return
        try:
            training, _ = read_resume(path)
        except UserError as exc:
            self.jobs.say(str(exc))
            return
        history, snapshots = saved_progress(training)
        device = self.session.model.device if self.session.model is not None else torch.device("cpu")
        request = TrainRequest(out=Path(path), resume=Path(path), download=self.settings.download.isChecked(),
                               device=device, gradient_every=GRADIENT_EVERY)
        control = RunControl()
        self._begin(f"{Path(path).name} (resumed)", control, lambda: summarised_training_job(request, control),
                    history, snapshots)

    def _begin(self, name: str, control: RunControl, make_job, history=None, snapshots=()) -> None:
        self.control = control
        self.run = self.curves.add_run(f"{len(self.curves.runs) + 1}: {name}", history)
        self.scrubber.set_snapshots(list(snapshots))
        self.gradients.clear()
        self.gradient_log = GradientLog()
        self.result = self.ready = self.trained = None
        self.previous = (self.session.model, self.session.summary) if self.session.model is not None else None
        self.status.setText("Preparing the data and the model…")
        self._set_running(True)
        self.job = self.jobs.start(make_job, label="training", on_item=self._on_item, on_result=self._on_result,
                                   on_error=self._on_error)

    def pause(self) -> None:
        if self.control is not None and self.running:
            self.control.pause()
            self._set_running(True, paused=True)
            self.status.setText(self.status.text().split(" · paused")[0] + " · paused")

    def resume(self) -> None:
        if self.control is not None and self.running:
            self.control.resume()
            self._set_running(True)

    def stop(self) -> None:
        """End the run after the current batch; its model becomes the current model. Processes are ended at once
        (their last epoch's checkpoint stays)."""
        if self.process is not None:
            self.process.cancel()
            self.status.setText("Stopping the training processes…")
            return
        if self.control is not None and self.running:
            self.control.stop()
            self.status.setText("Stopping after this batch…")

    def _check_cancelled(self) -> None:
        """A run cancelled from the status bar reports nothing: notice it and free the buttons."""
        if self.job is not None and self.job.done and self.job.cancelled and self.buttons["Stop"].isEnabled():
            self._set_running(False)
            self.status.setText("Training was cancelled; the current model is unchanged.")

    def _end_processes(self) -> None:
        if self.process is not None:
            self.process.cancel()

    def _poll_process(self) -> None:
        """Show what a multi-process run's rank 0 wrote since the last look; at its end, open its checkpoint."""
        run = self.process
        if run is None:
            return
        ended = run.returncode() is not None
        for record in run.records():
            item = item_of(record)
            if not isinstance(item, dict):
                self._on_item(item)
            elif item["kind"] == "ready":
                self.plan.setText(f"{item['plan']} {item['processes']} processes, a global batch of "
                                  f"{item['global_batch']}.")
            elif item["kind"] in ("done", "error"):
                run.final = item
        if not ended:
            return
        self.process = None
        final = run.final or {}
        if final.get("kind") == "done" and final.get("checkpoint"):
            self.status.setText(f"The processes finished: validation accuracy {final['final_val_acc']:.2%}; opening "
                                f"{final['checkpoint']}…")
            checkpoint = final["checkpoint"]
            device = self.session.model.device if self.session.model is not None else "cpu"
            self.jobs.start(lambda: _opened(checkpoint, device), label="opening the trained model",
                            on_result=self._on_process_model, on_error=self._on_error)
            return
        self._set_running(False)
        why = final.get("message") or ("stopped" if run.cancelled else run.log_tail())
        kept = f"; the last checkpoint is {run.out}" if run.out.exists() else ""
        self.status.setText(f"The training processes ended without finishing: {why}{kept}")

    def _on_process_model(self, value) -> None:
        handle, summary = value
        self.trained = (handle, summary)
        self.session.set_model(handle, summary)
        self._set_running(False)
        self.status.setText(f"Trained in several processes; {handle.spec} is now the current model (Back to the "
                            "previous model undoes this).")

    def _on_item(self, item) -> None:
        if self.run is None:
            return
        if isinstance(item, RunReady):
            self.ready = item
            self.plan.setText(item.plan)
        elif isinstance(item, BatchMetrics):
            self.run.history.add_batch(item)
            self.curves.mark_dirty(self.run)
            eta = "—" if item.eta_s is None else time.strftime("%H:%M:%S", time.gmtime(item.eta_s))
            paused = " · paused" if self.control is not None and self.control.paused else ""
            self.status.setText(f"step {item.step}/{item.total_steps} · epoch {item.epoch:.2f} · loss {item.loss:.4f} · "
                                f"lr {item.lr:.2e} · {item.images_per_s:,.0f} images/s · ETA {eta}{paused}")
        elif isinstance(item, EpochMetrics):
            self.run.history.add_epoch(item)
            self.curves.mark_dirty(self.run)
        elif isinstance(item, Snapshot):
            self.scrubber.append(item)
        elif isinstance(item, GradientFlow):
            self.gradients.add(item)
            self.gradient_log.add(item)

    def _on_result(self, value) -> None:
        result, summary = value
        skipped = result.skipped
        self.result, self.trained = result, (result.handle, summary)
        self.curves.redraw()
        acc = "—" if result.final_val_acc is None else f"{result.final_val_acc:.2%}"
        where = f"; checkpoint {result.checkpoint}" if result.checkpoint else ""
        ending = result.stopped or "finished"
        baseline = self.ready.baseline if self.ready is not None else None
        if baseline is None or not baseline.falls_short(result.final_val_acc):
            self.session.set_model(result.handle, summary)
            switch = " The trained model is now the current model (Back to the previous model undoes this)."
        else:
            why = ("No epoch was validated" if result.final_val_acc is None else
                   f"That is worse than the model it started from ({baseline.val_acc:.2%}) or no better than chance")
            switch = f" {why}, so the current model is unchanged; Use the trained model switches to it anyway."
        self._set_running(False)
        self.status.setText(f"{ending[0].upper()}{ending[1:]} after {result.epochs_done} epochs: validation accuracy "
                            f"{acc}{where}.{switch}{skipped_note(skipped)}")
        self.status.setToolTip("\n".join(f"skipped {path}: {reason}" for path, reason in skipped.items()))

    def use_trained(self) -> None:
        """Make the last run's model current, even one that ended worse than where it started."""
        self._switch_to(self.trained, "The trained model is now the current model.")

    def use_previous(self) -> None:
        """Go back to the model the last run started from."""
        self._switch_to(self.previous, "The model from before the run is the current model again.")

    def _switch_to(self, pair, text: str) -> None:
        if self.running or not self._can_switch_to(pair):
            return
        self.session.set_model(*pair)  # the buttons follow through _on_change
        self.status.setText(text)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        """The data's folders may have changed on disk since the plan was said: say it again."""
        super().showEvent(event)
        self._on_change()

    def _on_model(self, handle) -> None:
        """A model from elsewhere (the Model dock, the zoo, a file) makes the last run's message stale, and the
        form offers its layers."""
        self.settings.set_model(handle)
        ours = [pair[0] for pair in (self.trained, self.previous) if pair is not None]
        if not self.running and self.result is not None and not any(handle is model for model in ours):
            self.status.setText(f"The current model is now {handle.spec}: Start trains it. The curves of earlier "
                                "runs stay for comparison.")
            self.status.setToolTip("")
        self._on_change()

    def _on_change(self, *_) -> None:
        """The form or the current model changed: the plan and the switch buttons follow, except during a run."""
        if not self.running:
            self._set_running(False)

    def update_plan(self) -> None:
        """Say what Start would do to the current model with the form's settings."""
        model = self.session.model
        try:
            self.plan.setText("Open a model to train it." if model is None else
                              describe_plan(self.settings.request(model)) + self._processes_note())
        except UserError as exc:
            self.plan.setText(f"The settings cannot start a run: {exc}")

    def _processes_note(self) -> str:
        count = self.settings.processes.value()
        if count == 1:
            return ""
        batch = self.settings.batch_size.value()
        return (f" It runs in {count} processes (torchrun): a global batch of {count} × {batch} = "
                f"{count * batch}.")

    def _on_error(self, exc: BaseException) -> bool:
        self._set_running(False)
        self.status.setText(f"Training failed: {exc}" if isinstance(exc, UserError) else "Training failed.")
        return False

    # preview and export ------------------------------------------------------------------

    def show_preview(self) -> None:
        request = self._form_request()
        if request is None:
            return
        self.pages.setCurrentWidget(self.preview_page)
        columns = max(2, min(8, self.preview.width() // PREVIEW_COLUMN_PX))  # as many as fit at 1:1
        self.jobs.start(lambda: preview_job(request, columns=columns), kind="training-preview", label="data preview",
                        on_result=self._on_preview)

    def _on_preview(self, value) -> None:
        pixels, data = value
        self.preview.set_pixels(pixels)
        self.preview_label.setText(f"{data.spec}: {data.train_size:,} training and {data.val_size:,} validation "
                                   f"images, {len(data.class_names)} classes. Top: as loaded; bottom: augmented.")

    def _shown_run(self) -> Run | None:
        row = self.curves.run_list.currentRow()
        return self.curves.runs[row] if 0 <= row < len(self.curves.runs) else self.run

    def export_png(self, path: str | Path) -> Path | None:
        run = self._shown_run()
        return None if run is None else write_curves_png(path, run.history, self.curves.options())

    def export_csv(self, path: str | Path) -> Path | None:
        run = self._shown_run()
        return None if run is None else run.history.write_csv(path)

    def picture(self) -> tuple[np.ndarray, dict] | None:
        run = self._shown_run()
        if run is None or not run.history.step:
            return None
        return curves_picture(run.history, run.name, self.curves.options())

    def _choose_png(self) -> None:
        save_as(self, "Export curves", "curves.png", "PNG (*.png)", self.export_png)

    def _choose_csv(self) -> None:
        save_as(self, "Export metrics", "metrics.csv", "CSV (*.csv)", self.export_csv)

    def export_gradient_csv(self, path: str | Path) -> Path | None:
        """The last run's gradient flow, one row per step and layer."""
        return self.gradient_log.write_csv(path) if self.gradient_log.records else None

    def _choose_gradient_csv(self) -> None:
        save_as(self, "Export gradient flow", "gradients.csv", "CSV (*.csv)", self.export_gradient_csv)

    def _choose_resume(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Resume from checkpoint", "", "Checkpoints (*.pt *.pth *.ckpt)")
        if path:
            self.resume_from(path)
