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
import weakref
from collections import OrderedDict

import numpy as np
import torch

from ..core.batching import collate, length_sorted_batches, pad_token_id, uses_token_types
from ..analyses.evaluation import predictions_from_logits
from ..glue import compute_metrics
from ..core.layerwise import DEFAULT_CACHE_EVERY, DEFAULT_CACHE_MB, CacheBudget, LayerwiseRunner
from ..core.precision import GuardStats, bf16_copy, guarded, take_rows
from .estimates import estimate


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
    model, tokenizer
        The session's sequence classifier (fp32).
    encoded : EncodedExamples
        The tokenized evaluation set.
    labels : np.ndarray, shape ``(n,)``
    task : str
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

    def __init__(self, model, tokenizer, encoded, labels, task, model_lock, *, batch_size=32, precision="fp32",
                 autocast_dtype=None, lru_size=128, debounce_s=0.02, estimate_every_s=0.25, seed=0,
                 cache_mb=DEFAULT_CACHE_MB, cache_every=DEFAULT_CACHE_EVERY):
        self.runner32 = LayerwiseRunner(model, autocast_dtype=autocast_dtype, keep_every=cache_every)
        self.precision = precision
        self.runner = (LayerwiseRunner(bf16_copy(model), keep_every=cache_every) if precision == "bf16"
                       else self.runner32)
        self.guard = GuardStats()
        self.labels, self.task, self.model_lock = labels, task, model_lock
        self.is_regression = np.issubdtype(np.asarray(labels).dtype, np.floating)
        device = self.runner.device
        pad, with_types = pad_token_id(model, tokenizer), uses_token_types(model)
        batches = length_sorted_batches(encoded.lengths, batch_size)
        order = np.random.default_rng(seed).permutation(len(batches))
        self.batches = [batches[i] for i in order]
        self._inputs = [collate(encoded, idx, pad, device, with_types) for idx in self.batches]
        self._caches = [None] * len(self.batches)
        self.budget = CacheBudget(cache_mb)
        self._uncached = set()  # batches the budget refused: scored from their inputs every time
        self.lru = ScoreLRU(lru_size)
        self.debounce_s, self.estimate_every_s = debounce_s, estimate_every_s
        self._cond = threading.Condition()
        self._generation = 0
        self._pending = None
        self._capture_generation = 0
        self._capture_pending = None
        self._closed = False
        self._thread = None
        self._listener = None
        self._post = None

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
        """Logits ``(batch, labels)`` of batch ``number`` under ``gates``; bf16 goes through the fp32 guard."""
        with self.model_lock:
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
        gates = torch.as_tensor(np.asarray(mask, dtype=np.float32))
        n = len(self.labels)
        predictions = np.zeros(n, dtype=np.float64 if self.is_regression else np.int64)
        seen = np.zeros(n, dtype=bool)
        last_publish = time.perf_counter()
        for number, indices in enumerate(self.batches):
            if between_batches is not None:
                between_batches()
            if not is_current():
                raise Cancelled
            logits = self._batch_logits(number, gates)
            predictions[indices] = predictions_from_logits(logits.cpu().numpy(), self.is_regression)
            seen[indices] = True
            done = number + 1
            now = time.perf_counter()
            if on_estimate and done < len(self.batches) and (now - last_publish >= self.estimate_every_s or done == 1):
                values, intervals = estimate(self.task, predictions[seen], self.labels[seen], n)
                on_estimate(values, intervals, done / len(self.batches))
                last_publish = now
        result = (compute_metrics(self.task, predictions, self.labels), predictions)
        self.lru.put(mask, result)
        return result

    # -- the background worker ------------------------------------------------------
    def start(self, listener, post) -> None:
        """Start the worker.

        ``listener`` (held weakly) has ``_on_estimate``, ``_on_result`` and
        ``_on_error``; the worker never calls them itself but hands them to
        ``post(fn, *args)``, which runs them on the thread that owns the traits.
        """
        self._listener, self._post = weakref.ref(listener), post
        self._thread = threading.Thread(target=self._loop, name="bertology-live-scorer", daemon=True)
        self._thread.start()

    def request(self, mask: np.ndarray) -> int:
        """Ask for ``mask`` to be scored; returns its generation number (later requests supersede it)."""
        with self._cond:
            self._generation += 1
            self._pending = (self._generation, np.array(mask, dtype=np.float32), time.perf_counter())
            self._cond.notify_all()
            return self._generation

    def request_capture(self, compute, apply, fail) -> int:
        """Run ``compute()`` on the worker before any scoring batch; post ``apply(gen, value)`` or ``fail(gen, exc)``.

        Returns the capture generation; a later request supersedes it (only the
        latest pending capture runs).
        """
        with self._cond:
            self._capture_generation += 1
            self._capture_pending = (self._capture_generation, compute, apply, fail, time.perf_counter())
            self._cond.notify_all()
            return self._capture_generation

    def supersede(self) -> int:
        """Cancel whatever scoring is in flight without asking for anything new."""
        with self._cond:
            self._generation += 1
            self._pending = None
            return self._generation

    def supersede_capture(self) -> None:
        """Drop the pending capture, and make an in-flight one stale."""
        with self._cond:
            self._capture_generation += 1
            self._capture_pending = None

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def capture_generation(self) -> int:
        return self._capture_generation

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._generation += 1
            self._capture_generation += 1
            self._cond.notify_all()
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
                else:
                    self._cond.wait()
            return False

    def _run_capture(self) -> None:
        """The pending capture, if any (worker thread)."""
        with self._cond:
            job, self._capture_pending = self._capture_pending, None
        if job is None:
            return
        generation, compute, apply, fail, _ = job
        try:
            value = compute()
        except Exception as exc:  # noqa: BLE001 - shown in the dashboard, never raised in the kernel
            self._post(fail, generation, exc)
            return
        self._post(apply, generation, value)

    def _loop(self) -> None:
        while self._wait_for_work():
            self._run_capture()
            with self._cond:
                job, self._pending = self._pending, None
            if job is None:
                continue
            generation, mask, _ = job
            is_current = lambda: self._generation == generation and not self._closed  # noqa: E731
            listener = self._listener()
            if listener is None:
                return
            post = self._post
            try:
                score, predictions = self.score(
                    mask, is_current=is_current, between_batches=self._run_capture,
                    on_estimate=lambda v, i, p: post(listener._on_estimate, generation, v, i, p),
                )
                post(listener._on_result, generation, mask, score, predictions)
            except Cancelled:
                pass
            except BaseException as exc:  # noqa: BLE001 - shown in the dashboard, never raised in the kernel
                post(listener._on_error, generation, exc)
            finally:
                del listener
