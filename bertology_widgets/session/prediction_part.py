"""What a language model predicts for the shown input, live under the mask: the top tokens and the logit lens.

:class:`PredictionPart` owns the traits (``lm_predictions``,
``lm_predictions_unmasked``, ``logit_lens`` and what is asked: ``show_lens``,
``lens_measure``) and computes them on a thread of its own, as the
explanation part does: the session asks (:meth:`PredictionPart.refresh`) once
the mask's score and the shown input's capture have landed, so a toggle's
score never waits behind it. It gets what it needs as callables:

- ``bound()``: the bound model; ``model_lock``: held around each forward pass;
- ``post(fn, *args)``: the session's dispatcher, the only way a result reaches a trait;
- ``shown()``: a :class:`~.explanation_part.ShownForExplanation` (the input, the mask, ready or not);
- ``ablation()``: ``(mode, means)`` masked heads follow (a new one makes every result stale).

For a model without a language-model head (a GLUE classifier) the part
computes nothing and its traits stay empty.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from traitlets import Bool, Dict, Enum, Unicode, observe

from ..analyses.logit_lens import logit_lens
from ..analyses.predictions import DEFAULT_TOP_K, text_predictions
from ..core.unembedding import has_lm_head
from .explanation_part import ShownForExplanation
from .jobs import Lane, LatestWorker
from .part import Hold, SessionPart

#: What the logit lens panel draws per cell: the final prediction's rank (log scale) or its probability.
LENS_MEASURES = ("rank", "probability")


class PredictionPart(SessionPart):
    """The shown input's LM predictions, masked and unmasked, and its logit lens (see the module docstring).

    Traits
    ------
    lm_predictions : dict
        Under the mask (:meth:`~bertology_widgets.analyses.predictions.TextPredictions.to_dict`):
        ``kind`` ("causal" or "masked"), ``tokens``, ``slots`` (causal: the next token after the text;
        masked: each mask token's fills; each with ``position``, ``ids``, ``probs``, ``tokens``, top 5),
        ``surprisal`` (causal: nats per token, None at position 0) and ``note`` (a masked LM's text without
        a mask token: how to add one). ``{}`` for a model without an LM head, or before the first result.
    lm_predictions_unmasked : dict
        The same with no head masked (computed once per text).
    show_lens : bool
        Compute the logit lens of the shown input (the Logit lens fold sets it while open).
    logit_lens : dict
        :meth:`LogitLens.to_dict <bertology_widgets.analyses.logit_lens.LogitLens.to_dict>` of the shown input
        under the mask: ``tokens``, ``top_tokens`` / ``top_probs`` ``(layers + 1, pos, 5)``, ``final_rank`` /
        ``final_probs`` ``(layers + 1, pos)``, ``kind``; ``{}`` while ``show_lens`` is off.
    lens_measure : {"rank", "probability"}
        What the lens panel colours by.
    prediction_busy : bool
    prediction_error : str
    """

    lm_predictions = Dict(help="The shown input's top next tokens (or mask fills) and surprisal, under the mask")
    lm_predictions_unmasked = Dict(help="The same with no head masked")
    show_lens = Bool(False, help="Compute the logit lens of the shown input under the mask")
    logit_lens = Dict(help="Each layer's top tokens and the final prediction's rank, of the shown input")
    lens_measure = Enum(LENS_MEASURES, default_value="rank", help="What the lens colours by: rank or probability")
    prediction_busy = Bool(False)
    prediction_error = Unicode("")

    def __init__(self, *, bound: Callable, model_lock, post: Callable[..., None],
                 shown: Callable[[], ShownForExplanation], ablation: Callable[[], tuple], max_length: int,
                 live: bool, k: int = DEFAULT_TOP_K, hold: Hold | None = None):
        super().__init__(hold)
        self._bound = bound
        self.model_lock, self._post, self._shown, self._ablation = model_lock, post, shown, ablation
        self.max_length, self.live, self.k = max_length, live, int(k)
        self.enabled = has_lm_head(bound().model)
        self.lane = Lane(post)
        self.worker = LatestWorker(self._run, "bertology-predictions")
        self._unmasked: tuple[Any, dict] | None = None  # (text, unmasked dict): once per text
        self._shown_key: tuple | None = None

    # -- main thread ------------------------------------------------------------------
    @observe("show_lens")
    def _on_show_lens(self, change):
        if not change["new"] and self.logit_lens:
            self.publish(logit_lens={})
        self.refresh()

    def current_key(self) -> tuple:
        """What the traits should describe now: ``(text, mask bytes, ablation mode, show_lens)``."""
        shown = self._shown()
        return (shown.text, np.array(shown.mask).tobytes(), self._ablation()[0], bool(self.show_lens))

    def refresh(self) -> None:
        """Ask for the shown input's predictions once its score and capture are in (the session calls it when
        either lands, and after a new ablation)."""
        if not self.enabled:
            return
        shown = self._shown()
        if shown.capture is None:  # nothing shown (an empty text)
            self.supersede()
            self.publish(lm_predictions={}, lm_predictions_unmasked={}, logit_lens={}, prediction_busy=False)
            return
        if not shown.ready:
            return  # asked again when the score or the capture lands
        key = self.current_key()
        if key == self._shown_key:
            return
        queued = self.worker.queued()
        if queued is not None and queued[1] == key:
            return
        unmasked = self._unmasked[1] if self._unmasked is not None and self._unmasked[0] == shown.text else None
        job = (self.lane.request(), key, shown.text, np.array(shown.mask), bool(self.show_lens), unmasked)
        self.publish(prediction_busy=True)
        if self.live:
            self.worker.submit(job)
        else:
            self._run(job)

    def forget(self) -> None:
        """Drop what was computed (a new ablation changes it); the next :meth:`refresh` computes afresh."""
        self._shown_key = None

    def supersede(self) -> None:
        """Drop the pending job and make the running one stale."""
        self.worker.drop()
        self.lane.supersede()
        self._shown_key = None

    def pending(self) -> bool:
        return self.worker.pending() or self.prediction_busy

    def close(self) -> None:
        self.lane.close()
        self.worker.close()

    # -- worker ------------------------------------------------------------------------
    def _run(self, job) -> None:
        """Masked predictions, the unmasked ones (once per text), the lens: one result, handed over at once."""
        generation, key, text, mask, want_lens, unmasked = job
        bound = self._bound()
        try:
            with self.model_lock:
                masked = text_predictions(bound, text, self.k, mask, self.max_length).to_dict()
            if unmasked is None:
                if (mask == 1).all():
                    unmasked = masked
                else:
                    with self.model_lock:
                        unmasked = text_predictions(bound, text, self.k, None, self.max_length).to_dict()
            values: dict = {"lm_predictions": masked, "lm_predictions_unmasked": unmasked}
            if want_lens and self.lane.is_current(generation):
                with self.model_lock:
                    values["logit_lens"] = logit_lens(bound, text, DEFAULT_TOP_K, mask).to_dict()
            values.update(prediction_busy=False, prediction_error="")
        except Exception as exc:  # noqa: BLE001 - shown in the view, never raised in the kernel
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            values = {"prediction_busy": False, "lm_predictions": {}, "logit_lens": {},
                      "prediction_error": f"no predictions for this input: {message}"}
        if self.live:
            self.lane.deliver(generation, self._deliver, key, text, values)
        else:
            self._deliver(key, text, values)

    def _deliver(self, key, text, values) -> None:
        """Main thread: assign ``values`` unless another input or mask made them stale."""
        if key != self.current_key():
            return
        if "lm_predictions_unmasked" in values:
            self._unmasked = (text, values["lm_predictions_unmasked"])
        self._shown_key = key if not values.get("prediction_error") else None
        self.publish(**values)

    def wait(self, settled: Callable[[], bool], wait: Callable[[Callable[[], bool], float], bool],
             timeout: float = 60.0) -> bool:
        """``wait(done, timeout)`` (the dispatcher's) until the session has ``settled()`` and the predictions are in."""
        return wait(lambda: settled() and not self.pending(), timeout)


__all__ = ["LENS_MEASURES", "PredictionPart"]
