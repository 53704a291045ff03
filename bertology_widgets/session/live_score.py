"""The live score of a session: the scorer, its generations and estimates, and the score traits' values.

:class:`LiveScore` is the part of :class:`~.session.ModelSession` that turns
a mask into ``score``, ``predictions``, ``flipped`` and the progress traits.
It owns the :class:`~.live.LiveScorer` (and so the worker thread) and the
baseline predictions that ``flipped`` compares with. It assigns traits only
through the ``publish`` callable the session gives it, on the owner thread.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..memory import release_freed_memory
from .live import Callbacks, LiveScorer
from .traits import frozen

Publish = Callable[..., None]  # publish(trait=value, ...): assigns the session's traits together


class LiveScore:
    """Scores masks for the session, inline or on the live worker.

    Parameters
    ----------
    scorer : LiveScorer
    publish : callable
        ``publish(**traits)`` assigns the session's traits, with notifications held.
    is_busy : callable
        Whether the session's ``busy`` trait is set (a burst of requests then costs no trait change).
    on_scored : callable
        Called (owner thread) after a score has been published: the shown example's predictions follow it.
    """

    def __init__(self, scorer: LiveScorer, publish: Publish, is_busy: Callable[[], bool],
                 on_scored: Callable[[], None]):
        self.scorer = scorer
        self._publish, self._is_busy, self._on_scored = publish, is_busy, on_scored
        self._live = False
        self._baseline_predictions: np.ndarray | None = None
        self._callbacks = Callbacks(self.on_result, self.on_error, self.on_estimate)

    # -- lifecycle ---------------------------------------------------------------------
    def score_baseline(self, ones: np.ndarray) -> tuple[dict, np.ndarray]:
        """Score the unmasked model synchronously; publish it as the baseline and the current score."""
        baseline, predictions = self.scorer.score(ones)
        self._baseline_predictions = predictions
        self._publish(baseline_score=dict(baseline), baseline_predictions=predictions, score=dict(baseline),
                      predictions=predictions, scored_mask=frozen(ones), flipped=[])
        return baseline, predictions

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

    @property
    def baseline_predictions(self) -> np.ndarray | None:
        return self._baseline_predictions

    # -- requests (owner thread) ---------------------------------------------------------
    def rescore(self, mask: np.ndarray) -> None:
        """Ask for ``mask``'s score: at once when memoised or not live, else on the worker."""
        mask = np.array(mask)
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
        if not self._is_busy():  # the rest of a burst costs no trait change
            self._publish(busy=True, progress=0.0)

    def set_ablation(self, apply: Callable[[Any], None], model_lock) -> None:
        """Cancel scoring, run ``apply(model)`` on every model the scorer runs (the bf16 copy too),
        and forget the layer caches and memoised scores that it made stale."""
        self.scorer.supersede()
        with model_lock:
            for model in {id(m): m for m in (self.scorer.runner32.model, self.scorer.runner.model)}.values():
                apply(model)
            self.scorer.invalidate()

    # -- results (owner thread, through the dispatcher) ------------------------------------
    def _current(self, generation: int) -> bool:
        return generation == self.scorer.generation

    def on_estimate(self, generation: int, value) -> None:
        if not self._current(generation):
            return
        values, intervals, progress = value
        self._publish(score=dict(values), score_interval=dict(intervals), score_is_estimate=True,
                      progress=float(progress))

    def on_result(self, generation: int, value) -> None:
        if not self._current(generation):
            return
        mask, score, predictions = value
        flipped = ([] if self._baseline_predictions is None
                   else np.nonzero(predictions != self._baseline_predictions)[0].tolist())
        self._publish(score=dict(score), score_interval={}, score_is_estimate=False, predictions=predictions,
                      scored_mask=frozen(mask), flipped=flipped, progress=1.0, busy=False, score_error="")
        self._on_scored()
        release_freed_memory()  # the layer states this score replaced

    def on_error(self, generation: int, exc: BaseException) -> None:
        if not self._current(generation):
            return
        self._publish(score_error=f"scoring failed: {type(exc).__name__}: {exc}", busy=False, progress=1.0)
