"""The low-priority thread: the live session's baseline and layer-cache build give way to interactive work."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from bertology_widgets.runtime.background import LowPriorityThread


def nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_run_returns_the_value_and_raises_the_exception_of_what_it_ran():
    background = LowPriorityThread()
    try:
        assert background.run(lambda a, b=0: a + b, 2, b=3) == 5
        assert background.run(threading.current_thread) is not threading.current_thread()
        with pytest.raises(ZeroDivisionError):
            background.run(lambda: 1 / 0)
        assert background.run(lambda: "still serving") == "still serving"
    finally:
        background.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's")
def test_the_thread_runs_at_a_lower_priority_and_the_caller_keeps_its_own():
    before = nice_of_this_thread()
    background = LowPriorityThread(niceness=5)
    try:
        inside = background.run(nice_of_this_thread)
        assert background.lowered and inside == min(19, before + 5)
        assert nice_of_this_thread() == before
    finally:
        background.close()


def test_after_close_work_runs_in_the_caller():
    background = LowPriorityThread()
    background.run(lambda: None)
    background.close()
    assert background.run(threading.current_thread) is threading.current_thread()
