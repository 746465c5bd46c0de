"""Small tensor work on the calling thread alone.

The package makes torch's idle intra-op threads sleep (``OMP_WAIT_POLICY=PASSIVE``, see the package
notes), so every parallel operation first wakes them. For a tensor of some ten thousand values the
wake-up costs more than the work: the same histogram of 49,000 values took 830 µs with two threads
and 120 µs with one (2-core CPU). Code that runs many such small operations in a row, like the
dataset index's per-batch summaries, runs them inside ``one_thread()``.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch's intra-op threads set to one for the block, and set back after it."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
