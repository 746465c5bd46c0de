"""``one_thread``: small work on the calling thread alone, torch's thread count set back after it."""

from __future__ import annotations

import threading

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


def test_another_thread_keeps_its_threads_while_one_works_alone(two_threads):
    """A thread whose first parallel step falls while another thread is in ``one_thread`` takes the process's
    count, not the one the block set (with ``torch.set_num_threads`` it kept one thread for good)."""
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def alone():
        with one_thread(1000):
            seen["alone"] = torch.get_num_threads()
            inside.set()
            done.wait(10)

    def other():
        inside.wait(10)
        torch.ones(1 << 20).sum()  # this thread's first parallel step
        seen["other"] = torch.get_num_threads()
        done.set()

    threads = [threading.Thread(target=alone), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert seen == {"alone": 1, "other": 2}
    assert torch.get_num_threads() == 2
