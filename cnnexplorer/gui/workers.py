"""Runs core jobs (generators yielding ``Progress``) off the GUI thread, cancellable.

superqt's ``GeneratorWorker`` turns any ``RuntimeError`` raised by the generator into a
warning, and most torch failures (CUDA out of memory included) are RuntimeErrors; so this
module runs its own small loop in a ``QThreadPool`` that reports every outcome, closes the
generator in its own thread (so hooks are removed where they were added) and checks for a
cancel request between two yields. A reported job keeps nothing alive: no connection, pool
or handle holds on to what its job captured.

Error policy: ``UserError`` → a message; out of memory → the hint, with the CUDA cache
emptied; anything else is re-raised on the GUI thread, where ``sys.excepthook`` shows it
(the app's error dialog, or a failing test under pytest-qt).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from cnnexplorer.core.errors import OUT_OF_MEMORY_HINT, UserError, is_out_of_memory
from cnnexplorer.core.jobs import Job, Progress, pace_start, time_left


@dataclass(frozen=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None
    cancelled: bool = False


class JobHandle:
    """One started job: its kind, label and callbacks; ``cancel()`` is safe at any time.

    Its callbacks (see ``JobRunner.start``) run on the GUI thread. Once the job is reported
    (``done``), the handle drops them, so a view that keeps its last handle does not keep the
    inputs and results they captured.
    """

    def __init__(self, kind: str | None, label: str, on_result: Callable[[Any], None] | None = None,
                 on_item: Callable[[Any], None] | None = None,
                 on_error: Callable[[BaseException], bool] | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_cancelled: Callable[[], None] | None = None, on_finished: Callable[[], None] | None = None):
        self.kind, self.label = kind, label
        self.on_result, self.on_item, self.on_error = on_result, on_item, on_error
        self.on_progress, self.on_cancelled, self.on_finished = on_progress, on_cancelled, on_finished
        self.cancel_requested = False
        self.done = False
        self.shown: tuple[str, float] = (label, -1.0)  # what the status bar says of it: message, fraction
        self.started = time.monotonic()
        self.first: tuple[float, float] | None = None  # where its pace counts from: (time, fraction)

    @property
    def cancelled(self) -> bool:
        return self.cancel_requested

    def cancel(self) -> None:
        self.cancel_requested = True

    def _release(self) -> None:
        self.done = True
        self.on_result = self.on_item = self.on_error = None
        self.on_progress = self.on_cancelled = self.on_finished = None


class _Runnable:
    """Drives one generator in a pool thread and stops it at the next yield after a cancel.

    It reports through the runner's signals with its handle as the first argument, so no
    connection captures a job. The pool gets its bound ``run`` (a ``QRunnable`` would be kept
    by PySide as the pool's child when it finishes before ``start`` returns) and lets go of it,
    and so of ``make_job`` and everything it captured, once it has run.
    """

    def __init__(self, runner: JobRunner, job: JobHandle, make_job: Callable[[], Job]):
        self._yielded, self._finished = runner._yielded, runner._finished
        self._job, self._make_job = job, make_job

    def run(self) -> None:
        try:
            outcome = self._drive()
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the GUI thread
            outcome = _Outcome(error=exc)
        self._make_job = None
        self._finished.emit(self._job, outcome)

    def _drive(self) -> _Outcome:
        if self._job.cancel_requested:
            return _Outcome(cancelled=True)
        job = self._make_job()
        try:
            while not self._job.cancel_requested:
                try:
                    item = next(job)
                except StopIteration as stop:
                    return _Outcome(value=stop.value)
                self._yielded.emit(self._job, item)
            return _Outcome(cancelled=True)
        finally:
            job.close()


class JobRunner(QObject):
    """Starts jobs in its own thread pool and reports progress, results and errors.

    A job of a given ``kind`` supersedes (cancels) the running one of the same kind, so a
    newer "predict" makes an older one's result irrelevant. ``kind=None`` never supersedes.
    """

    progress = Signal(str, float)  # message, fraction (-1 when unknown)
    busy_changed = Signal(bool)
    message = Signal(str)  # a UserError or out-of-memory message for the user
    _yielded = Signal(object, object)  # JobHandle, item (from the worker thread)
    _finished = Signal(object, object)  # JobHandle, _Outcome (from the worker thread)

    def __init__(self, parent: QObject | None = None, max_threads: int = 4):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.active: list[JobHandle] = []
        self._yielded.connect(self._on_yielded)
        self._finished.connect(self._on_finished)

    def start(self, make_job: Callable[[], Job], *, kind: str | None = None, label: str = "",
              on_result: Callable[[Any], None] | None = None, on_item: Callable[[Any], None] | None = None,
              on_error: Callable[[BaseException], bool] | None = None,
              on_progress: Callable[[Progress], None] | None = None,
              on_cancelled: Callable[[], None] | None = None,
              on_finished: Callable[[], None] | None = None) -> JobHandle:
        """Run ``make_job()`` (called in the worker thread) and call back on the GUI thread.

        The thread starts once control is back in the event loop, so the slots still reacting
        to the same change (other views refreshing) finish first instead of competing with it.

        ``on_item`` gets every yielded item that is not a ``Progress``; ``on_progress`` gets this
        job's own ``Progress`` items (the status bar shows every job's); ``on_result`` the value
        it returns. ``on_error(exc)`` may handle an error itself by returning True; otherwise the
        error policy above applies. Results of cancelled jobs are dropped and ``on_cancelled``
        is called instead. ``on_finished`` is called last, however the job ended.
        """
        if kind is not None:
            for other in self.active:
                if other.kind == kind:
                    other.cancel()
        job = JobHandle(kind, label, on_result, on_item, on_error, on_progress, on_cancelled, on_finished)
        runnable = _Runnable(self, job, make_job)
        self.active.append(job)
        if len(self.active) == 1:
            self.busy_changed.emit(True)
        self.progress.emit(*job.shown)
        QTimer.singleShot(0, self, lambda: self.pool.start(runnable.run))
        return job

    def say(self, text: str) -> None:
        """Tell the user something they can act on (the window shows it without blocking)."""
        self.message.emit(text)

    def cancel_all(self) -> None:
        for job in self.active:
            job.cancel()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Process events until every job has finished and been reported; False on timeout."""
        deadline = time.monotonic() + timeout_ms / 1000
        while self.active and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            self.pool.waitForDone(5)
        QCoreApplication.processEvents()
        return not self.active

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel everything and block until the threads are done (for closeEvent)."""
        self.cancel_all()
        return self.pool.waitForDone(timeout_ms)

    def _on_yielded(self, job: JobHandle, item: Any) -> None:
        if job.cancelled:
            return
        if isinstance(item, Progress):
            fraction = item.fraction
            self._show(job, item.message or job.label, -1.0 if fraction is None else fraction)
            if job.on_progress is not None:
                job.on_progress(item)
            return
        if job.shown[0] != job.label:  # the job has moved on from the step its last progress named
            self._show(job, job.label, -1.0)
        if job.on_item is not None:
            job.on_item(item)

    def _show(self, job: JobHandle, message: str, fraction: float) -> None:
        if job.first is None and fraction >= 0:
            job.first = pace_start(job.started, time.monotonic(), fraction)
        left = time_left(time.monotonic() - job.first[0], fraction, job.first[1]) if job.first else ""
        job.shown = (f"{message} · {left}" if left else message, fraction)
        self.progress.emit(*job.shown)

    def _on_finished(self, job: JobHandle, outcome: _Outcome) -> None:
        on_result, on_error, on_cancelled, on_finished = job.on_result, job.on_error, job.on_cancelled, job.on_finished
        job._release()
        if job in self.active:
            self.active.remove(job)
        if not self.active:
            self.busy_changed.emit(False)
        else:  # the status bar speaks of a job still running, not of the one that ended
            self.progress.emit(*self.active[-1].shown)
        try:
            if job.cancelled:
                if on_cancelled is not None:
                    on_cancelled()
            elif outcome.error is not None:
                self._handle_error(outcome.error, on_error)
            elif on_result is not None:
                on_result(outcome.value)
        finally:
            if on_finished is not None:
                on_finished()

    def _handle_error(self, exc: BaseException, on_error: Callable[[BaseException], bool] | None) -> None:
        if on_error is not None and on_error(exc):
            return
        if isinstance(exc, UserError):
            self.message.emit(str(exc))
        elif is_out_of_memory(exc):
            import torch

            torch.cuda.empty_cache()
            self.message.emit(OUT_OF_MEMORY_HINT)
        else:
            raise exc


class JobStatus(QWidget):
    """The status-bar part of the runner: what runs, a progress bar and a Cancel button.

    It appears once jobs have run for ``SHOW_AFTER_MS``, so quick ones do not make the status
    bar flicker. A progress bar repaints at once on every new value, so progress is drawn at
    most every ``REFRESH_MS``: a report at once, the latest of the ones in between after that.
    """

    SHOW_AFTER_MS = 300
    REFRESH_MS = 50

    def __init__(self, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(160)
        self.bar.setMaximumHeight(16)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Cancel the running jobs")
        self.cancel_button.clicked.connect(runner.cancel_all)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.label, self.bar, self.cancel_button):
            layout.addWidget(widget)
        self._pending: tuple[str, float] | None = None
        self._appear = self._timer(self.SHOW_AFTER_MS, self._on_appear)
        self._refresh = self._timer(self.REFRESH_MS, self._show_pending)
        runner.progress.connect(self._on_progress)
        runner.busy_changed.connect(self._on_busy)
        self.setVisible(False)

    def _timer(self, interval_ms: int, slot) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(interval_ms)
        timer.timeout.connect(slot)
        return timer

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self._appear.start()
        else:
            self._appear.stop()
            self.setVisible(False)

    def _on_appear(self) -> None:
        self.setVisible(True)
        self._show_pending()

    def _on_progress(self, message: str, fraction: float) -> None:
        self._pending = (message, fraction)
        if not self.isHidden() and not self._refresh.isActive():
            self._show_pending()

    def _show_pending(self) -> None:
        if self._pending is None or self.isHidden():
            return
        message, fraction = self._pending
        self._pending = None
        self.label.setText(message[:60])
        if fraction < 0:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(fraction * 1000))
        self._refresh.start()
