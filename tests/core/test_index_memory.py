"""The index's memory: its cache files are streamed to disk, and freed heap memory goes back to the system."""

from __future__ import annotations

import tracemalloc

import numpy as np

from cnnexplorer.core import free_memory
from cnnexplorer.core.dataset import cache


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


def test_freed_heap_memory_goes_back_to_the_system():
    """Blocks below glibc's mmap threshold, freed under a block still held: only a trim returns them."""
    release = free_memory.Releaser(slack=1 << 20)
    release()
    blocks = [bytearray(64 << 10) for _ in range(800)]  # 50 MB of 64 KB heap blocks, touched
    keep = bytearray(64 << 10)  # above them: the heap's top stays in use
    grown = free_memory.resident()
    del blocks
    assert release()
    assert free_memory.resident() < grown - (25 << 20)
    assert not release()  # nothing grew since
    del keep
