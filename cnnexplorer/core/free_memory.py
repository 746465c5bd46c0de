"""Hand memory the process has freed back to the system.

glibc keeps freed blocks in its heap for reuse, and a long loop whose allocations shift (a pass over
a probe set: each batch's activations, summaries and records) leaves the heap holding more and
more free memory: the process's resident size then grows with the length of the loop, not with
what it holds. ``Releaser`` asks glibc to return its free pages (``malloc_trim``, a few
milliseconds) when the resident size has grown since it last did; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


@functools.lru_cache(maxsize=1)
def _trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def resident() -> int | None:
    """The process's resident set size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Releaser:
    """Call after each step of a loop: returns the heap's free memory to the system when the resident
    size is more than ``slack`` bytes above what it was after the last return."""

    def __init__(self, slack: int = 8 << 20):
        self.slack = slack
        self.settled: int | None = None

    def __call__(self) -> bool:
        """True when memory was returned."""
        trim, size = _trim(), resident()
        if trim is None or size is None or (self.settled is not None and size <= self.settled + self.slack):
            return False
        trim(0)
        self.settled = resident()
        return True
