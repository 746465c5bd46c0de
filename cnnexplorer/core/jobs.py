"""The progress/cancel protocol shared by GUI workers and the CLI.

A long computation is a generator: it yields small frozen dataclasses (``Progress`` or a
partial result) and ``return``s its final result. The GUI runs it in a worker thread and
cancels between two yields; the CLI drives the same generator with ``drive`` and a text
progress bar. One code path, two front ends.

The CLI can stop a job the way the GUI cancels one, between two yields: ``drive(job, stop=event)``
closes the job at its next yield once ``event`` is set (so a job saves what it has, as on a GUI
cancel) and raises ``KeyboardInterrupt`` (``cnnexplorer index`` sets it on Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, TextIO, TypeVar

T = TypeVar("T")
Job = Generator[Any, None, T]


@dataclass(frozen=True)
class Progress:
    """How far a job has come. ``total`` is None when the amount of work is unknown."""

    done: float
    total: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


def drive(job: Job[T], on_item: Callable[[Any], None] | None = None, stop: threading.Event | None = None) -> T:
    """Run ``job`` to its end, passing every yielded item to ``on_item``; return its result.

    If ``on_item`` raises, or ``stop`` is set (then ``KeyboardInterrupt``), the job is closed at the yield it
    stands at before the exception goes on."""
    try:
        while True:
            try:
                item = next(job)
            except StopIteration as done:
                return done.value
            if on_item is not None:
                on_item(item)
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
    except BaseException:
        job.close()
        raise


def map_items(job: Job[T], convert: Callable[[Any], Any]) -> Job[T]:
    """``job`` with each item it yields passed through ``convert`` (an item converted to None is
    dropped): a part of a larger job reports in the larger job's terms. ``job`` is closed with this."""
    try:
        while True:
            try:
                item = next(job)
            except StopIteration as stop:
                return stop.value
            converted = convert(item)
            if converted is not None:
                yield converted
    finally:
        job.close()


def time_left(elapsed_s: float, fraction: float, since: float = 0.0) -> str:
    """An estimate of a job's remaining time from its pace so far ("about 40 s left"): ``elapsed_s`` seconds
    took it from ``since`` to ``fraction`` (a resumed job starts part-way). "" while too early to tell (under
    2 s, or 2 % of the work) or when the job does not know its fraction."""
    if not (0.02 <= fraction - since and fraction < 1) or elapsed_s < 2:
        return ""
    left = elapsed_s * (1 - fraction) / (fraction - since)
    return f"about {left:.0f} s left" if left < 90 else f"about {left / 60:.0f} min left"


def pace_start(started: float, now: float, fraction: float) -> tuple[float, float]:
    """Where a job's pace counts from, given its first known ``fraction`` at ``now``: from its start at 0, or,
    when it said at once that it is part-way (a resumed job), from there."""
    return (now, fraction) if now - started < 2 else (started, 0.0)


class TextProgressBar:
    """Draws yielded ``Progress`` items as a one-line bar on a terminal stream.

    Only draws when the stream is a terminal, and at most ten times a second, so scripted
    use and ``--json`` output stay clean.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last = 0.0
        self._drawn = False
        self._created = time.monotonic()
        self._first: tuple[float, float] | None = None  # where the job's pace counts from: (time, fraction)
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, item: Any) -> None:
        if not (self.enabled and isinstance(item, Progress)):
            return
        now = time.monotonic()
        if now - self._last < 0.1 and item.fraction not in (None, 1.0):
            return
        self._last = now
        frac = item.fraction
        if frac is None:
            bar = f"{item.done:,.0f} …"
        else:
            self._first = self._first or pace_start(self._created, now, frac)
            filled = int(round(frac * self.width))
            left = time_left(now - self._first[0], frac, self._first[1])
            bar = "█" * filled + "░" * (self.width - filled) + f" {frac * 100:3.0f} %" + (f"  {left}" if left else "")
        self.stream.write(f"\r{item.message[:40]:<40} {bar}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
