"""Why this prediction, live: token attributions, attention rollout and norms of the shown input.

:class:`ExplanationPart` owns the traits (what is asked: ``explain``,
``explain_method``, ``explain_unmasked``, ``attention_measure``; what is
computed: ``token_scores``, ``rollout``, ``norms`` ...) and computes them. It
gets everything else as callables at construction, so it reads no other
part's private state:

- ``bound()``: the bound model (made once, on first use);
- ``model_lock``: held around each piece of model work, as the live scorer holds it per batch;
- ``post(fn, *args)``: the session's dispatcher, the only way a result reaches a trait;
- ``shown()``: the :class:`ShownForExplanation` (the input, the mask, and its capture once
  the mask's score and the capture have landed);
- ``work_generation()``: a value that changes whenever the session asks for
  newer model work (a score or a capture); the part's work gives way to it at
  the next forward pass;
- ``ablation()``: ``(mode, means)`` masked heads follow.

Order of work: the session asks for an explanation (:meth:`ExplanationPart.refresh`)
once the mask's score and the shown input's capture have landed, so a toggle's
score never waits behind an attribution; the part runs on its own thread
(:class:`~.jobs.LatestWorker`), takes the model lock one piece at a time
(rollout needs no model: it reads the capture; norms are one forward pass; a
method's attribution, then the unmasked comparison), and stops at the next
forward pass when a newer request comes in (its :class:`~.jobs.Lane`).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple

import numpy as np
from traitlets import Bool, Dict, Enum, TraitError, Unicode, observe

from ..analyses.attention_flow import attention_rollout
from ..analyses.attention_norms import attention_norms, check_norm_support
from ..analyses.attribution import METHOD_LABELS, AttributionCancelled, resolve_method, token_attributions
from ..core.capturing import TextTruncatedWarning
from .jobs import Lane, LatestWorker
from .part import Hold, SessionPart
from .traits import array_trait

#: What the attention view draws: the weights, ``||alpha f(x)||`` of the selected head, or the layer's rollout.
ATTENTION_MEASURES = ("weight", "norm", "rollout")
#: Integrated Gradients runs in batches of this many steps in a session, so a new toggle waits at most one batch.
SESSION_IG_BATCH = 8


class MethodName(Unicode):
    """An attribution method's name, stored in its full form (``"ig"`` -> ``"integrated_gradients"``)."""

    def validate(self, obj, value):
        try:
            return resolve_method(super().validate(obj, value))
        except ValueError as exc:
            raise TraitError(str(exc)) from None


class ShownForExplanation(NamedTuple):
    """What the explanation is of: the input and the mask; ``capture`` is None while nothing is shown."""

    text: str
    text_pair: str | None
    mask: np.ndarray
    capture: Any
    ready: bool  # the mask's score and the input's capture have landed


class ExplanationPart(SessionPart):
    """The explanation traits of the shown input, computed on a thread of its own (see the module docstring).

    Traits
    ------
    explain : bool
        Compute explanations of the shown input (off by default: they cost a second per change with IG).
    explain_method : str
        ``"grad_x_input"``, ``"integrated_gradients"``, ``"occlusion"``, ``"rollout"`` or ``"attention"``.
    explain_unmasked : bool
        Also compute the method's scores with no head masked, for comparison.
    token_scores : dict
        For the shown input under the mask: ``words``, ``scores`` (per word),
        ``tokens``, ``token_scores``, ``method``, ``target`` (task order),
        ``label``, ``logit`` (and ``completeness_gap`` for IG); ``{}`` when none.
    unmasked_token_scores : dict
        The same with no head masked (only with ``explain_unmasked`` and a head masked).
    rollout : np.ndarray, shape ``(layers, query, key)``
        Attention rollout of the shown input under the mask.
    norms : dict
        ``head`` ``(layers, heads, query, key)``: ``||alpha f(x)||``; ``layer``
        ``(layers, query, key)``: the heads' sum; ``ablation`` ``(layers, heads)``:
        the mean-ablation constants; ``{}`` when not available (``note`` says why).
    attention_measure : {"weight", "norm", "rollout"}
        What the attention view draws; "norm" and "rollout" compute the explanation too.
    explanation_busy : bool
    explanation_error : str
    """

    explain = Bool(False, help="Compute token attributions, rollout and norms of the shown input")
    explain_method = MethodName("grad_x_input", help="Attribution method of token_scores")
    explain_unmasked = Bool(False, help="Also compute token_scores with no head masked, for comparison")
    token_scores = Dict(help="Word and token attributions of the shown input under the mask")
    unmasked_token_scores = Dict(help="The same attributions with no head masked")
    rollout = array_trait("layers", "query", "key", help="Attention rollout of the shown input under the mask")
    norms = Dict(help="||alpha f(x)|| per head ('head'), the layer's sum ('layer'), mean-ablation constants")
    attention_measure = Enum(ATTENTION_MEASURES, default_value="weight",
                             help="What the attention view draws: weights, ||alpha f(x)||, or the layer's rollout")
    explanation_busy = Bool(False)
    explanation_error = Unicode("")

    def __init__(self, *, bound: Callable, model_lock, post: Callable[..., None],
                 shown: Callable[[], ShownForExplanation], work_generation: Callable[[], Any],
                 ablation: Callable[[], tuple], max_length: int, live: bool, hold: Hold | None = None):
        super().__init__(hold)
        self._bound_factory, self._bound = bound, None
        self.model_lock, self._post = model_lock, post
        self._shown, self._work_generation, self._ablation = shown, work_generation, ablation
        self.max_length, self.live = max_length, live
        self.lane = Lane(post)
        self.worker = LatestWorker(self._run, "bertology-explanations")
        self._shown_key = None

    # -- main thread ------------------------------------------------------------------
    @observe("explain", "explain_method", "explain_unmasked", "attention_measure")
    def _on_settings(self, change):
        self.refresh()

    def current_key(self) -> tuple:
        """What the explanation traits should describe now: ``(text, pair, mask bytes, method, unmasked)``."""
        shown = self._shown()
        mask = np.array(shown.mask)
        return (shown.text, shown.text_pair, mask.tobytes(), self.explain_method, bool(self.explain_unmasked))

    def refresh(self) -> None:
        """Ask for the shown input's explanation once its score and capture are in (the session calls it
        when either lands; a change of the settings does too)."""
        if not self.explain and self.attention_measure == "weight":
            self.supersede()
            if self.explanation_busy:
                self.explanation_busy = False
            return
        shown = self._shown()
        if shown.capture is None:  # nothing shown (an empty text): nothing to explain
            self.supersede()
            self.publish(token_scores={}, unmasked_token_scores={}, rollout=None, norms={}, explanation_busy=False)
            return
        if not shown.ready:
            return  # asked again when the score or the capture lands
        self.request(self.current_key(), shown.text, shown.text_pair, np.array(shown.mask), self.explain_method,
                     bool(self.explain_unmasked), shown.capture)

    def request(self, key, text, pair, mask, method, unmasked, capture) -> None:
        """Explain ``(text, pair)`` under ``mask`` with ``method`` (latest request wins)."""
        if key == self._shown_key:
            self.worker.drop()
            self.lane.supersede()  # whatever was on its way is for another key
            self.publish(explanation_busy=False)
            return
        queued = self.worker.queued()
        if queued is not None and queued[1] == key:
            return
        job = (self.lane.request(), key, text, pair, mask, method, unmasked, capture, self._ablation(),
               self._work_generation())
        self.publish(explanation_busy=True)
        if self.live:
            self.worker.submit(job)
        else:
            self._run(job)

    def supersede(self) -> None:
        """Drop the pending job and make the running one stale."""
        self.worker.drop()
        self.lane.supersede()
        self._shown_key = None

    def pending(self) -> bool:
        return self.worker.pending()

    def close(self) -> None:
        self.lane.close()
        self.worker.close()

    # -- worker ------------------------------------------------------------------------
    def bound(self):
        with self.model_lock:
            if self._bound is None:
                self._bound = self._bound_factory()
        return self._bound

    def _run(self, job) -> None:
        """Rollout, norms, the method's scores, the unmasked scores: each posted as soon as it is done."""
        generation, key, text, pair, mask, method, unmasked, capture, (mode, means), work = job

        def stale() -> bool:
            return not self.lane.is_current(generation) or self._work_generation() != work

        def publish(values: dict) -> None:
            if self.live:
                self.lane.deliver(generation, self._deliver, key, values)
            else:
                self._deliver(key, values)

        try:
            rollout = attention_rollout(capture)
            norms = self._norms(text, pair, mask, mode, means, stale)
            publish({"rollout": rollout, "norms": norms})
            scores = self._scores(text, pair, mask, method, mode, means, capture, None, stale)
            values: dict = {"token_scores": scores, "unmasked_token_scores": {}}
            if unmasked and (mask != 1).any():
                values["unmasked_token_scores"] = self._scores(text, pair, None, method, mode, means, None,
                                                               scores["target"], stale)
            values.update(explanation_busy=False, explanation_error="")
            publish(values)
        except AttributionCancelled:
            return  # a newer request follows; the session asks again once it has landed
        except Exception as exc:  # noqa: BLE001 - shown in the view, never raised in the kernel
            publish({"explanation_busy": False, "token_scores": {}, "unmasked_token_scores": {},
                     "explanation_error": f"could not explain this input: {type(exc).__name__}: {exc}"})

    def _norms(self, text, pair, mask, mode, means, stale) -> dict:
        bound = self.bound()
        try:
            check_norm_support(bound.adapter)
        except ValueError as exc:
            return {"note": str(exc)}
        if stale():
            raise AttributionCancelled
        with self.model_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", TextTruncatedWarning)  # the capture has shown it already
            result = attention_norms(bound, text, mask, pair=pair, ablation=mode, means=means,
                                     max_length=self.max_length)
        return {"head": result.head_norms, "layer": result.layer_norms, "ablation": result.ablation_norms}

    def _scores(self, text, pair, mask, method, mode, means, capture, target, stale) -> dict:
        bound = self.bound()
        if stale():
            raise AttributionCancelled
        with self.model_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", TextTruncatedWarning)
            result = token_attributions(bound, text, pair, method, target, mask=mask, ablation=mode, means=means,
                                        max_length=self.max_length, capture_=capture, batch_size=SESSION_IG_BATCH,
                                        should_stop=stale)
        out = result.to_dict()
        out["method_label"] = METHOD_LABELS[result.method]
        task = getattr(bound, "task", None)
        names = getattr(task, "label_names", None)
        out["label"] = str(names[result.target]) if names else f"class {result.target}"
        out["masked"] = mask is not None and bool((np.asarray(mask) != 1).any())
        return out

    def _deliver(self, key, values) -> None:
        """Main thread: assign ``values`` unless another input made them stale (the lane drops older requests)."""
        if key != self.current_key():
            return
        self._shown_key = key if "token_scores" in values else None
        self.publish(**values)

    def wait(self, settled: Callable[[], bool], wait: Callable[[Callable[[], bool], float], bool],
             timeout: float = 60.0) -> bool:
        """``wait(done, timeout)`` (the dispatcher's) until the session has ``settled()`` and the explanation is in."""
        return wait(lambda: settled() and not self.pending() and not self.explanation_busy, timeout)
