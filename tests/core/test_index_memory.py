"""The index's memory: its cache files are streamed to disk, and freed heap memory goes back to the system."""

from __future__ import annotations

import resource
import tracemalloc

import numpy as np
import pytest

from cnnexplorer.core import free_memory
from cnnexplorer.core.dataset import cache


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
    assert cache.read_state(tmp_path / "k.npz", "other") is None


def blocks(megabytes: int) -> list[bytearray]:
    """``megabytes`` of 64 KB heap blocks, touched."""
    return [bytearray(b"x" * (64 << 10)) for _ in range(megabytes * 16)]


def test_freed_heap_memory_goes_back_to_the_system():
    """Blocks freed under a block still held: only a trim returns them, before the loop and after a step."""
    before_loop = blocks(50)
    top = bytearray(64 << 10)  # above them: the heap's top stays in use
    grown = free_memory.resident()
    del before_loop
    release = free_memory.Releaser(slack=1 << 20)
    assert free_memory.resident() < grown - (25 << 20)  # what was freed before the loop
    assert not release()  # the first step sets the level
    held = blocks(50)
    above_held = bytearray(64 << 10)
    grown = free_memory.resident()
    del held
    assert release()
    assert free_memory.resident() < grown - (25 << 20)
    assert not release()  # the next step sets the level again
    assert not release()  # nothing grew since
    del top, above_held


def test_a_step_that_takes_back_its_working_set_is_not_trimmed_again():
    """After a return the next step takes its working set back from the system: that sets the level, so the
    return (and the page faults after it) is not paid again every step; growth past the slack is."""
    release = free_memory.Releaser(slack=8 << 20)
    assert not release()
    kept = blocks(40)  # what the loop keeps grows
    assert release()
    work = blocks(50)
    keep = bytearray(64 << 10)
    del work  # a step: its working set taken from the system, used and freed (the heap holds it)
    assert not release()
    work = blocks(50)
    del work  # the next step reuses it
    assert not release()
    more = blocks(80)  # grows past the working set and the slack
    assert release()
    del kept, keep, more


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
