"""The one protocol of a session's background work: generations, cancellation, and the hand-over to the owner thread.

Every computation a session runs off the kernel thread (the live score, the
capture of the shown input, an analysis, an explanation) belongs to a
:class:`Lane`:

* a request takes a new **generation** (:meth:`Lane.request`); a newer request,
  :meth:`Lane.supersede` or :meth:`Lane.close` makes the older ones stale;
* the worker asks :meth:`Lane.is_current` between its steps and gives up
  stale work (cancellation);
* the worker never touches a trait: it reports through :class:`Callbacks`,
  handed to the owner thread by ``post`` (the session's dispatcher), and the
  receiver drops a result whose generation is no longer current, so stale
  work is never published (:meth:`Lane.deliver` does both).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, NamedTuple

Post = Callable[..., None]  # post(fn, *args): run fn(*args) on the owner thread


class Callbacks(NamedTuple):
    """How a worker reports one job; each runs on the owner thread through ``post``.

    ``done(generation, value)``: the job's value (``(mask, score, predictions)`` for a score);
    ``failed(generation, exc)``; ``progress(generation, value)``: a running estimate or a fraction
    done (None: no progress). The generation lets the receiver drop stale work.
    """

    done: Callable[[int, Any], None]
    failed: Callable[[int, BaseException], None]
    progress: Callable[[int, Any], None] | None = None


class Lane:
    """The generations of one kind of background work, where the latest request wins.

    Parameters
    ----------
    post : callable, optional
        ``post(fn, *args)`` runs ``fn(*args)`` on the owner thread (the session's dispatcher's ``post``);
        needed by :meth:`deliver` only.
    lock : optional
        The lock that guards the generation (a worker's condition, so its queue and the generation change
        together); a lock of its own by default.
    """

    def __init__(self, post: Post | None = None, lock=None):
        self.post = post
        self.lock = lock if lock is not None else threading.RLock()
        self._generation = 0
        self._closed = False

    @property
    def generation(self) -> int:
        """The current generation (0 before the first request)."""
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed

    def request(self) -> int:
        """A new request: its generation (every older one is stale from now on)."""
        with self.lock:
            self._generation += 1
            return self._generation

    def supersede(self) -> int:
        """Make what is in flight stale without a new request; returns the new generation."""
        return self.request()

    def close(self) -> None:
        """Make everything stale, for good."""
        with self.lock:
            self._closed = True
            self._generation += 1

    def is_current(self, generation: int) -> bool:
        """Whether work of ``generation`` is still wanted (any thread)."""
        return generation == self._generation and not self._closed

    def deliver(self, generation: int, fn: Callable[..., None], *args) -> None:
        """From a worker: run ``fn(*args)`` on the owner thread, unless ``generation`` is stale by then."""
        assert self.post is not None, "this lane was given no post"
        self.post(self._if_current, generation, fn, args)

    def _if_current(self, generation: int, fn: Callable[..., None], args: tuple) -> None:
        if self.is_current(generation):
            fn(*args)


class LatestWorker:
    """One daemon thread that runs the latest job it was handed (started on first use); older jobs are dropped.

    ``run`` is held weakly when it is a bound method, so the thread keeps its owner (and the traits behind
    it) alive no longer than the owner is otherwise held; the thread ends once the owner is gone or
    :meth:`close` is called.
    """

    def __init__(self, run: Callable[[Any], None], name: str):
        self._run = weakref.WeakMethod(run) if hasattr(run, "__self__") else (lambda: run)
        self.name = name
        self._cond = threading.Condition()
        self._job: Any = None
        self._running = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, job) -> None:
        """Run ``job`` next (instead of any job not started yet)."""
        with self._cond:
            self._job = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def drop(self) -> None:
        """Forget the job not started yet."""
        with self._cond:
            self._job = None

    def queued(self):
        """The job not started yet, or None."""
        return self._job

    def pending(self) -> bool:
        """Whether a job waits or runs."""
        with self._cond:
            return self._job is not None or self._running

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._job = None
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job, self._job, self._running = self._job, None, True
            try:
                run = self._run()
                if run is None:  # the owner is gone
                    return
                run(job)
            finally:
                del run, job
                with self._cond:
                    self._running = False


__all__ = ["Callbacks", "Lane", "LatestWorker", "Post"]
