"""map_items: a part of a job reports in the larger job's terms, returns its result and is closed with it;
drive closes a job at its yield when the caller fails or asks it to stop."""

from __future__ import annotations

import threading

import pytest

from cnnexplorer.core.jobs import Progress, drive, map_items


def counting(closed: list):
    try:
        for step in range(3):
            yield step
        return "result"
    finally:
        closed.append(True)


def test_items_are_converted_or_dropped_and_the_result_returned():
    items, closed = [], []
    result = drive(map_items(counting(closed), lambda step: Progress(step, 3) if step != 1 else None), items.append)
    assert result == "result" and closed == [True]
    assert [item.done for item in items] == [0, 2]


def test_closing_the_mapped_job_closes_the_part():
    closed = []
    job = map_items(counting(closed), lambda step: step)
    assert next(job) == 0
    job.close()
    assert closed == [True]


def five_steps(seen: list):
    """A job of five steps that records where it was closed."""
    try:
        for step in range(5):
            yield Progress(step, 5)
            seen.append(step)
    except GeneratorExit:
        seen.append("closed at a yield")
        raise
    return "done"


def test_drive_closes_the_job_at_its_yield_when_on_item_fails():
    seen = []

    def fails(item):
        if item.done == 2:
            raise ValueError("the bar broke")

    with pytest.raises(ValueError, match="the bar broke"):
        drive(five_steps(seen), fails)
    assert seen == [0, 1, "closed at a yield"]


def test_a_stop_event_closes_the_job_at_its_next_yield_as_a_keyboard_interrupt():
    seen, stop = [], threading.Event()

    def press_ctrl_c(item):
        if item.done == 1:
            stop.set()

    with pytest.raises(KeyboardInterrupt):
        drive(five_steps(seen), press_ctrl_c, stop)
    assert seen == [0, "closed at a yield"]
    assert drive(five_steps(seen := []), None, threading.Event()) == "done" and seen == [0, 1, 2, 3, 4]
