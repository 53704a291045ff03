"""Long analyses on a session: head importance and the masking curve.

They run in a background thread on a private copy of the model, so the live
score, the attention view and the kernel stay responsive while gradients are
taken (the copy's gate hooks can never leak into live scoring). Progress and
results land in session traits; failures land in ``error``.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
from traitlets import Any, Bool, Dict, Float, HasTraits, Unicode


class AnalysisMixin(HasTraits):
    """Traits and methods for importance and masking curves (mixed into ``ModelSession``).

    Traits
    ------
    importance, entropy : np.ndarray ``(layers, heads)`` or None
    curve : dict
        :meth:`MaskingCurve.to_dict` of the last masking curve, plus
        ``random_baseline`` (steps with mean / min / max over seeds).
    analysis_busy : bool; analysis_progress : float in [0, 1]; analysis_status : str
    """

    importance = Any(None)
    entropy = Any(None)
    curve = Dict()
    analysis_busy = Bool(False)
    analysis_progress = Float(0.0)
    analysis_status = Unicode("")

    def private_model(self):
        """A deep copy of the model, for long work that must not block or disturb live scoring."""
        with self.model_lock:
            return copy.deepcopy(self.model)

    def _analysis_examples(self, max_examples):
        return self.examples if max_examples is None else self.examples[:max_examples]

    def _run_analysis(self, name: str, compute, apply, background: bool = True):
        """Run ``compute(model, report)`` on a private model copy, then ``apply(value)``.

        ``compute`` never touches traits; it reports progress with
        ``report(done, total)`` and returns a value. ``apply(value)`` assigns
        the traits; the session's dispatcher runs it on the kernel's thread.
        Returns the worker thread (``background=True``) or None once done.
        """
        if self.analysis_busy:
            raise RuntimeError(f"an analysis is already running ({self.analysis_status}); wait for it to finish")
        with self.hold_trait_notifications():
            self.analysis_busy, self.analysis_progress, self.analysis_status = True, 0.0, name

        def target():
            try:
                apply(compute(self.private_model(), self._report))
                self.analysis_status = f"{name}: done"
            except Exception as exc:  # noqa: BLE001 - shown in the dashboard, never raised in the kernel
                self.error = f"{name} failed: {type(exc).__name__}: {exc}"
                self.analysis_status = f"{name}: failed"
            finally:
                with self.hold_trait_notifications():
                    self.analysis_busy, self.analysis_progress = False, 1.0

        if not background:
            target()
            return None
        thread = threading.Thread(target=target, name="bertology-analysis", daemon=True)
        thread.start()
        return thread

    def _report(self, done, total):
        self.analysis_progress = float(done) / max(1, total)

    def compute_importance(self, max_examples: int | None = None, background: bool = True, **options):
        """Head importance and attention entropy under the current mask (see :func:`head_importance`).

        Returns the worker thread (``background=True``) or None once done.
        """
        from ..importance import head_importance

        examples, mask = self._analysis_examples(max_examples), np.array(self.mask)

        def compute(model, report):
            return head_importance(model, self.tokenizer, examples, mask, task=self.task,
                                   on_progress=report, **options)

        def apply(result):
            with self.hold_trait_notifications():
                self.importance, self.entropy = result.importance, result.entropy

        return self._run_analysis("head importance", compute, apply, background)

    def compute_masking_curve(self, max_examples: int | None = None, background: bool = True,
                              random_seeds=(0, 1, 2), **options):
        """The iterative masking curve (``run_bertology.py --try_masking``) and a random-order baseline."""
        from ..masking import masking_curve, random_masking_curve

        examples = self._analysis_examples(max_examples)

        def compute(model, report):
            result = masking_curve(model, self.tokenizer, examples, task=self.task, **options)
            report(1, 2)
            data = result.to_dict()
            if random_seeds:
                baseline = random_masking_curve(model, self.tokenizer, examples, task=self.task, seeds=random_seeds,
                                                masking_amount=result.masking_amount,
                                                masking_threshold=result.masking_threshold,
                                                original_score=result.original_score,
                                                min_steps=len(result.curve) - 1)
                data["random_baseline"] = baseline
            return result.importance, data

        def apply(value):
            with self.hold_trait_notifications():
                self.importance, self.curve = value

        return self._run_analysis("masking curve", compute, apply, background)

    def mask_least_important(self, n: int) -> None:
        """Mask the ``n`` least important heads (needs :meth:`compute_importance` first); keep the rest."""
        if self.importance is None:
            raise ValueError("compute head importance first (compute_importance())")
        total = self.num_layers * self.num_heads
        if not 0 <= n <= total:
            raise ValueError(f"n must lie in 0..{total}, got {n}")
        order = np.argsort(np.asarray(self.importance).reshape(-1), kind="stable")
        mask = np.ones(total, dtype=np.float32)
        mask[order[:n]] = 0
        self.mask = mask.reshape(self.num_layers, self.num_heads)
