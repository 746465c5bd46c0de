"""JobRunner: jobs run off the GUI thread, report progress, cancel between yields, and follow
the error policy (user errors → message, out of memory → hint, bugs → the excepthook), and
let go of everything a job captured once it is reported, whatever its outcome."""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref

import pytest
import torch
from PySide6.QtWidgets import QWidget

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
    """Shutdown while a job runs (not merely queued: a busy machine may start the thread late) cancels it
    and waits for its thread."""
    running, ended = threading.Event(), threading.Event()

    def long_job():
        try:
            for _ in range(10_000):
                running.set()
                time.sleep(0.002)
                yield Progress(0)
        finally:
            ended.set()

    runner.start(long_job)
    runner.start(long_job)
    qtbot.waitUntil(running.is_set, timeout=10_000)
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



def test_status_stays_hidden_for_quick_jobs_and_draws_a_burst_of_progress_sparingly(qtbot, runner):
    holder = QWidget()
    status = JobStatus(runner, holder)
    qtbot.addWidget(holder)
    holder.show()
    drawn = []
    status.bar.valueChanged.connect(drawn.append)

    def quick(i):
        yield Progress(1, 2, f"quick {i}")
        return i

    for i in range(5):
        runner.start(lambda i=i: quick(i))
        assert runner.wait(5000)
    assert status.isHidden() and status.label.text() == "" and drawn == []

    release = threading.Event()

    def burst():
        for i in range(1, 1001):
            yield Progress(i, 1000, "burst")
        release.wait(5)
        yield Progress(0)

    runner.start(burst)
    qtbot.waitUntil(lambda: status.bar.value() == 1000, timeout=5000)
    assert status.isVisible() and status.label.text() == "burst" and len(drawn) < 20
    release.set()
    assert runner.wait(5000) and status.isHidden()


JOBS = 200
OUTCOMES = ["result", "cancelled", "superseded", "user error", "handled error", "bug", "on_result raises"]


def alive(refs: list[weakref.ref]) -> int:
    gc.collect()
    return sum(ref() is not None for ref in refs)


def start_jobs(runner, outcome: str, seen: list) -> tuple[list[weakref.ref], list[weakref.ref]]:
    """``JOBS`` jobs ending in ``outcome``, each capturing an input tensor in its job and callbacks.

    Returns weak references to the handles and to the inputs, items and results.
    """
    handles, data = [], []
    for i in range(JOBS):
        pixels = torch.full((10_000,), float(i))

        def job(pixels=pixels):
            yield Progress(0, 2, "working")
            yield pixels[:10].clone()
            while outcome == "cancelled":
                time.sleep(0.001)
                yield Progress(1, 2)
            if outcome in ("user error", "handled error"):
                raise UserError(f"job {pixels[0]:.0f} cannot go on")
            if outcome == "bug":
                return {}["missing"]
            return pixels * 2

        def on_result(result, pixels=pixels):
            seen.append(weakref.ref(result))
            if outcome == "on_result raises":
                raise ValueError(f"the view could not show job {pixels[0]:.0f}")

        handle = runner.start(job, kind="same" if outcome == "superseded" else None, on_result=on_result,
                              on_item=lambda item, pixels=pixels: seen.append(weakref.ref(item)),
                              on_error=lambda exc, pixels=pixels: outcome == "handled error")
        handles.append(weakref.ref(handle))
        data.append(weakref.ref(pixels))
    return handles, data


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_reported_jobs_release_their_handles_inputs_items_and_results(qtbot, runner, outcome):
    seen, messages = [], []
    runner.message.connect(messages.append)
    with qtbot.captureExceptions() as exceptions:
        handles, data = start_jobs(runner, outcome, seen)
        if outcome == "cancelled":
            qtbot.waitUntil(lambda: len(seen) >= 4, timeout=5000)  # some run, the rest wait for a thread
            runner.cancel_all()
        assert runner.wait(10_000)
    assert len(exceptions) == (JOBS if outcome in ("bug", "on_result raises") else 0)
    exceptions.clear()  # their tracebacks hold the frames that raised them, as does sys.last_traceback
    for name in ("last_exc", "last_type", "last_value", "last_traceback"):
        if hasattr(sys, name):
            delattr(sys, name)
    assert len(messages) == (JOBS if outcome == "user error" else 0)
    assert len(seen) >= (1 if outcome == "superseded" else 4)
    assert alive(handles) == 0 and alive(data) == 0 and alive(seen) == 0


def test_a_handle_kept_by_its_caller_holds_nothing_of_its_job(qtbot, runner):
    results = []

    def start(pixels):
        return runner.start(lambda: (yield from ()) or pixels + 1, on_result=results.append), weakref.ref(pixels)

    handle, pixels = start(torch.zeros(10_000))
    assert runner.wait(5000)
    assert handle.done and not handle.cancelled and len(results) == 1
    result = weakref.ref(results.pop())
    assert alive([pixels, result]) == 0
    assert (handle.on_result, handle.on_item, handle.on_error, handle.on_cancelled) == (None,) * 4


def test_on_cancelled_is_called_once_a_cancelled_job_has_stopped(qtbot, runner):
    stopped, results = [], []

    def endless():
        while True:
            time.sleep(0.002)
            yield Progress(0)

    running = runner.start(endless, on_result=results.append)
    running.on_cancelled = lambda: stopped.append("running")
    finishing = runner.start(lambda: (yield from ()) or 1, on_result=results.append)
    finishing.on_cancelled = lambda: stopped.append("finishing")
    qtbot.waitUntil(lambda: results == [1], timeout=5000)
    running.cancel()
    assert runner.wait(5000)
    assert stopped == ["running"] and results == [1] and running.done


def test_each_job_has_its_own_progress_stream_and_a_finished_callback(qtbot, runner):
    def counting(name: str, steps: int):
        for i in range(steps):
            yield Progress(i + 1, steps, f"{name} {i + 1}")
            time.sleep(0.005)
        return name

    seen: dict[str, list[str]] = {"a": [], "b": []}
    ended: list[str] = []
    for name, steps in (("a", 3), ("b", 5)):
        runner.start(lambda name=name, steps=steps: counting(name, steps), label=name,
                     on_progress=lambda item, name=name: seen[name].append(item.message),
                     on_finished=lambda name=name: ended.append(name))
    def failing():
        raise UserError("bad input")
        yield

    errors: list[BaseException] = []
    failing_job = runner.start(failing, label="c", on_error=lambda exc: errors.append(exc) or True,
                               on_finished=lambda: ended.append("c"))
    assert runner.wait(10_000)
    assert seen == {"a": ["a 1", "a 2", "a 3"], "b": ["b 1", "b 2", "b 3", "b 4", "b 5"]}
    assert sorted(ended) == ["a", "b", "c"] and failing_job.done and str(errors[0]) == "bad input"
    cancelled = runner.start(lambda: counting("d", 1000), on_finished=lambda: ended.append("d"))
    cancelled.cancel()
    assert runner.wait(10_000) and ended[-1] == "d"


def test_the_status_bar_speaks_only_of_running_jobs_and_their_current_step(qtbot, runner):
    """A finished job's message does not stay up while another runs, nor does a step the job has left."""
    status = JobStatus(runner)
    qtbot.addWidget(status)
    release = threading.Event()

    def long_job():
        yield Progress(0, None, "opening the data")
        yield "first batch"  # the job has moved on: its opening message is over
        release.wait(10)
        return "trained"

    def short_job():
        yield Progress(1, 2, "predicting")
        return "done"

    seen: list[str] = []
    runner.progress.connect(lambda message, fraction: seen.append(message))
    long = runner.start(long_job, label="training", on_item=lambda item: None)
    qtbot.waitUntil(lambda: "training" in seen[1:], timeout=5000)  # back to its label after the first item
    runner.start(short_job, label="predicting")
    qtbot.waitUntil(lambda: len(runner.active) == 1, timeout=5000)
    assert seen[-1] == "training"
    qtbot.waitUntil(lambda: status.label.text() == "training", timeout=2000)  # drawn at most every 50 ms
    release.set()
    assert runner.wait(10_000) and long.done


def test_time_left_is_estimated_from_the_pace_so_far():
    from cnnexplorer.core.jobs import time_left

    assert time_left(10.0, 0.25) == "about 30 s left"
    assert time_left(60.0, 0.2) == "about 4 min left"
    assert time_left(1.0, 0.5) == "" and time_left(30.0, 0.01) == "" and time_left(30.0, -1.0) == ""
    assert time_left(10.0, 0.75, since=0.5) == "about 10 s left"  # a resumed job's pace counts from where it began
    assert time_left(10.0, 0.51, since=0.5) == ""


def test_a_long_job_shows_its_time_left_in_the_status_bar(qtbot, runner):
    status = JobStatus(runner)
    qtbot.addWidget(status)
    go, end = threading.Event(), threading.Event()

    def counting():
        go.wait(10)
        yield Progress(1, 4, "attacking")
        end.wait(10)

    job = runner.start(counting, label="robustness curve")
    job.started -= 30  # as if the job had been running for 30 s: a quarter done, 90 s (1.5 min) to go
    go.set()
    qtbot.waitUntil(lambda: status.label.text() == "attacking · about 2 min left", timeout=5000)
    end.set()
    assert runner.wait(10_000)
