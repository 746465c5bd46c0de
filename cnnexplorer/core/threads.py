"""Small tensor work on the calling thread alone.

The package makes torch's idle intra-op threads sleep (``OMP_WAIT_POLICY=PASSIVE``, see the package
notes), so every parallel operation first wakes them. For a tensor of some ten thousand values the
wake-up costs more than the work: the same histogram of 49,000 values took 830 µs with two threads
and 120 µs with one (2-core CPU). Code that runs many such small operations in a row, like the
dataset index's per-batch summaries, runs them inside ``one_thread(values)``; from ``SMALL`` values
on, the threads pay for themselves again (the index's summary of a batch's sampled values: 3.6 ms on
two threads and 3.7 ms on one at 262,000 values, 5.6 and 9.2 ms at 524,000).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

SMALL = 1 << 18  # values: below this, work on one thread is faster than waking the others


@contextlib.contextmanager
def one_thread(values: int) -> Iterator[None]:
    """torch's intra-op threads set to one for a block of work on about ``values`` values (fewer than ``SMALL``),
    and set back after it; a larger block keeps them."""
    threads = torch.get_num_threads()
    if threads == 1 or values >= SMALL:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
