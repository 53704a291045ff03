"""The live score of a session: the scorer, its generations and estimates, and the score traits.

:class:`LiveScore` is the part of :class:`~.session.ModelSession` that turns
a mask into ``score``, ``predictions``, ``flipped`` and the progress traits.
It owns the :class:`~.live.LiveScorer` (and so the worker thread) and those
traits, which it assigns on the owner thread only (results reach it through
the dispatcher, as :class:`~.jobs.Callbacks`).

The baseline (every head kept) comes from the shared results cache
(:mod:`bertology_widgets.runtime.results_cache`, kind ``"baseline"``: score,
predictions and per-example logits) or is computed and stored there, under
the cache's file lock, so kernels that open together compute it once. A live
session asks for it on the worker and opens without waiting; until it lands
the baseline-dependent traits are empty (``baseline_score == {}``,
``predictions is None``, ``flipped == []``) and a mask changed meanwhile is
scored once it has. A baseline read from the cache comes without the layer
caches of the incremental scorer: they are built in the background when the
worker is idle, from ``WARM_DELAY_S`` after the baseline landed (the page is being
drawn meanwhile, and a class of kernels opening together would otherwise all
run a pass over the dev set on the cores that draw it); a toggle that comes
first is scored correctly, only slower.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from traitlets import Bool, Dict, Float, List, Unicode

from ..runtime.memory import release_freed_memory
from .jobs import Callbacks
from .live import LiveScorer
from .part import Hold, SessionPart
from .traits import array_trait, frozen

# Seconds between a baseline read from the shared cache and the start of the layer caches' build.
WARM_DELAY_S = 10.0


def per_example(rows: np.ndarray) -> np.ndarray | None:
    """The prediction per example ``(n,)`` from the objective's rows: the rows themselves where they are one
    value per example (a class, a score); None for a language model, whose rows ``(n, 3)`` are per-text sums."""
    rows = np.asarray(rows)
    return rows if rows.ndim == 1 else None


class LiveScore(SessionPart):
    """Scores masks for the session, inline or on the live worker.

    Traits
    ------
    score, baseline_score : dict
        The task's metrics under the scored mask, and with no head masked (``{}`` until scored).
    score_interval : dict
        ``{metric: (low, high)}`` while ``score_is_estimate``.
    score_is_estimate : bool
    scored_mask : np.ndarray ``(layers, heads)``
        The mask that ``score`` belongs to.
    predictions, baseline_predictions, labels : np.ndarray ``(n,)``
        None for a language model (its score is over tokens; its targets are its own tokens).
    flipped : list of int
        Examples whose prediction differs from the unmasked model's (``[]`` for a language model).
    progress : float in [0, 1]; busy : bool
        ``busy`` while a requested mask is not scored yet.
    score_error : str
        The last scoring failure (cleared by the next score).

    Parameters
    ----------
    scorer : LiveScorer
    on_scored : callable
        Called (owner thread) after a score has been published: the shown example's predictions follow it.
    current_mask : callable
        The session's mask (None before the first), scored once the baseline has landed.
    baseline_key : callable
        The baseline's key in the shared results cache (called on the worker: it fingerprints the model).
    hold : callable, optional
        See :class:`~.part.SessionPart`.
    """

    score = Dict()
    baseline_score = Dict()
    score_interval = Dict()
    score_is_estimate = Bool(False)
    scored_mask = array_trait("layers", "heads", help="The mask that score belongs to")
    predictions = array_trait("n", kinds="iuf", help="Prediction per example under the mask (class, or value)")
    baseline_predictions = array_trait("n", kinds="iuf", help="Prediction per example with no head masked")
    labels = array_trait("n", kinds="iuf", help="Label per example (class, or value for regression)")
    flipped: List = List()
    progress = Float(1.0)
    busy = Bool(False)
    score_error = Unicode("")

    def __init__(self, scorer: LiveScorer, on_scored: Callable[[], None],
                 current_mask: Callable[[], np.ndarray | None], baseline_key: Callable[[], dict],
                 hold: Hold | None = None):
        super().__init__(hold)
        self.scorer = scorer
        labels = scorer.eval_set.labels  # None for a language model: its targets are its own tokens
        self.labels = None if labels is None else np.asarray(labels)
        self._on_scored = on_scored
        self._current_mask, self._baseline_key = current_mask, baseline_key
        self._live = False
        self._baseline_pending = False
        self._baseline_cached = False
        self._callbacks = Callbacks(self.on_result, self.on_error, self.on_estimate)
        self.baseline_at: float | None = None  # time.perf_counter() when the baseline landed (owner thread)

    # -- the baseline ----------------------------------------------------------------------
    def open_baseline(self, background: bool) -> None:
        """Score the baseline now (building the layer caches as it goes), or (``background``) mark it pending
        until :meth:`request_baseline` brings it from the shared cache or the worker."""
        if not background:
            ones = np.ones(self.scorer.shape, dtype=np.float32)
            self._baseline_landed(0, (self.scorer.baseline(ones), False))
            return
        self._baseline_pending = True
        self.publish(baseline_score={}, baseline_predictions=None, score={}, predictions=None, scored_mask=None,
                      flipped=[], busy=True, progress=0.0)

    def request_baseline(self) -> None:
        """Ask the worker (:meth:`start` it first) for the baseline marked pending by :meth:`open_baseline`."""
        ones = np.ones(self.scorer.shape, dtype=np.float32)
        # At a low priority: kernels opening together finish their imports, and their pages are drawn, first.
        self.scorer.request_job(
            lambda: self.scorer.in_background(lambda: self._baseline_value(ones, self.scorer.run_pending_capture)),
            Callbacks(self._baseline_landed, self.on_error))

    @property
    def baseline_pending(self) -> bool:
        """Whether the baseline is still being scored (or read from the shared cache)."""
        return self._baseline_pending

    @property
    def baseline_from_cache(self) -> bool:
        """Whether the baseline was read from the shared results cache."""
        return self._baseline_cached

    def _baseline_value(self, ones: np.ndarray, between_batches) -> tuple[dict, bool]:
        """``(baseline, from_cache)`` (any thread; touches no trait)."""
        from ..runtime.results_cache import cached_result

        return cached_result("baseline", self._baseline_key(), lambda: self.scorer.baseline(ones, between_batches),
                             valid=self._consistent)

    def _consistent(self, value) -> bool:
        """Whether a stored baseline fits these examples: shapes, and predictions and score that follow
        from its logits (anything else is rebuilt, never trusted)."""
        try:
            predictions = np.asarray(value["predictions"])
            scorer = self.scorer
            n = scorer.n
            if predictions.shape != (n, *scorer.objective.stat_shape):
                return False
            if not scorer.objective.reads_hidden:  # a language model keeps no logits: its rows are checked below
                logits = np.asarray(value["logits"], dtype=np.float32)
                if logits.ndim < 2 or logits.shape[0] != n:
                    return False
                rows = scorer.objective.reduce(torch.from_numpy(logits), {}, scorer.eval_set, np.arange(n))
                if not np.array_equal(rows, predictions):
                    return False
            score = scorer.objective.score(predictions, scorer.eval_set)
            return set(score) == set(value["score"]) and all(
                np.isclose(float(value["score"][k]), float(v), equal_nan=True) for k, v in score.items())
        except (KeyError, TypeError, ValueError, IndexError):
            return False

    def _baseline_landed(self, _generation: int, result) -> None:
        value, from_cache = result
        ones = np.ones(self.scorer.shape, dtype=np.float32)
        score, predictions = dict(value["score"]), np.asarray(value["predictions"])
        self._baseline_pending, self._baseline_cached = False, from_cache
        self.baseline_at = time.perf_counter()
        if from_cache:
            self.scorer.remember(ones, score, predictions)
            if self._live:
                self.scorer.warm_caches(after_s=WARM_DELAY_S)
        self.publish(baseline_score=score, baseline_predictions=per_example(predictions))
        mask = self._current_mask()
        if mask is not None:
            self.rescore(mask)  # the baseline itself, memoised, or what was toggled meanwhile
        release_freed_memory()  # loading and the first pass leave hundreds of MB free but held

    def start(self, post: Callable[..., None]) -> None:
        """Start the worker: from now on a mask that is not memoised is scored in the background."""
        self.scorer.start(post)
        self._live = True

    def close(self, timeout: float = 5.0) -> None:
        self.scorer.close(timeout)

    @property
    def live(self) -> bool:
        """Whether requests go to the worker (it was started and is running)."""
        return self._live and self.scorer.alive

    # -- requests (owner thread) ---------------------------------------------------------
    def rescore(self, mask: np.ndarray) -> None:
        """Ask for ``mask``'s score: at once when memoised or not live, else on the worker."""
        mask = np.array(mask)
        if self._baseline_pending:  # scored once the baseline lands
            if not self.busy:
                self.publish(busy=True, progress=0.0)
            return
        cached = self.scorer.lru.get(mask)
        if cached is not None or not self.live:
            generation = self.scorer.supersede()
            try:
                score, predictions = cached if cached is not None else self.scorer.score(mask)
            except Exception as exc:  # noqa: BLE001 - shown in the readout, never raised in the kernel
                self.on_error(generation, exc)
                return
            self.on_result(generation, (mask, score, predictions))
            return
        self.scorer.request(mask, self._callbacks)
        if not self.busy:  # the rest of a burst costs no trait change
            self.publish(busy=True, progress=0.0)

    def set_ablation(self, apply: Callable[[], None], model_lock) -> None:
        """Cancel scoring, run ``apply()`` (it changes what a masked head outputs) under the model lock,
        and forget the layer caches and memoised scores that it made stale."""
        self.scorer.supersede()
        with model_lock:
            apply()
            self.scorer.invalidate()

    # -- results (owner thread, through the dispatcher) ------------------------------------
    def _current(self, generation: int) -> bool:
        return self.scorer.scores.is_current(generation)

    def on_estimate(self, generation: int, value) -> None:
        if not self._current(generation):
            return
        values, intervals, progress = value
        self.publish(score=dict(values), score_interval=dict(intervals), score_is_estimate=True,
                      progress=float(progress))

    def on_result(self, generation: int, value) -> None:
        if not self._current(generation):
            return
        mask, score, rows = value
        predictions, baseline = per_example(rows), self.baseline_predictions
        flipped = [] if baseline is None or predictions is None else np.nonzero(predictions != baseline)[0].tolist()
        self.publish(score=dict(score), score_interval={}, score_is_estimate=False, predictions=predictions,
                      scored_mask=frozen(mask), flipped=flipped, progress=1.0, busy=False, score_error="")
        self._on_scored()
        release_freed_memory()  # the layer states this score replaced

    def on_error(self, generation: int, exc: BaseException) -> None:
        if self._baseline_pending:  # the baseline failed: say so; a later change scores as usual
            self._baseline_pending = False
        elif not self._current(generation):
            return
        self.publish(score_error=f"scoring failed: {type(exc).__name__}: {exc}", busy=False, progress=1.0)
