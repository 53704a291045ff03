"""The live re-scoring engine behind :class:`~bertology_widgets.ModelSession`.

One background thread per session does all model work of the live loop, in
two "latest wins" lanes:

* **capture** of the shown example (attention, hidden states) runs first,
  because that is what the eye is on; a pending capture also runs between
  two scoring batches;
* **scoring** of the latest requested mask: a new request bumps a
  generation counter, the batch loop checks it between batches and abandons
  stale work, and results carry their generation, so the session drops stale
  ones instead of publishing them.

The worker never touches a trait: it hands every result to ``post`` (the
session's :class:`~.dispatcher.Dispatcher`), which applies it on the kernel
thread. Besides:

* **debounced**: the worker waits ``debounce_s`` for the requests to settle;
* **incremental**: each batch keeps its per-layer hidden states
  (:class:`~bertology_widgets.core.layerwise.LayerCache`), so a change whose lowest
  masked layer is ``L`` recomputes layers ``L..`` only;
* **streaming, throttled**: batches run in a fixed random order and a running
  estimate with an interval is published at most every ``estimate_every_s``
  (4 per second), then the exact score;
* **bf16 with the fp32 guard** (``precision="bf16"``, see
  :mod:`bertology_widgets.core.precision`): bf16 weights and a bf16 layer cache;
  close calls are re-scored in fp32, so predictions equal fp32's;
* **memoised**: finished scores are kept in a bounded LRU keyed by the mask.

Cost of the cache, per example: ``(layers + 1) * pos * hidden`` floats with
``cache_every=1``, e.g. 7 x 25 x 384 x 4 B = 0.27 MB for MiniLM on an average
SST-2 sentence (half in bf16); the default ``cache_every=3`` keeps every third
layer's input and no embeddings, one state on MiniLM (0.04 MB).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable

import numpy as np
import torch

from ..core.batching import collate, length_sorted_batches
from ..core.layerwise import DEFAULT_CACHE_EVERY, DEFAULT_CACHE_MB, CacheBudget, LayerCache, LayerwiseRunner
from ..core.modes import eval_mode
from ..core.precision import GuardStats, bf16_copy, guarded, take_rows
from ..runtime.background import LowPriorityThread
from .jobs import Callbacks, Lane


def mask_key(mask: np.ndarray) -> bytes:
    return np.ascontiguousarray(mask, dtype=np.float32).tobytes()


class LRU:
    """A bounded, thread-safe least-recently-used map."""

    def __init__(self, size: int = 128):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, key):
        return key

    def get(self, key):
        with self._lock:
            key = self._key(key)
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value) -> None:
        with self._lock:
            key = self._key(key)
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (a benchmark uses this so each mask is scored afresh)."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class ScoreLRU(LRU):
    """Mask ``(layers, heads)`` -> ``(score, predictions)``."""

    def _key(self, mask):
        return mask_key(mask)


class Cancelled(Exception):
    """The request being scored was superseded."""


class LiveScorer:
    """Incremental, cancellable scoring of one evaluation set, and the worker of the live loop.

    Parameters
    ----------
    bound : BoundModel
        The session's bound sequence classifier, or language model with its objective (fp32).
    eval_set : EvalSet
        The tokenized evaluation set; the bound model's objective scores it (each batch reduced to
        per-example rows, the rows to metrics and running estimates).
    model_lock : threading.RLock
        Held around each batch and capture (``ModelSession.evaluate`` takes it too).
    batch_size : int
        Must match :func:`~bertology_widgets.analyses.evaluation.evaluate`'s so the
        numbers agree exactly.
    precision : {"fp32", "bf16"}
        Resolved precision (see :func:`bertology_widgets.core.precision.resolve_precision`).
    cache_mb : float or None
        Memory budget of the layer caches (see :class:`~bertology_widgets.core.layerwise.CacheBudget`);
        batches past it are re-scored in full, and ``budget.notice`` says so.
    cache_every : int
        Keep every ``cache_every``-th layer's input in the layer caches
        (:class:`~bertology_widgets.core.layerwise.LayerwiseRunner`'s ``keep_every``; default 3).
    """

    def __init__(self, bound, eval_set, model_lock, *, batch_size=32, precision="fp32",
                 autocast_dtype=None, lru_size=128, debounce_s=0.02, estimate_every_s=0.25, seed=0,
                 cache_mb=DEFAULT_CACHE_MB, cache_every=DEFAULT_CACHE_EVERY):
        self.runner32 = bound.runner(autocast_dtype=autocast_dtype, keep_every=cache_every)
        self.precision = precision
        self._bound, self._keep_every = bound, cache_every
        self._runner: LayerwiseRunner | None = None if precision == "bf16" else self.runner32
        self.shape = bound.shape  # (layers, heads)
        self.guard = GuardStats()
        self.eval_set, self.objective, self.model_lock = eval_set, bound.require_objective(), model_lock
        self.n = len(eval_set)
        encoded = eval_set.encoded
        device = self.runner32.device
        pad, with_types = bound.pad_id, bound.uses_token_types
        batches = length_sorted_batches(encoded.lengths, batch_size)
        order = np.random.default_rng(seed).permutation(len(batches))
        self.batches = [batches[i] for i in order]
        self._inputs = [collate(encoded, idx, pad, device, with_types) for idx in self.batches]
        self._caches: list[LayerCache | None] = [None] * len(self.batches)
        self.budget = CacheBudget(cache_mb)
        self._uncached = set()  # batches the budget refused: scored from their inputs every time
        self.lru = ScoreLRU(lru_size)
        self.debounce_s, self.estimate_every_s = debounce_s, estimate_every_s
        self._cond = threading.Condition()
        self.scores = Lane(lock=self._cond)  # the latest requested mask's score
        self.captures = Lane(lock=self._cond)  # the latest requested capture
        self._pending = None
        self._capture_pending = None
        self._jobs: deque = deque()  # (compute, callbacks), in order
        self._warm = False  # build missing layer caches while idle
        self._warm_at = 0.0  # time.perf_counter() from which warming may start
        self._background = LowPriorityThread("bertology-live-background")  # the baseline and the warming
        self._closed = False
        self._thread: threading.Thread | None = None
        self._post: Callable[..., None] | None = None

    @property
    def runner(self) -> LayerwiseRunner:
        """What scores: ``runner32``, or in bf16 a runner over a bf16 copy of the model, made on first use
        (on the worker for a live session, so opening does not wait for the copy)."""
        with self.model_lock:
            if self._runner is None:
                self._runner = self._bound.runner(keep_every=self._keep_every, model=bf16_copy(self._bound.model))
            return self._runner

    # -- synchronous scoring ----------------------------------------------------
    def cache_bytes(self) -> int:
        return sum(c.nbytes() for c in self._caches if c is not None)

    def invalidate(self) -> None:
        """Forget cached layers and scores (the model's ablation changed); call with ``model_lock`` held."""
        self._caches = [None] * len(self.batches)
        self._uncached = set()
        self.budget = CacheBudget(self.budget.limit_mb)
        self.lru.clear()

    def _batch_logits(self, number: int, gates: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, labels)`` of batch ``number`` under ``gates``; bf16 goes through the fp32 guard.

        Runs in eval mode (:func:`~bertology_widgets.core.modes.eval_mode`): the model's own mode is put back.
        """
        with self.model_lock, eval_mode(self._bound.model):
            cache = self._caches[number]
            if cache is None:
                cache = self.runner.prepare(self._inputs[number])
            logits = self.runner.run(cache, gates)
            if self._caches[number] is None and number not in self._uncached:
                if self.budget.admit(cache):
                    self._caches[number] = cache
                else:
                    self._uncached.add(number)
            if self.runner is not self.runner32:
                inputs = self._inputs[number]
                logits, rescored = guarded(logits, lambda which: self.runner32.logits(take_rows(inputs, which), gates))
                self.guard.add(rescored, len(self.batches[number]))
        return logits

    def score(self, mask: np.ndarray, *, is_current=lambda: True, on_estimate=None,
              between_batches=None) -> tuple[dict, np.ndarray]:
        """Score ``mask`` (``(layers, heads)``); raises :class:`Cancelled` once ``is_current()`` is False.

        ``on_estimate(values, intervals, progress)`` gets a running estimate at
        most every ``estimate_every_s``; ``between_batches()`` runs before each batch.
        """
        cached = self.lru.get(mask)
        if cached is not None:
            return cached
        score, predictions, _ = self._score(mask, is_current, on_estimate, between_batches)
        return score, predictions

    def baseline(self, ones: np.ndarray, between_batches=None) -> dict:
        """Score the unmasked model: ``{"score": metrics, "predictions": (n, *stat_shape), "logits": (n, classes)}``
        (``"logits"`` None for a language model).

        The score is memoised like any other (a toggle back to all heads kept is instant). Raises
        :class:`Cancelled` once the scorer is closed.
        """
        score, predictions, logits = self._score(ones, lambda: not self._closed, None, between_batches,
                                                 keep_logits=True)
        return {"score": score, "predictions": predictions, "logits": logits}

    def remember(self, mask: np.ndarray, score: dict, predictions: np.ndarray) -> None:
        """Memoise a score found elsewhere (the shared results cache)."""
        self.lru.put(mask, (score, predictions))

    def _score(self, mask, is_current, on_estimate, between_batches, keep_logits=False):
        gates = torch.as_tensor(np.asarray(mask, dtype=np.float32))
        n, objective = self.n, self.objective
        predictions = objective.empty_stats(n)
        all_logits: np.ndarray | None = None
        seen = np.zeros(n, dtype=bool)
        last_publish = time.perf_counter()
        for number, indices in enumerate(self.batches):
            if between_batches is not None:
                between_batches()
            if not is_current():
                raise Cancelled
            logits_t = self._batch_logits(number, gates).float()
            predictions[indices] = objective.reduce_output(self._bound, logits_t, self._inputs[number],
                                                           self.eval_set, indices)
            if keep_logits and not objective.reads_hidden:  # a language model's rows are all a baseline needs
                logits = logits_t.cpu().numpy()
                if all_logits is None:
                    all_logits = np.zeros((n, *logits.shape[1:]), dtype=np.float32)
                all_logits[indices] = logits
            seen[indices] = True
            done = number + 1
            now = time.perf_counter()
            if on_estimate and done < len(self.batches) and (now - last_publish >= self.estimate_every_s or done == 1):
                values, intervals = objective.estimate(predictions[seen], self.eval_set, np.flatnonzero(seen), n)
                on_estimate(values, intervals, done / len(self.batches))
                last_publish = now
        result = (objective.score(predictions, self.eval_set), predictions)
        self.lru.put(mask, result)
        return result[0], result[1], all_logits

    # -- the background worker ------------------------------------------------------
    def start(self, post: Callable[..., None]) -> None:
        """Start the worker.

        The worker never calls a job's :class:`Callbacks` itself but hands them to
        ``post(fn, *args)``, which runs them on the thread that owns the traits; a score's
        or a capture's goes through its :class:`~.jobs.Lane` (dropped there once stale).
        """
        self._post = self.scores.post = self.captures.post = post
        self._thread = threading.Thread(target=self._loop, name="bertology-live-scorer", daemon=True)
        self._thread.start()

    def request(self, mask: np.ndarray, callbacks: Callbacks) -> int:
        """Ask for ``mask`` to be scored; returns its generation number (later requests supersede it)."""
        with self._cond:
            generation = self.scores.request()
            self._pending = (generation, np.array(mask, dtype=np.float32), callbacks, time.perf_counter())
            self._cond.notify_all()
            return generation

    def request_capture(self, compute: Callable[[], Any], callbacks: Callbacks) -> int:
        """Run ``compute()`` on the worker before any scoring batch; post ``callbacks.done(gen, value)``
        or ``callbacks.failed(gen, exc)``.

        Returns the capture generation; a later request supersedes it (only the
        latest pending capture runs).
        """
        with self._cond:
            generation = self.captures.request()
            self._capture_pending = (generation, compute, callbacks, time.perf_counter())
            self._cond.notify_all()
            return generation

    def request_job(self, compute: Callable[[], Any], callbacks: Callbacks) -> None:
        """Run ``compute()`` once on the worker (after the pending capture, before scoring), then post
        ``callbacks.done(0, value)`` or ``callbacks.failed(0, exc)``. Jobs run in order and are never superseded;
        ``compute`` may call :meth:`run_pending_capture` between its steps."""
        with self._cond:
            self._jobs.append((compute, callbacks))
            self._cond.notify_all()

    def warm_caches(self, after_s: float = 0.0) -> None:
        """Build the layer caches in the background, one batch at a time, whenever the worker has nothing
        else to do, starting ``after_s`` seconds from now (after the baseline came from the shared cache:
        until they are built a toggle still scores correctly, rebuilding what it needs)."""
        with self._cond:
            self._warm, self._warm_at = True, time.perf_counter() + after_s
            self._cond.notify_all()

    def _warm_due(self) -> bool:
        """Whether missing layer caches are to be built now (call with ``_cond`` held, or from the worker)."""
        return self._warm and time.perf_counter() >= self._warm_at

    def build_caches(self, timeout: float = 600.0) -> bool:
        """Build every missing layer cache now, in the background, and wait for them; whether all were built."""
        self.warm_caches()
        deadline = time.monotonic() + timeout
        while not self.warm and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.warm

    @property
    def warm(self) -> bool:
        """Whether every batch the budget admits has its layer cache."""
        return all(c is not None or i in self._uncached for i, c in enumerate(self._caches))

    def run_pending_capture(self) -> None:
        """Run the pending capture now (worker thread, between the steps of a long job)."""
        self._run_capture()

    def supersede(self) -> int:
        """Cancel whatever scoring is in flight without asking for anything new."""
        with self._cond:
            self._pending = None
            return self.scores.supersede()

    def supersede_capture(self) -> None:
        """Drop the pending capture, and make an in-flight one stale."""
        with self._cond:
            self.captures.supersede()
            self._capture_pending = None

    @property
    def generation(self) -> int:
        return self.scores.generation

    @property
    def capture_generation(self) -> int:
        return self.captures.generation

    def in_background(self, compute: Callable[[], Any]) -> Any:
        """``compute()`` on the low-priority thread (see :mod:`~bertology_widgets.runtime.background`): for
        work nobody waits for, such as the baseline a class shares. Blocks until it is done; returns its value."""
        return self._background.run(compute)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self.scores.close()
            self.captures.close()
            self._cond.notify_all()
        self._background.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _wait_for_work(self) -> bool:
        """Block until a request has been quiet for ``debounce_s``; False once closed."""
        with self._cond:
            while not self._closed:
                stamps = [job[-1] for job in (self._pending, self._capture_pending) if job is not None]
                if stamps:
                    wait = max(stamps) + self.debounce_s - time.perf_counter()
                    if wait <= 0:
                        return True
                    self._cond.wait(wait)
                elif self._jobs or self._warm_due():
                    return True
                else:
                    self._cond.wait(self._warm_at - time.perf_counter() if self._warm else None)
            return False

    def _run_capture(self) -> None:
        """The pending capture, if any (worker thread)."""
        with self._cond:
            job, self._capture_pending = self._capture_pending, None
        if job is None:
            return
        generation, compute, callbacks, _ = job
        try:
            value = compute()
        except Exception as exc:  # noqa: BLE001 - shown in the dashboard, never raised in the kernel
            self.captures.deliver(generation, callbacks.failed, generation, exc)
            return
        self.captures.deliver(generation, callbacks.done, generation, value)

    def _run_job(self) -> None:
        """The oldest queued job, if any (worker thread)."""
        with self._cond:
            job = self._jobs.popleft() if self._jobs else None
        if job is None:
            return
        compute, callbacks = job
        post = self._post
        assert post is not None, "start() the worker first"
        try:
            value = compute()
        except Cancelled:  # closed meanwhile
            return
        except BaseException as exc:  # noqa: BLE001 - shown in the dashboard, never raised in the kernel
            post(callbacks.failed, 0, exc)
            return
        post(callbacks.done, 0, value)

    def _warm_one(self) -> None:
        """Build the next missing layer cache (worker thread, when idle); stop once all are built."""
        with self.model_lock:
            missing = [i for i, c in enumerate(self._caches) if c is None and i not in self._uncached]
            if not missing:
                self._warm = False
                return
            ones = torch.ones(self.shape)
            self._batch_logits(missing[0], ones)

    def _loop(self) -> None:
        while self._wait_for_work():
            self._run_capture()
            self._run_job()
            with self._cond:
                job, self._pending = self._pending, None
                idle = job is None and self._capture_pending is None and not self._jobs
            if job is None:
                if idle and self._warm_due():
                    self._background.run(self._warm_one)
                continue
            generation, mask, callbacks, _ = job
            lane = self.scores
            is_current = lambda: lane.is_current(generation)  # noqa: E731
            progress = callbacks.progress
            on_estimate = None if progress is None else (
                lambda v, i, p: lane.deliver(generation, progress, generation, (v, i, p)))
            try:
                score, predictions = self.score(mask, is_current=is_current, between_batches=self._run_capture,
                                                on_estimate=on_estimate)
                lane.deliver(generation, callbacks.done, generation, (mask, score, predictions))
            except Cancelled:
                pass
            except BaseException as exc:  # noqa: BLE001 - shown in the dashboard, never raised in the kernel
                lane.deliver(generation, callbacks.failed, generation, exc)
            finally:  # the callbacks hold the session: keep none of them between jobs
                del job, callbacks, progress, on_estimate
