"""The input under the microscope: capturing it, and showing what the capture holds.

:class:`ShownInputMixin` is the part of :class:`~.session.ModelSession`
that keeps the ``tokens``, ``attention(s)``, ``hidden_states`` and the
example's predictions in step with the shown text and the mask. A capture
runs on the live worker (or inline when the session is not live), at most
once per (text, pair, mask), and lands through the dispatcher on the kernel
thread like every other result.
"""

from __future__ import annotations

import warnings

import numpy as np
from traitlets import HasTraits

from ..core.capturing import TextTruncatedWarning, capture, check_text
from .live import mask_key


class ShownInputMixin(HasTraits):
    """Capture of the shown input; the traits it fills are declared on :class:`~.session.ModelSession`."""

    def _show_example(self, index: int) -> None:
        example = self.examples[index]
        with self.hold_trait_notifications():  # _on_text runs once, after both texts are set
            self.text, self.text_pair = example.text_a, example.text_b
            self.example_label = example.label
        self._recapture()

    def _recapture(self) -> None:
        """Ask for the capture of the shown input under the mask: at most one per (text, pair, mask)."""
        text, pair, mask = self.text, self.text_pair, np.array(self.mask)
        key = (text, pair, mask_key(mask))
        if key == self._capture_key:
            return
        try:
            check_text(text)
            if pair is not None:
                check_text(pair, "text_pair")
        except ValueError as exc:  # bad input (empty text ...): say what was expected, show nothing stale
            self._show_nothing(str(exc))
            return
        self._capture_key = key
        cached = self._captures.get(key)
        own_text = self.example_index < 0
        need_unmasked = own_text and (self._unmasked_logits is None or self._unmasked_logits[0] != key[:2])
        if cached is not None and not need_unmasked:
            self.scorer.supersede_capture()
            self._capture_pending = False
            self._apply_capture(None, (key, cached, None))
            return

        def compute():
            return key, self._run_capture(text, pair, mask), (self._unmasked(text, pair, mask)
                                                              if need_unmasked else None)

        if self._live_ready():
            self._capture_pending = True
            self.scorer.request_capture(compute, self._apply_capture, self._capture_failed)
            return
        self.scorer.supersede_capture()
        self._capture_pending = False
        try:
            value = compute()
        except Exception as exc:  # noqa: BLE001 - a failing forward is shown, never raised into the kernel
            self._capture_failed(None, exc)
            return
        self._apply_capture(None, value)

    def _run_capture(self, text, pair, mask):
        """One capture (any thread; touches no trait): ``(Capture, notices)``."""
        with self.model_lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TextTruncatedWarning)
            result = capture(self.model, self.tokenizer, text, pair, mask, self.max_length)
        notices = [str(w.message) for w in caught if issubclass(w.category, TextTruncatedWarning)]
        return result, notices

    def _unmasked(self, text, pair, mask):
        """The unmasked logits of one's own text: once per text, not on every mask change."""
        if (mask == 1).all():
            return None  # the masked capture is the unmasked one
        with self.model_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", TextTruncatedWarning)  # the masked capture already made it a notice
            return capture(self.model, self.tokenizer, text, pair, None, self.max_length).logits

    def _apply_capture(self, generation, value) -> None:
        if generation is not None:
            if generation != self.scorer.capture_generation:
                return  # a newer capture is on its way
            self._capture_pending = False
        key, (result, notices), unmasked = value
        self._captures.put(key, (result, notices))
        if self.example_index < 0 and (unmasked is not None or (self._unmasked_logits or (None,))[0] != key[:2]):
            self._unmasked_logits = (key[:2], result.logits if unmasked is None else unmasked)
        self._capture = result
        with self.hold_trait_notifications():
            self.tokens, self.token_type_ids = list(result.tokens), result.token_type_ids
            self.hidden_states, self.truncated = result.hidden_states, result.truncated
            self.notice = "\n".join(filter(None, [*notices[:1], self._label_notice, self.scorer.budget.notice]))
            self.capture_error = ""
            self._slice_attention()
            self._update_example_predictions()

    def _show_nothing(self, error: str) -> None:
        self.scorer.supersede_capture()
        self._capture, self._capture_key, self._capture_pending = None, None, False
        with self.hold_trait_notifications():
            self.tokens, self.token_type_ids, self.hidden_states = [], None, None
            self.attention = self.attentions = None
            self.truncated, self.notice = False, ""
            self.example_prediction = self.example_baseline_prediction = None
            self.capture_error = error

    def _capture_failed(self, generation, exc) -> None:
        if generation is not None:
            if generation != self.scorer.capture_generation:
                return
            self._capture_pending = False
        self._capture_key = None
        if isinstance(exc, ValueError):
            self.capture_error = str(exc)
        else:
            self.capture_error = f"could not run the model on this input: {type(exc).__name__}: {exc}"

    def _slice_attention(self) -> None:
        if self._capture is None:
            return
        with self.hold_trait_notifications():
            self.attentions = self._capture.attentions[self.layer]
            self.attention = self._capture.attentions[self.layer, self.head]

    def _update_example_predictions(self) -> None:
        if self._capture is None or self._capture.logits is None:
            return
        if self.example_index < 0 and self._unmasked_logits is None:
            return  # one's own text whose first capture is still on its way (a score can land first)
        regression = self.labels.dtype.kind == "f"
        to_pred = (lambda z: float(z[0])) if regression else (lambda z: int(np.argmax(z)))
        if self.example_index >= 0:
            self.example_prediction = to_pred(self._capture.logits)
            self.example_baseline_prediction = self.baseline_predictions[self.example_index].item()
        else:
            self.example_label = None
            self.example_prediction = to_pred(self._capture.logits)
            # None until the own text has been captured (an empty text never is)
            unmasked = self._unmasked_logits
            self.example_baseline_prediction = None if unmasked is None else to_pred(unmasked[1])
