"""Why this prediction, live: token attributions, attention rollout and norms of the shown input.

:class:`ExplanationTraits` declares the traits a session shows (a mixin of
:class:`~.session.ModelSession`); :class:`ExplanationPart` computes them. The
part gets everything it needs as callables at construction, so it reads no
other part's private state:

- ``bound()``: the bound model (made once, on first use);
- ``model_lock``: held around each piece of model work, as the live scorer holds it per batch;
- ``post(fn, *args)``: the session's dispatcher, the only way a result reaches a trait;
- ``apply(values)``: assigns the traits (main thread), given to ``post``;
- ``work_generation()``: a value that changes whenever the session asks for
  newer model work (a score or a capture); the part's work gives way to it at
  the next forward pass;
- ``current_key()``: the ``(text, pair, mask, method, unmasked)`` the traits
  should now describe; a result for another key is dropped, as a stale capture is;
- ``ablation()``: ``(mode, means)`` masked heads follow.

Order of work: the session asks for an explanation only once the mask's
score and the shown input's capture have landed, so a toggle's score never
waits behind an attribution; the part runs on its own thread, takes the
model lock one piece at a time (rollout needs no model: it reads the
capture; norms are one forward pass; a method's attribution, then the
unmasked comparison), and stops at the next forward pass when a newer
request comes in.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
from traitlets import Bool, Dict, Enum, HasTraits, TraitError, Unicode, observe, validate

from ..analyses.attention_flow import attention_rollout
from ..analyses.attention_norms import attention_norms, check_norm_support
from ..analyses.attribution import METHOD_LABELS, AttributionCancelled, resolve_method, token_attributions
from ..core.capturing import TextTruncatedWarning
from .live import mask_key
from .traits import array_trait

#: What the attention view draws: the weights, ``||alpha f(x)||`` of the selected head, or the layer's rollout.
ATTENTION_MEASURES = ("weight", "norm", "rollout")
#: Integrated Gradients runs in batches of this many steps in a session, so a new toggle waits at most one batch.
SESSION_IG_BATCH = 8


class ExplanationTraits(HasTraits):
    """The traits of the explanation part (declared on :class:`~.session.ModelSession`).

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

    # What the methods below read from the session that mixes this in.
    mask: Any
    scored_mask: Any
    text: Any
    text_pair: Any
    busy: Any
    shown: Any
    explanation: Any
    settled: Any
    _publish: Any
    _dispatcher: Any

    explain = Bool(False, help="Compute token attributions, rollout and norms of the shown input")
    explain_method = Unicode("grad_x_input", help="Attribution method of token_scores")
    explain_unmasked = Bool(False, help="Also compute token_scores with no head masked, for comparison")
    token_scores = Dict(help="Word and token attributions of the shown input under the mask")
    unmasked_token_scores = Dict(help="The same attributions with no head masked")
    rollout = array_trait("layers", "query", "key", help="Attention rollout of the shown input under the mask")
    norms = Dict(help="||alpha f(x)|| per head ('head'), the layer's sum ('layer'), mean-ablation constants")
    attention_measure = Enum(ATTENTION_MEASURES, default_value="weight",
                             help="What the attention view draws: weights, ||alpha f(x)||, or the layer's rollout")
    explanation_busy = Bool(False)
    explanation_error = Unicode("")

    @validate("explain_method")
    def _check_method(self, proposal):
        try:
            return resolve_method(proposal["value"])
        except ValueError as exc:
            raise TraitError(str(exc)) from None

    @observe("explain", "explain_method", "explain_unmasked", "attention_measure")
    def _on_explain_settings(self, change):
        self._explain_shown()

    def _explanation_key(self):
        """What the explanation traits should describe now."""
        mask = np.array(self.mask)
        return (self.text, self.text_pair, mask.tobytes(), self.explain_method, bool(self.explain_unmasked))

    def _explain_shown(self) -> None:
        """Ask for the shown input's explanation once its score and capture are in (main thread)."""
        part = getattr(self, "explanation", None)  # None while the session's parts are being built
        if part is None:
            return
        if not self.explain and self.attention_measure == "weight":
            part.supersede()
            if self.explanation_busy:
                self.explanation_busy = False
            return
        shown = self.shown
        capture = shown.current
        if capture is None:  # nothing shown (an empty text): nothing to explain
            part.supersede()
            self._publish(token_scores={}, unmasked_token_scores={}, rollout=None, norms={}, explanation_busy=False)
            return
        mask = np.array(self.mask)
        scored = self.scored_mask is not None and np.array_equal(self.scored_mask, mask)
        captured = shown.key == (self.text, self.text_pair, mask_key(mask))
        if shown.pending or not captured or self.busy or not scored:
            return  # asked again when the score or the capture lands
        part.request(self._explanation_key(), self.text, self.text_pair, np.array(self.mask), self.explain_method,
                     bool(self.explain_unmasked), capture)

    def wait_explained(self, timeout: float = 60.0) -> bool:
        """Apply results until the explanation of the shown input is in (or failed); False on timeout."""
        part = self.explanation

        def done():
            return self.settled() and not part.pending() and not self.explanation_busy

        return self._dispatcher.wait(done, timeout)


class ExplanationPart:
    """Computes the explanation traits of the shown input on its own thread (see the module docstring)."""

    def __init__(self, *, bound, model_lock, post, apply, work_generation, current_key, ablation, max_length,
                 live: bool):
        self._bound_factory, self._bound = bound, None
        self.model_lock, self._post, self._apply = model_lock, post, apply
        self._work_generation, self._current_key, self._ablation = work_generation, current_key, ablation
        self.max_length, self.live = max_length, live
        self._cond = threading.Condition()
        self._generation = 0
        self._job: tuple | None = None
        self._running = False
        self._closed = False
        self._shown_key = None
        self._thread: threading.Thread | None = None

    # -- main thread ------------------------------------------------------------------
    def request(self, key, text, pair, mask, method, unmasked, capture) -> None:
        """Explain ``(text, pair)`` under ``mask`` with ``method`` (latest request wins)."""
        with self._cond:
            if key == self._shown_key:
                self._job = None
                self._generation += 1  # whatever was on its way is for another key
                done = True
            elif self._job is not None and self._job[1] == key:
                return
            else:
                done = False
                self._generation += 1
                job = (self._generation, key, text, pair, mask, method, unmasked, capture, self._ablation(),
                       self._work_generation())
                if self.live:
                    self._job = job
                    self._start()
                    self._cond.notify_all()
        self._apply({"explanation_busy": not done})
        if not done and not self.live:
            self._run(job)

    def supersede(self) -> None:
        """Drop the pending job and make the running one stale."""
        with self._cond:
            self._generation += 1
            self._job = None
            self._shown_key = None

    def pending(self) -> bool:
        with self._cond:
            return self._job is not None or self._running

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._generation += 1
            self._cond.notify_all()

    # -- worker ------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="bertology-explanations", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job, self._job, self._running = self._job, None, True
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._running = False

    def bound(self):
        with self.model_lock:
            if self._bound is None:
                self._bound = self._bound_factory()
        return self._bound

    def _run(self, job) -> None:
        """Rollout, norms, the method's scores, the unmasked scores: each posted as soon as it is done."""
        generation, key, text, pair, mask, method, unmasked, capture, (mode, means), work = job

        def stale() -> bool:
            return generation != self._generation or self._closed or self._work_generation() != work

        def publish(values: dict) -> None:
            if self.live:
                self._post(self._deliver, generation, key, values)
            else:
                self._deliver(generation, key, values)

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

    def _deliver(self, generation, key, values) -> None:
        """Main thread: assign ``values`` unless a newer request or another input made them stale."""
        if generation != self._generation or key != self._current_key():
            return
        self._shown_key = key if "token_scores" in values else None
        self._apply(values)
