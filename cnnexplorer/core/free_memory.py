"""How the process's heap holds freed memory: kept for reuse between passes, handed back when it creeps.

``reuse_freed_blocks`` (set when the package is imported) makes glibc keep the blocks a forward pass
frees for the next one: by default it maps each large tensor afresh and trims the heap's top after
every pass, so every batch pays the kernel for zeroed pages again (measured on 2 cores, the shapes
model at batch 64: 440,000 page faults per 2,000 images and 2.1 s of system time in a 4.6 s pass;
with the blocks kept, 16 faults and the pass 3.2 s).

glibc keeps freed blocks in its heap for reuse, and a long loop whose allocations shift (a pass over
a probe set: each batch's activations, summaries and records) leaves the heap holding more and
more free memory: the process's resident size then grows with the length of the loop, not with
what it holds. ``Releaser`` asks glibc to return its free pages (``malloc_trim``, a few
milliseconds) when the heap itself has grown past the loop's working set; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks up to this size come from the heap and are reused
TRIM_THRESHOLD = 256 << 20  # free memory the heap's top may hold before glibc returns it by itself
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


@functools.lru_cache(maxsize=1)
def _glibc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def _trim():
    libc = _glibc()
    return libc.malloc_trim if libc is not None else None


def reuse_freed_blocks() -> bool:
    """Keep freed blocks of up to ``MMAP_THRESHOLD`` in the heap, and up to ``TRIM_THRESHOLD`` of free memory at
    its top, so that each batch reuses the last one's pages; True when set. Not on another C library, nor
    when the user set glibc's malloc tuning in the environment (theirs wins)."""
    libc = _glibc()
    if libc is None or any(os.environ.get(name) for name in _USER_SETTINGS) or "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.lru_cache(maxsize=1)
def _mallinfo2():
    libc = _glibc()
    info = getattr(libc, "mallinfo2", None) if libc is not None else None  # glibc 2.33 and later
    if info is not None:
        info.restype = _MallInfo2
    return info


def heap_size() -> int | None:
    """The bytes glibc's heaps hold from the system, in use or free (``mallinfo2``'s ``arena``), else None."""
    info = _mallinfo2()
    return int(info().arena) if info is not None else None


class Releaser:
    """Call after each step of a loop: returns the heap's free memory to the system once the heap has grown
    more than ``slack`` bytes past its size after the first step (or after the step that follows a return).

    Between steps a loop's working set lies freed in the heap, for the next step to reuse; returning
    it would make that step fault every page of it back in (on the shapes model some 30,000 pages, a
    tenth of a batch's time). So the measure is the heap's size (``heap_size``), not the resident size:
    records the loop fills in (a thumbnail array's pages) raise the resident size but are not free
    memory, while a heap that grows by ``slack`` is one whose freed blocks no longer fit what the loop
    asks for, and only then does a return pay for itself.
    """

    def __init__(self, slack: int = 16 << 20):
        self.slack = slack
        self.level: int | None = None

    def __call__(self) -> bool:
        """True when memory was returned."""
        trim, size = _trim(), heap_size()
        if trim is None or size is None:
            return False
        if self.level is None:
            self.level = size
            return False
        if size <= self.level + self.slack:
            return False
        trim(0)
        self.level = None  # set by the next step: a return also shrinks the heap's top, which that step takes back
        return True
