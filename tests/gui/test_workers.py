"""JobRunner: jobs run off the GUI thread, report progress, cancel between yields, and follow
the error policy (user errors → message, out of memory → hint, bugs → the excepthook)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from cnnexplorer.core.errors import OUT_OF_MEMORY_HINT, UserError
from cnnexplorer.core.jobs import Progress
from cnnexplorer.gui.workers import JobRunner, JobStatus


@pytest.fixture
def runner(qtbot):
    runner = JobRunner()
    yield runner
    runner.shutdown()


def test_items_progress_and_result_arrive_on_the_gui_thread(qtbot, runner):
    seen, progress, busy, threads = [], [], [], []
    runner.progress.connect(lambda message, fraction: progress.append((message, fraction)))
    runner.busy_changed.connect(busy.append)

    def job():
        threads.append(threading.current_thread())
        yield Progress(1, 4, "step")
        yield "partial"
        return 42

    results = []
    runner.start(job, label="adding", on_result=lambda value: (results.append(value), seen.append(threading.current_thread())),
                 on_item=lambda item: seen.append(item))
    assert runner.wait(5000)
    assert results == [42]
    assert seen[0] == "partial" and seen[1] is threading.main_thread()
    assert threads[0] is not threading.main_thread()
    assert ("step", 0.25) in progress
    assert busy == [True, False]


def test_cancel_stops_between_yields_and_closes_the_job_in_its_thread(qtbot, runner):
    closed_in, steps = [], []

    def endless():
        try:
            while True:
                steps.append(1)
                time.sleep(0.005)
                yield Progress(len(steps))
        finally:
            closed_in.append(threading.current_thread())

    results = []
    job = runner.start(endless, on_result=results.append)
    qtbot.waitUntil(lambda: len(steps) > 3, timeout=5000)
    job.cancel()
    assert runner.wait(5000)
    count = len(steps)
    time.sleep(0.05)
    assert len(steps) == count and results == []
    assert closed_in and closed_in[0] is not threading.main_thread()


def test_a_newer_job_of_the_same_kind_supersedes_the_older(qtbot, runner):
    results = []

    def slow(value):
        for _ in range(200):
            time.sleep(0.005)
            yield Progress(0)
        return value

    def fast(value):
        yield Progress(0)
        return value

    first = runner.start(lambda: slow("old"), kind="predict", on_result=results.append)
    runner.start(lambda: fast("other kind"), kind="other", on_result=results.append)
    runner.start(lambda: fast("new"), kind="predict", on_result=results.append)
    assert runner.wait(5000)
    assert first.cancelled
    assert sorted(results) == ["new", "other kind"]


def test_user_error_and_out_of_memory_become_messages(qtbot, runner):
    messages = []
    runner.message.connect(messages.append)

    def fails(exc):
        yield Progress(0)
        raise exc

    runner.start(lambda: fails(UserError("no such layer 'x'; pick one from the tree")))
    runner.start(lambda: fails(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")))
    assert runner.wait(5000)
    assert sorted(messages) == sorted(["no such layer 'x'; pick one from the tree", OUT_OF_MEMORY_HINT])


def test_on_error_can_handle_an_error_itself(qtbot, runner):
    handled, messages = [], []
    runner.message.connect(messages.append)

    def fails():
        raise UserError("needs a decision")
        yield

    runner.start(fails, on_error=lambda exc: handled.append(exc) or True)
    assert runner.wait(5000)
    assert [str(e) for e in handled] == ["needs a decision"] and messages == []


def test_a_programming_error_reaches_the_excepthook_and_the_runner_stays_usable(qtbot, runner):
    def buggy():
        yield Progress(0)
        return {}["missing"]

    with qtbot.captureExceptions() as exceptions:
        runner.start(buggy)
        assert runner.wait(5000)
    assert len(exceptions) == 1 and exceptions[0][0] is KeyError

    def fine():
        yield Progress(0)
        return "still works"

    results = []
    runner.start(fine, on_result=results.append)
    assert runner.wait(5000) and results == ["still works"]


def test_shutdown_cancels_and_waits_for_the_threads(qtbot, runner):
    ended = threading.Event()

    def long_job():
        try:
            for _ in range(10_000):
                time.sleep(0.002)
                yield Progress(0)
        finally:
            ended.set()

    runner.start(long_job)
    runner.start(long_job)
    qtbot.wait(20)
    started = time.monotonic()
    assert runner.shutdown(5000)
    assert ended.is_set() and time.monotonic() - started < 1.0


def test_status_widget_shows_progress_while_busy_and_cancels(qtbot, runner):
    status = JobStatus(runner)
    qtbot.addWidget(status)
    status.show()

    def job():
        for i in range(10_000):
            time.sleep(0.002)
            yield Progress(i, 10_000, "crunching")

    results = []
    runner.start(job, on_result=results.append)
    qtbot.waitUntil(lambda: status.isVisible() and status.bar.value() > 0, timeout=5000)
    assert status.label.text() == "crunching"
    status.cancel_button.click()
    assert runner.wait(5000)
    assert not status.isVisible() and results == []
