"""``one_thread``: small work on the calling thread alone, torch's thread count set back after it."""

from __future__ import annotations

import pytest
import torch

from cnnexplorer.core.threads import SMALL, one_thread


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_small_work_runs_on_one_thread_and_the_count_comes_back(two_threads):
    with one_thread(1000):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(ZeroDivisionError):
        with one_thread(1000):
            1 / 0
    assert torch.get_num_threads() == 2


def test_large_work_keeps_the_threads(two_threads):
    with one_thread(SMALL):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 2
