"""The live re-scoring engine behind :class:`~bertology_widgets.ModelSession`.

One background thread per session scores the latest requested mask:

* **latest wins**: a new request bumps a generation counter; the batch loop
  checks it between batches and abandons stale work, and results are only
  published for the current generation, so a stale score is never shown;
* **debounced**: the worker waits ``debounce_s`` for the requests to settle;
* **incremental**: each batch keeps its per-layer hidden states
  (:class:`~bertology_widgets.layerwise.LayerCache`), so a change whose lowest
  masked layer is ``L`` recomputes layers ``L..`` only;
* **streaming**: batches run in a fixed random order and a running estimate
  with an interval is published as they finish, then the exact score;
* **memoised**: finished scores are kept in a bounded LRU keyed by the mask.

Cost of the cache, per example: ``(layers + 1) * pos * hidden`` floats, e.g.
7 x 25 x 384 x 4 B = 0.27 MB for MiniLM on an average SST-2 sentence.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict

import numpy as np
import torch

from ..batching import collate, length_sorted_batches, pad_token_id, uses_token_types
from ..evaluation import predictions_from_logits
from ..glue import compute_metrics
from ..layerwise import LayerwiseRunner
from .estimates import estimate


def mask_key(mask: np.ndarray) -> bytes:
    return np.ascontiguousarray(mask, dtype=np.float32).tobytes()


class ScoreLRU:
    """A bounded least-recently-used map from mask to ``(score, predictions)``."""

    def __init__(self, size: int = 128):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, mask: np.ndarray):
        with self._lock:
            key = mask_key(mask)
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, mask: np.ndarray, value) -> None:
        with self._lock:
            self._items[mask_key(mask)] = value
            self._items.move_to_end(mask_key(mask))
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class Cancelled(Exception):
    """The request being scored was superseded."""


class LiveScorer:
    """Incremental, cancellable scoring of one evaluation set.

    Parameters
    ----------
    model, tokenizer
        The session's sequence classifier.
    encoded : EncodedExamples
        The tokenized evaluation set.
    labels : np.ndarray, shape ``(n,)``
    task : str
    model_lock : threading.RLock
        Held around each batch, so captures on the kernel thread interleave.
    batch_size : int
        Must match :func:`~bertology_widgets.evaluation.evaluate`'s so the
        numbers agree exactly.
    """

    def __init__(self, model, tokenizer, encoded, labels, task, model_lock, *, batch_size=32,
                 autocast_dtype=None, lru_size=128, debounce_s=0.02, estimate_every_s=0.05, seed=0):
        self.runner = LayerwiseRunner(model, autocast_dtype=autocast_dtype)
        self.labels, self.task, self.model_lock = labels, task, model_lock
        self.is_regression = np.issubdtype(np.asarray(labels).dtype, np.floating)
        device = self.runner.device
        pad, with_types = pad_token_id(model, tokenizer), uses_token_types(model)
        batches = length_sorted_batches(encoded.lengths, batch_size)
        order = np.random.default_rng(seed).permutation(len(batches))
        self.batches = [batches[i] for i in order]
        self._inputs = [collate(encoded, idx, pad, device, with_types) for idx in self.batches]
        self._caches = [None] * len(self.batches)
        self.lru = ScoreLRU(lru_size)
        self.debounce_s, self.estimate_every_s = debounce_s, estimate_every_s
        self.batch_hook = None  # test hook: called with the batch number before each batch
        self._cond = threading.Condition()
        self._generation = 0
        self._pending = None
        self._closed = False
        self._thread = None
        self._listener = None

    # -- synchronous scoring ----------------------------------------------------
    def cache_bytes(self) -> int:
        return sum(c.nbytes() for c in self._caches if c is not None)

    def invalidate(self) -> None:
        """Forget cached layers and scores (the model's ablation changed); call with ``model_lock`` held."""
        self._caches = [None] * len(self.batches)
        self.lru = ScoreLRU(self.lru.size)

    def score(self, mask: np.ndarray, *, is_current=lambda: True, on_estimate=None) -> tuple[dict, np.ndarray]:
        """Score ``mask`` (``(layers, heads)``); raises :class:`Cancelled` once ``is_current()`` is False."""
        cached = self.lru.get(mask)
        if cached is not None:
            return cached
        gates = torch.as_tensor(np.asarray(mask, dtype=np.float32))
        n = len(self.labels)
        predictions = np.zeros(n, dtype=np.float64 if self.is_regression else np.int64)
        seen = np.zeros(n, dtype=bool)
        last_publish = time.perf_counter()
        for number, indices in enumerate(self.batches):
            if not is_current():
                raise Cancelled
            if self.batch_hook is not None:
                self.batch_hook(number)
            with self.model_lock:
                if self._caches[number] is None:
                    self._caches[number] = self.runner.prepare(self._inputs[number])
                logits = self.runner.run(self._caches[number], gates)
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
    def start(self, listener) -> None:
        """Start the worker; ``listener`` gets ``on_estimate``/``on_result``/``on_error`` calls (held weakly)."""
        self._listener = weakref.ref(listener)
        self._thread = threading.Thread(target=self._loop, name="bertology-live-scorer", daemon=True)
        self._thread.start()

    def request(self, mask: np.ndarray) -> int:
        """Ask for ``mask`` to be scored; returns its generation number (later requests supersede it)."""
        with self._cond:
            self._generation += 1
            self._pending = (self._generation, np.array(mask, dtype=np.float32), time.perf_counter())
            self._cond.notify_all()
            return self._generation

    def supersede(self) -> int:
        """Cancel whatever is in flight without asking for anything new."""
        with self._cond:
            self._generation += 1
            self._pending = None
            return self._generation

    @property
    def generation(self) -> int:
        return self._generation

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._generation += 1
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _next_job(self):
        with self._cond:
            while not self._closed:
                if self._pending is not None:
                    wait = self._pending[2] + self.debounce_s - time.perf_counter()
                    if wait <= 0:
                        job, self._pending = self._pending, None
                        return job
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _loop(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            generation, mask, _ = job
            is_current = lambda: self._generation == generation and not self._closed  # noqa: E731
            listener = self._listener()
            if listener is None:
                return
            try:
                score, predictions = self.score(
                    mask, is_current=is_current,
                    on_estimate=lambda v, i, p: listener._on_estimate(generation, v, i, p),
                )
                listener._on_result(generation, mask, score, predictions)
            except Cancelled:
                pass
            except BaseException as exc:  # noqa: BLE001 - shown in the dashboard, never raised in the kernel
                listener._on_error(generation, exc)
            finally:
                del listener
