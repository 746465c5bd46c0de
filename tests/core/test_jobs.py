"""map_items: a part of a job reports in the larger job's terms, returns its result and is closed with it."""

from __future__ import annotations

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
