"""Small tensor work on the calling thread alone.

The package makes torch's idle intra-op threads sleep (``OMP_WAIT_POLICY=PASSIVE``, see the package
notes), so every parallel operation first wakes them. For a tensor of some ten thousand values the
wake-up costs more than the work: the same histogram of 49,000 values took 830 µs with two threads
and 120 µs with one (2-core CPU). Code that runs many such small operations in a row, like the
dataset index's per-batch summaries, runs them inside ``one_thread(values)``; from ``SMALL`` values
on, the threads pay for themselves again (the index's summary of a batch's sampled values: 3.6 ms on
two threads and 3.7 ms on one at 262,000 values, 5.6 and 9.2 ms at 524,000).

The count is the calling thread's alone, set through the OpenMP runtime's ``omp_set_num_threads``.
``torch.set_num_threads`` would not do: it also sets the count every thread takes for good at its
first parallel operation, so a job starting on another thread while one is set (feature vis beside a
running index) kept a single thread. Where torch's threads do not come from an OpenMP runtime found
that way, the block keeps its threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from typing import Callable, Iterator

import torch

SMALL = 1 << 18  # values: below this, work on one thread is faster than waking the others


@functools.lru_cache(maxsize=1)
def _thread_count_setter() -> Callable[[int], None] | None:
    """The loaded OpenMP runtime's ``omp_set_num_threads``, if it is the one torch's intra-op threads follow."""
    try:
        setter = ctypes.CDLL(None).omp_set_num_threads
    except (OSError, AttributeError, TypeError):
        return None
    threads = torch.get_num_threads()  # also gives this thread torch's count first, as its first parallel step would
    setter(threads + 1)
    follows = torch.get_num_threads() == threads + 1
    setter(threads)
    return setter if follows else None


@contextlib.contextmanager
def one_thread(values: int) -> Iterator[None]:
    """The calling thread's intra-op threads set to one for a block of work on about ``values`` values (fewer than
    ``SMALL``), and set back after it; a larger block keeps them, and so do other threads."""
    setter, threads = _thread_count_setter(), torch.get_num_threads()
    if setter is None or threads == 1 or values >= SMALL:
        yield
        return
    setter(1)
    try:
        yield
    finally:
        setter(threads)
