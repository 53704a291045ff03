"""Work that nobody waits for, on a thread that lets the work somebody waits for go first.

:class:`LowPriorityThread` runs callables one at a time on one long-lived
daemon thread whose scheduling priority is lowered by ``BACKGROUND_NICENESS``.
On Linux ``setpriority`` on a thread id changes that thread alone, and the
threads torch's OpenMP starts from it inherit its priority; elsewhere the
thread runs at the normal priority.

On an idle machine this changes nothing. When a class opens its dashboards
together on a few cores, the live session's shared baseline and the build of
its layer caches give way to the other kernels' imports and to the browsers
drawing the pages, so the pages are drawn sooner and the score follows.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from concurrent.futures import Future
from typing import Any, Callable

BACKGROUND_NICENESS = 10  # added to the thread's nice value (0 by default, at most 19)


def lower_priority(niceness: int = BACKGROUND_NICENESS) -> bool:
    """Lower the calling thread's priority by ``niceness`` (Linux only); whether it was lowered."""
    if not sys.platform.startswith("linux") or niceness <= 0:
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except OSError:
        return False
    return True


class LowPriorityThread:
    """One low-priority thread that runs what :meth:`run` hands it, in order (started on first use)."""

    def __init__(self, name: str = "bertology-background", niceness: int = BACKGROUND_NICENESS):
        self.name, self.niceness = name, niceness
        self.lowered: bool | None = None  # whether the thread's priority was lowered (None: not started)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    def run(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """``fn(*args, **kwargs)`` on the low-priority thread: waits for it, returns its value or raises its
        exception. Called from that thread itself, or after :meth:`close`, it runs ``fn`` at once, here."""
        if threading.current_thread() is self._thread or self._closed:
            return fn(*args, **kwargs)
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._thread.start()
        future: Future = Future()
        self._queue.put((future, fn, args, kwargs))
        return future.result()

    def _serve(self) -> None:
        self.lowered = lower_priority(self.niceness)
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller of run()
                future.set_exception(exc)
            del item, future, fn, args, kwargs  # keep nothing of a finished call

    def close(self) -> None:
        """Let the thread end once what it was handed is done; a later :meth:`run` runs in its caller."""
        with self._start_lock:
            self._closed = True
            if self._thread is not None:
                self._queue.put(None)
