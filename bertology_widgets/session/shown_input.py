"""The input under the microscope: capturing it, and showing what the capture holds.

:class:`ShownInput` is the part of :class:`~.session.ModelSession` that keeps
the ``tokens``, ``attention(s)``, ``hidden_states`` and the example's
predictions in step with the shown text and the mask. It owns those traits,
the capture cache, the key of the shown capture, whether one is pending, and
the unmasked logits of one's own text; what is to be shown it reads through
one callable, ``shown()`` (a :class:`ShownState`). A capture runs on the live worker (or
inline when the session is not live), at most once per (text, pair, mask),
and lands through the dispatcher on the kernel thread like every other result.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any, Callable, NamedTuple

import numpy as np
from traitlets import Any as AnyTrait
from traitlets import Bool, List, Unicode

from ..core.capturing import Capture, TextTruncatedWarning, capture, check_text
from .jobs import Callbacks
from .live import LRU, LiveScorer, mask_key
from .part import Hold, SessionPart
from .traits import array_trait


class ShownState(NamedTuple):
    """What is to be shown: the input, the mask, the example (``-1``: one's own text) and the selected head."""

    text: str
    text_pair: str | None
    mask: Any
    example_index: int
    layer: int
    head: int


class ShownInput(SessionPart):
    """Capture of the shown input, and the traits that show it.

    Traits
    ------
    tokens : list of str
    token_type_ids : np.ndarray ``(pos,)``
    attention : np.ndarray ``(query, key)``; attentions : np.ndarray ``(heads, query, key)``
        The selected head's weights, and every head's of the selected layer, under the mask.
    hidden_states : np.ndarray ``(layers + 1, pos, hidden)``
    truncated : bool
    example_label, example_prediction, example_baseline_prediction
        For the shown input (the label is ``None`` for one's own text).
    notice : str
        The capture's notice (truncation), then the session-wide ``notices()``.
    capture_error : str
        Why the shown input could not be captured (cleared by the next capture).

    Parameters
    ----------
    shown : callable
        ``() -> ShownState``: what is to be shown now (read, never assigned).
    bound, model_lock, max_length
        What a capture runs: the bound model (its label order and ablation apply); the lock is held
        around each forward pass.
    worker : LiveScorer
        Runs captures in the background (``request_capture``) while ``is_live()``.
    is_live : callable
        Whether the live worker runs.
    baseline_predictions : callable
        The unmasked prediction per dev example ``(n,)``, or None while not scored yet.
    is_regression : bool
    predicts : bool
        False for a language model: no prediction per input (``example_prediction`` stays None).
    notices : callable
        Session-wide notices (label mapping, cache budget), shown after the capture's own.
    on_shown : callable
        Called (owner thread) after the shown capture changed or went.
    hold : callable, optional
        See :class:`~.part.SessionPart`.
    """

    tokens: List = List()
    token_type_ids = array_trait("pos", kinds="iu", help="Segment of each shown token (0 for single texts)")
    attention = array_trait("query", "key", help="Weights of the selected head on the shown input, under the mask")
    attentions = array_trait("heads", "query", "key", help="Weights of every head of the selected layer")
    hidden_states = array_trait("layers + 1", "pos", "hidden", help="Embedding output, then every layer's output")
    truncated = Bool(False)
    example_label = AnyTrait(None, help="Label of the shown example: int class, float value, or None for custom text")
    example_prediction = AnyTrait(None, help="Prediction on the shown input under the mask: int class or float value")
    example_baseline_prediction = AnyTrait(None, help="Prediction on the shown input with no head masked")
    notice = Unicode("")
    capture_error = Unicode("")

    def __init__(self, shown: Callable[[], ShownState], bound, model_lock: threading.RLock, max_length: int,
                 worker: LiveScorer, is_live: Callable[[], bool],
                 baseline_predictions: Callable[[], np.ndarray | None], is_regression: bool,
                 notices: Callable[[], list[str]], lru_size: int = 16, predicts: bool = True,
                 on_shown: Callable[[], None] = lambda: None, hold: Hold | None = None):
        super().__init__(hold)
        self._shown = shown
        self._bound, self._lock, self._max_length = bound, model_lock, max_length
        self._worker, self._is_live = worker, is_live
        self._baseline_predictions, self._is_regression, self._notices = baseline_predictions, is_regression, notices
        self._predicts = predicts  # False for a language model: no class per input (its logits are per token)
        self._captures = LRU(lru_size)  # (text, pair, mask) -> (Capture, notices)
        self._key: tuple | None = None  # what the shown capture is, or is being made, for
        self._pending = False
        self._capture: Capture | None = None
        self._unmasked_logits: tuple[tuple, Any] | None = None  # ((text, pair), logits) of one's own text
        self._callbacks = Callbacks(self._applied, self._failed)
        self._on_shown = on_shown  # called after the shown capture changed (or went), on the owner thread
        self.first_shown_at: float | None = None  # time.perf_counter() when the first capture was shown

    @property
    def pending(self) -> bool:
        """Whether a capture is on its way."""
        return self._pending

    @property
    def key(self) -> tuple | None:
        """``(text, pair, mask key)`` of the shown capture, or of the one on its way."""
        return self._key

    @property
    def current(self) -> Capture | None:
        """The shown capture (None while there is none)."""
        return self._capture

    def forget(self) -> None:
        """Drop every cached capture (the model's ablation changed them all); the next recapture runs afresh."""
        self._captures.clear()
        self._key = None

    def recapture(self) -> None:
        """Ask for the capture of the shown input under the mask: at most one per (text, pair, mask)."""
        t = self._shown()
        text, pair, mask = t.text, t.text_pair, np.array(t.mask)
        key = (text, pair, mask_key(mask))
        if key == self._key:
            return
        try:
            check_text(text)
            if pair is not None:
                check_text(pair, "text_pair")
        except ValueError as exc:  # bad input (empty text ...): say what was expected, show nothing stale
            self._show_nothing(str(exc))
            return
        self._key = key
        cached = self._captures.get(key)
        own_text = t.example_index < 0
        need_unmasked = own_text and (self._unmasked_logits is None or self._unmasked_logits[0] != key[:2])
        if cached is not None and not need_unmasked:
            self._worker.supersede_capture()
            self._pending = False
            self._apply(key, cached, None)
            return

        def compute():
            return key, self._run_capture(text, pair, mask), (self._unmasked(text, pair, mask)
                                                              if need_unmasked else None)

        if self._is_live():
            self._pending = True
            self._worker.request_capture(compute, self._callbacks)
            return
        self._worker.supersede_capture()
        self._pending = False
        try:
            value = compute()
        except Exception as exc:  # noqa: BLE001 - a failing forward is shown, never raised into the kernel
            self._show_failure(exc)
            return
        self._apply(*value)

    def _run_capture(self, text, pair, mask):
        """One capture (any thread; touches no trait): ``(Capture, notices)``."""
        with self._lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TextTruncatedWarning)
            result = capture(self._bound, None, text, pair, mask, self._max_length)
        notices = [str(w.message) for w in caught if issubclass(w.category, TextTruncatedWarning)]
        return result, notices

    def _unmasked(self, text, pair, mask):
        """The unmasked logits of one's own text: once per text, not on every mask change."""
        if (mask == 1).all():
            return None  # the masked capture is the unmasked one
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", TextTruncatedWarning)  # the masked capture already made it a notice
            return capture(self._bound, None, text, pair, None, self._max_length).logits

    # -- results (owner thread) --------------------------------------------------------------
    def _applied(self, generation: int, value) -> None:
        if not self._worker.captures.is_current(generation):
            return  # a newer capture is on its way
        self._pending = False
        self._apply(*value)

    def _failed(self, generation: int, exc: BaseException) -> None:
        if not self._worker.captures.is_current(generation):
            return
        self._pending = False
        self._show_failure(exc)

    def _apply(self, key, captured, unmasked) -> None:
        result, notices = captured
        self._captures.put(key, captured)
        own = self._unmasked_logits
        if self._shown().example_index < 0 and (unmasked is not None or own is None or own[0] != key[:2]):
            self._unmasked_logits = (key[:2], result.logits if unmasked is None else unmasked)
        self._capture = result
        if self.first_shown_at is None:
            self.first_shown_at = time.perf_counter()
        self.publish(tokens=list(result.tokens), token_type_ids=result.token_type_ids,
                      hidden_states=result.hidden_states, truncated=result.truncated,
                      notice="\n".join(filter(None, [*notices[:1], *self._notices()])), capture_error="",
                      **self._attention(), **self._predictions())
        self._on_shown()

    def _show_nothing(self, error: str) -> None:
        self._worker.supersede_capture()
        self._capture, self._key, self._pending = None, None, False
        self.publish(tokens=[], token_type_ids=None, hidden_states=None, attention=None, attentions=None,
                      truncated=False, notice="", example_prediction=None, example_baseline_prediction=None,
                      capture_error=error)
        self._on_shown()

    def _show_failure(self, exc: BaseException) -> None:
        self._key = None
        message = (str(exc) if isinstance(exc, ValueError)
                   else f"could not run the model on this input: {type(exc).__name__}: {exc}")
        self.publish(capture_error=message)

    # -- what the shown capture says ------------------------------------------------------------
    def _attention(self) -> dict:
        if self._capture is None:
            return {}
        state = self._shown()
        layer, head = state.layer, state.head
        return {"attentions": self._capture.attentions[layer], "attention": self._capture.attentions[layer, head]}

    def _predictions(self) -> dict:
        if self._capture is None or self._capture.logits is None or not self._predicts:
            return {}
        index = self._shown().example_index
        if index < 0 and self._unmasked_logits is None:
            return {}  # one's own text whose first capture is still on its way (a score can land first)
        to_pred: Callable[[Any], Any] = ((lambda z: float(z[0])) if self._is_regression
                                         else (lambda z: int(np.argmax(z))))
        values: dict = {"example_prediction": to_pred(self._capture.logits)}
        if index >= 0:
            baseline = self._baseline_predictions()
            values["example_baseline_prediction"] = None if baseline is None else baseline[index].item()
        else:
            unmasked = self._unmasked_logits
            values["example_label"] = None
            # None until the own text has been captured (an empty text never is)
            values["example_baseline_prediction"] = None if unmasked is None else to_pred(unmasked[1])
        return values

    def slice_attention(self) -> None:
        """Show the selected layer's and head's weights of the shown capture."""
        self.publish(**self._attention())

    def update_predictions(self) -> None:
        """Show the model's predictions on the shown input (after a new score or baseline)."""
        self.publish(**self._predictions())
