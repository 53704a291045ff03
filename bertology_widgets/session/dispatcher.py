"""Hand results from worker threads to the thread that owns the session's traits.

traitlets' ``hold_trait_notifications`` and ipywidgets' sync state
(``_property_lock``, ``_holding_sync``, ``_states_to_send``) are per instance,
not per thread: a worker that assigns a trait can swallow or misroute what
the kernel thread assigns at the same moment. So workers never assign: they
:meth:`Dispatcher.post` a callable, and the dispatcher runs it on the owner
thread (the thread that created the session, the kernel's main thread in
Jupyter):

* inside a kernel, through the kernel's event loop
  (``loop.call_soon_threadsafe``, with the loop captured at creation);
* outside a kernel (scripts, tests, the CLI), when the owner asks for them:
  :meth:`drain`, or :meth:`wait`, which drains while it waits, so waiting in a
  notebook cell (which blocks the event loop) cannot deadlock either.
"""

from __future__ import annotations

import collections
import threading
import time


def kernel_event_loop():
    """The asyncio loop of the running IPython kernel, if this is its main thread; else None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        from ipykernel.kernelbase import Kernel

        if not Kernel.initialized():
            return None
        io_loop = getattr(Kernel.instance(), "io_loop", None)
    except Exception:  # noqa: BLE001 - no kernel (or an unusual one): the caller drains
        return None
    return getattr(io_loop, "asyncio_loop", None)


class Dispatcher:
    """A thread-safe queue of callables, run in order on the owner thread.

    Parameters
    ----------
    loop : asyncio event loop, optional
        Where to schedule draining (default: the kernel's, see :func:`kernel_event_loop`).
        ``None`` outside a kernel: results wait for :meth:`drain` or :meth:`wait`.
    """

    def __init__(self, loop="kernel"):
        self.owner = threading.current_thread()
        self.loop = kernel_event_loop() if loop == "kernel" else loop
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._scheduled = False
        self.applied = 0  # callables run so far (for tests and benchmarks)

    @property
    def on_owner_thread(self) -> bool:
        return threading.current_thread() is self.owner

    def post(self, fn, *args) -> None:
        """Queue ``fn(*args)`` to run on the owner thread; callable from any thread."""
        with self._cond:
            self._queue.append((fn, args))
            schedule = self.loop is not None and not self._scheduled
            self._scheduled = self._scheduled or schedule
            self._cond.notify_all()
        if schedule:
            try:
                self.loop.call_soon_threadsafe(self.drain)
            except RuntimeError:  # the loop is closed (kernel shutting down): drain on demand
                with self._cond:
                    self._scheduled = False

    def drain(self) -> int:
        """Run everything queued (owner thread only); returns how many ran."""
        if not self.on_owner_thread:
            raise RuntimeError("Dispatcher.drain() runs on the thread that owns the session only")
        ran = 0
        while True:
            with self._cond:
                self._scheduled = False
                if not self._queue:
                    return ran
                fn, args = self._queue.popleft()
            fn(*args)
            ran += 1
            self.applied += 1

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def wait(self, done, timeout: float) -> bool:
        """Drain until ``done()`` is true or ``timeout`` seconds pass; True if ``done()``.

        On the owner thread it applies results as they arrive; elsewhere it only waits.
        """
        deadline = time.monotonic() + timeout
        owner = self.on_owner_thread
        while True:
            if owner:
                self.drain()
            if done():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._cond:
                if not self._queue or not owner:
                    self._cond.wait(min(left, 0.05))
