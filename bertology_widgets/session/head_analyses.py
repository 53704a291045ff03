"""What a head does, on a session: the ablation mode, head roles and activation patching.

:class:`HeadAnalyses` is the part that owns their traits. All three run
through the session's :class:`~.analysis.AnalysisRunner`: the work happens
on a private copy of the model, and the traits are assigned by ``apply``.
Switching ``ablation`` to ``"mean"`` computes the head means once per session
(in the background), then makes mean ablation the model's default, so the
live score, the attention view, importance and the masking curve follow it.
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple

import numpy as np
from traitlets import Dict, Enum, Unicode, observe

from ..core.gating import ABLATIONS
from .analysis import AnalysisData, AnalysisRunner
from .part import Hold, SessionPart
from .traits import array_trait


class ShownText(NamedTuple):
    """The shown input, for patching: its text and pair, the dev example (``-1``: own text) and its label."""

    text: str
    text_pair: str | None
    example_index: int
    example_label: Any

# Sentiment words and their opposites, for "the same sentence with one word swapped".
_SWAPS = {
    "good": "bad", "great": "awful", "charming": "dull", "brilliant": "boring", "fun": "tedious",
    "funny": "dreary", "beautiful": "ugly", "best": "worst", "love": "hate", "loved": "hated",
    "wonderful": "terrible", "moving": "lifeless", "clever": "stupid", "enjoyable": "tiresome",
    "affecting": "boring", "delightful": "dreadful", "excellent": "poor", "fascinating": "tedious",
}
_SWAPS.update({v: k for k, v in list(_SWAPS.items()) if v not in _SWAPS})


class HeadAnalyses(SessionPart):
    """Mean ablation, head roles and patching; a part of :class:`~.session.ModelSession`.

    Traits
    ------
    ablation : {"zero", "mean"}
        What a masked head outputs. ``"mean"`` needs ``head_means`` (computed
        on first use); until they are ready the session keeps zero ablation.
    head_means : np.ndarray ``(layers, heads, d_head)`` or None
    roles : np.ndarray of str ``(layers, heads)`` or None
        Each head's role (see :mod:`bertology_widgets.analyses.head_roles`).
    role_measures : dict of str -> np.ndarray ``(layers, heads)``
        The attention statistics; for a causal model also ``induction`` (each head's induction score, 0..1).
    corrupted_text : str
        The corrupted partner of the current input, for patching (a suggestion
        is filled in when the example changes; the user may edit it).
    patching : dict
        :meth:`PatchingResult.to_dict` plus ``grid`` as an array ``(layers, heads)``,
        ``clean`` and ``corrupted`` texts; empty until computed.

    Parameters
    ----------
    runner : AnalysisRunner
    data : AnalysisData
    current_mask : callable
        ``() -> np.ndarray (layers, heads)``.
    shown : callable
        ``() -> ShownText``.
    set_ablation : callable
        ``set_ablation(mode, means)``: make it what masked heads output (rescoring and recapturing).
    """

    ablation = Enum(ABLATIONS, default_value="zero")
    head_means = array_trait("layers", "heads", "d_head", help="Each head's mean output over the dev examples")
    roles = array_trait("layers", "heads", kinds="UO", help="Each head's role name")
    role_measures = Dict()
    corrupted_text = Unicode("")
    patching = Dict()

    def __init__(self, runner: AnalysisRunner, data: AnalysisData, current_mask: Callable[[], Any],
                 shown: Callable[[], ShownText], set_ablation: Callable[[str, Any], None], hold: Hold | None = None):
        super().__init__(hold)
        self.runner, self.data = runner, data
        self._current_mask, self._shown, self._set_ablation = current_mask, shown, set_ablation

    # -- ablation --------------------------------------------------------------------
    def compute_head_means(self, max_examples: int | None = None, background: bool = True):
        """Each head's mean output over the dev examples (``head_means``); once per session."""
        from ..analyses.ablation import head_output_means

        data = self.data
        eval_set = data.set_for(max_examples)

        def compute(model, report):
            return head_output_means(model, eval_set, batch_size=data.batch_size, on_progress=report)

        def apply(means):
            self.head_means = means
            if self.ablation == "mean":
                self._apply_ablation()

        return self.runner.run("head means", compute, apply, background)

    @observe("ablation")
    def _on_ablation(self, change):
        if change["new"] == "mean" and self.head_means is None:
            try:
                self.compute_head_means()
            except RuntimeError as exc:  # another analysis is running
                self.runner.refused(f"mean ablation needs the head means: {exc}")
            return
        self._apply_ablation()

    def _apply_ablation(self) -> None:
        """Make ``ablation`` the model's default (mean only once the means are known)."""
        wanted = self.ablation if self.head_means is not None else "zero"
        self._set_ablation(wanted, self.head_means if wanted == "mean" else None)

    # -- head roles --------------------------------------------------------------------
    def compute_roles(self, max_examples: int | None = None, background: bool = True):
        """Attention statistics and a role per head (:func:`~bertology_widgets.analyses.head_roles.head_roles`)."""
        from ..analyses.head_roles import head_roles

        data = self.data
        eval_set = data.set_for(max_examples)

        def compute(model, report):
            return head_roles(model, eval_set, on_progress=report)

        def apply(result):
            measures = dict(result.measures)
            if result.induction is not None:  # causal models: the role map can colour by it
                measures["induction"] = result.induction
            self.publish(role_measures=measures, roles=result.roles)

        return self.runner.run("head roles", compute, apply, background)

    # -- patching ----------------------------------------------------------------------
    def suggest_corrupted(self) -> str:
        """A corrupted partner for the current input, or ``""`` when none is found.

        First choice: another dev example with the same token length and the
        other label. Else the same sentence with a sentiment word swapped.
        """
        shown = self._shown()
        if shown.text_pair is None and shown.example_index >= 0 and shown.example_label is not None:
            lengths = self.data.eval_set.encoded.lengths
            for i in np.flatnonzero(lengths == lengths[shown.example_index]):
                example = self.data.examples[i]
                if i != shown.example_index and example.text_b is None and example.label != shown.example_label:
                    return example.text_a
        return _swap_sentiment_word(shown.text)

    def on_text_for_patching(self) -> None:
        """Suggest a corrupted partner for the new text (the session calls it when the text changes)."""
        suggestion = self.suggest_corrupted()
        if suggestion != self.corrupted_text:
            self.corrupted_text = suggestion

    def compute_patching(self, corrupted: str | None = None, background: bool = True, **options):
        """Patch every head of the current input (clean) into ``corrupted`` (default ``corrupted_text``)."""
        from ..analyses.patching import run_patching

        clean, tokenizer = self._shown().text, self.data.tokenizer
        corrupted = self.corrupted_text if corrupted is None else corrupted
        if not corrupted.strip():
            raise ValueError("type a corrupted input to patch into (for example the sentence with one word swapped)")
        mask = np.array(self._current_mask())

        def compute(model, report):
            result = run_patching(model, tokenizer, clean, corrupted, mask=mask, **options)
            report(1, 1)
            return result

        def apply(result):
            data = result.to_dict()
            data.update(grid=result.grid, clean=clean, corrupted=corrupted)
            self.patching = data

        return self.runner.run("patching", compute, apply, background)


def _swap_sentiment_word(text: str) -> str:
    """``text`` with its first sentiment word replaced by an opposite; ``""`` if it has none."""
    for match in re.finditer(r"[A-Za-z]+", text):
        word = match.group(0)
        swap = _SWAPS.get(word.lower())
        if swap is not None:
            swap = swap.capitalize() if word[0].isupper() else swap
            return text[:match.start()] + swap + text[match.end():]
    return ""
