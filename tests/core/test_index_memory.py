"""The index's memory: its cache files are streamed to disk, and freed heap memory goes back to the system."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from cnnexplorer.core import free_memory
from cnnexplorer.core.dataset import cache

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def app_heap(monkeypatch):
    """The heap as the app sets it, whatever glibc malloc tuning the machine running the tests has in its
    environment (with glibc's own small trim threshold, freed blocks would go back before a releaser could)."""
    for name in (*free_memory._USER_SETTINGS, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    assert free_memory.reuse_freed_blocks()


def test_a_state_file_streams_to_disk_and_reads_back_whole(tmp_path):
    big = np.arange(5 << 20, dtype=np.float32).reshape(-1, 1024)  # 20 MB, many chunks
    arrays = {"big": big, "scalar": np.array(3.5), "empty": np.zeros((0, 4), np.int64), "strided": big[::2, ::3]}
    tracemalloc.start()
    cache.write_state(tmp_path / "k.npz", {"key": "k", "sources": ["a.png"]}, arrays)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < (2 << 20) + arrays["strided"].nbytes  # a chunk at a time (plus the copy of the strided view)
    meta, back = cache.read_state(tmp_path / "k.npz", "k")
    assert meta["sources"] == ["a.png"] and back.keys() == arrays.keys()
    for name, value in arrays.items():
        assert back[name].shape == value.shape and back[name].dtype == value.dtype and np.array_equal(back[name], value)
    with pytest.raises(cache.Unreadable, match="another index"):
        cache.read_state(tmp_path / "k.npz", "other")
    assert cache.read_state(tmp_path / "absent.npz", "k") is None


def blocks(megabytes: int) -> list[bytearray]:
    """``megabytes`` of 64 KB heap blocks, touched."""
    return [bytearray(b"x" * (64 << 10)) for _ in range(megabytes * 16)]


def resident() -> int:
    """The process's resident set size in bytes."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def grown_heap(megabytes: int) -> list[bytearray]:
    """64 KB blocks, touched, until the heap has grown by ``megabytes`` (the heap may hold free memory left by
    earlier tests, and the garbage collector may free more while the blocks are made)."""
    start, held = free_memory.heap_size(), []
    while free_memory.heap_size() < start + (megabytes << 20):
        held += blocks(4)
    return held


def in_fresh_process(body) -> None:
    """``body`` (a function of this module) run in a fresh process, as the app sets its heap. The heap's size
    counts every thread's heaps, and in a test worker the threads an earlier test left (a job finishing,
    Qt's) free whole heaps of their own at any moment, tens of MB at once."""
    env = {k: v for k, v in os.environ.items() if k not in (*free_memory._USER_SETTINGS, "GLIBC_TUNABLES")}
    code = f"import cnnexplorer, tests.core.test_index_memory as t; t.{body.__name__}()"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_freed_heap_memory_goes_back_once_the_heap_has_grown():
    in_fresh_process(freed_heap_memory_goes_back)


def freed_heap_memory_goes_back():
    """Blocks freed under a block still held: only a trim returns them, once the heap grew past the slack."""
    release = free_memory.Releaser(slack=8 << 20)
    assert not release()  # the first step sets the level
    held = grown_heap(50)
    top = bytearray(64 << 10)  # above them: the heap's top stays in use
    grown = resident()
    del held
    assert release()
    assert resident() < grown - (25 << 20)
    assert not release()  # nothing grew since
    del top


def test_a_loop_that_reuses_its_working_set_is_not_trimmed():
    in_fresh_process(a_loop_reusing_its_working_set)


def a_loop_reusing_its_working_set():
    """Each step takes its working set from what the last one freed: the heap does not grow, so nothing is
    returned (the next step would fault it all back in), however far the resident size moves; a record the
    loop keeps growing past the slack is returned for."""
    release = free_memory.Releaser(slack=8 << 20)
    work = grown_heap(40)
    keep = bytearray(64 << 10)
    del work
    assert not release()
    for _ in range(3):
        work = blocks(40)
        del work
        assert not release()
    kept = grown_heap(30)
    assert release()
    assert not release()
    del kept, keep


def test_freed_blocks_are_reused_without_new_pages(monkeypatch):
    """After ``reuse_freed_blocks`` (set when the package is imported) a freed 16 MB block is reused:
    taking it again costs no page faults; a user's own glibc malloc tuning is left alone."""
    first = np.ones(16 << 20, np.uint8)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    again = np.ones(16 << 20, np.uint8)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 1000, faults  # 4,096 pages if it were mapped afresh
    del again
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert not free_memory.reuse_freed_blocks()
