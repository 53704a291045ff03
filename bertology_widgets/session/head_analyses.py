"""What a head does, on a session: the ablation mode, head roles and activation patching.

All three run through :meth:`AnalysisMixin._run_analysis`: the work happens
on a private copy of the model, and the traits are assigned by ``apply``.
Switching ``ablation`` to ``"mean"`` computes the head means once per session
(in the background), then makes mean ablation the model's default, so the
live score, the attention view, importance and the masking curve follow it.
"""

from __future__ import annotations

import re

import numpy as np
from traitlets import Dict, Enum, HasTraits, Unicode, observe

from ..core.gating import ABLATIONS
from .traits import array_trait

# Sentiment words and their opposites, for "the same sentence with one word swapped".
_SWAPS = {
    "good": "bad", "great": "awful", "charming": "dull", "brilliant": "boring", "fun": "tedious",
    "funny": "dreary", "beautiful": "ugly", "best": "worst", "love": "hate", "loved": "hated",
    "wonderful": "terrible", "moving": "lifeless", "clever": "stupid", "enjoyable": "tiresome",
    "affecting": "boring", "delightful": "dreadful", "excellent": "poor", "fascinating": "tedious",
}
_SWAPS.update({v: k for k, v in list(_SWAPS.items()) if v not in _SWAPS})


class HeadAnalysesMixin(HasTraits):
    """Traits and methods for mean ablation, head roles and patching (mixed into ``ModelSession``).

    Traits
    ------
    ablation : {"zero", "mean"}
        What a masked head outputs. ``"mean"`` needs ``head_means`` (computed
        on first use); until they are ready the session keeps zero ablation.
    head_means : np.ndarray ``(layers, heads, d_head)`` or None
    roles : np.ndarray of str ``(layers, heads)`` or None
        Each head's role (see :mod:`bertology_widgets.analyses.head_roles`).
    role_measures : dict of str -> np.ndarray ``(layers, heads)``
    corrupted_text : str
        The corrupted partner of the current input, for patching (a suggestion
        is filled in when the example changes; the user may edit it).
    patching : dict
        :meth:`PatchingResult.to_dict` plus ``grid`` as an array ``(layers, heads)``,
        ``clean`` and ``corrupted`` texts; empty until computed.
    """

    ablation = Enum(ABLATIONS, default_value="zero")
    head_means = array_trait("layers", "heads", "d_head", help="Each head's mean output over the dev examples")
    roles = array_trait("layers", "heads", kinds="UO", help="Each head's role name")
    role_measures = Dict()
    corrupted_text = Unicode("")
    patching = Dict()

    # -- ablation --------------------------------------------------------------------
    def compute_head_means(self, max_examples: int | None = None, background: bool = True):
        """Each head's mean output over the dev examples (``head_means``); once per session."""
        from ..analyses.ablation import head_output_means

        examples = self._analysis_examples(max_examples)

        def compute(model, report):
            return head_output_means(model, self.tokenizer, examples, batch_size=self.batch_size,
                                     max_length=self.max_length, on_progress=report)

        def apply(means):
            self.head_means = means
            if self.ablation == "mean":
                self._apply_ablation()

        return self._run_analysis("head means", compute, apply, background)

    @observe("ablation")
    def _on_ablation(self, change):
        if change["new"] == "mean" and self.head_means is None:
            try:
                self.compute_head_means()
            except RuntimeError as exc:  # another analysis is running
                self.analysis_error = f"mean ablation needs the head means: {exc}"
            return
        self._apply_ablation()

    def _apply_ablation(self) -> None:
        """Make ``ablation`` the model's default; rescore and recapture under it."""
        from ..analyses.ablation import get_ablation, set_ablation

        wanted = self.ablation if self.head_means is not None else "zero"
        if get_ablation(self.model) == wanted:
            return
        self.scorer.supersede()
        means = self.head_means if wanted == "mean" else None
        with self.model_lock:
            for model in {id(m): m for m in (self.model, self.scorer.runner.model)}.values():  # bf16 copy too
                set_ablation(model, wanted, means)
            self.scorer.invalidate()
        self._captures.clear()  # captures are keyed by (text, pair, mask): the ablation changes them all
        self._capture_key = None
        self._rescore()
        self._recapture()

    # -- head roles --------------------------------------------------------------------
    def compute_roles(self, max_examples: int | None = None, background: bool = True):
        """Attention statistics and a role per head (:func:`~bertology_widgets.analyses.head_roles.head_roles`)."""
        from ..analyses.head_roles import head_roles

        examples = self._analysis_examples(max_examples)

        def compute(model, report):
            return head_roles(model, self.tokenizer, examples, max_length=self.max_length, on_progress=report)

        def apply(result):
            with self.hold_trait_notifications():
                self.role_measures = dict(result.measures)
                self.roles = result.roles

        return self._run_analysis("head roles", compute, apply, background)

    # -- patching ----------------------------------------------------------------------
    def suggest_corrupted(self) -> str:
        """A corrupted partner for the current input, or ``""`` when none is found.

        First choice: another dev example with the same token length and the
        other label. Else the same sentence with a sentiment word swapped.
        """
        if self.text_pair is None and self.example_index >= 0 and self.example_label is not None:
            lengths = self._example_lengths()
            for i in np.flatnonzero(lengths == lengths[self.example_index]):
                example = self.examples[i]
                if i != self.example_index and example.text_b is None and example.label != self.example_label:
                    return example.text_a
        return _swap_sentiment_word(self.text)

    def _example_lengths(self) -> np.ndarray:
        """Token count of every dev example ``(n,)``, computed once."""
        lengths = getattr(self, "_token_lengths", None)
        if lengths is None:
            from ..core.batching import encode_examples

            lengths = encode_examples(self.tokenizer, self.examples, self.max_length).lengths
            self._token_lengths = lengths
        return lengths

    @observe("text")
    def _on_text_for_patching(self, change):
        suggestion = self.suggest_corrupted()
        if suggestion != self.corrupted_text:
            self.corrupted_text = suggestion

    def compute_patching(self, corrupted: str | None = None, background: bool = True, **options):
        """Patch every head of the current input (clean) into ``corrupted`` (default ``corrupted_text``)."""
        from ..analyses.patching import run_patching

        clean = self.text
        corrupted = self.corrupted_text if corrupted is None else corrupted
        if not corrupted.strip():
            raise ValueError("type a corrupted input to patch into (for example the sentence with one word swapped)")
        mask = np.array(self.mask)

        def compute(model, report):
            result = run_patching(model, self.tokenizer, clean, corrupted, mask=mask, **options)
            report(1, 1)
            return result

        def apply(result):
            data = result.to_dict()
            data.update(grid=result.grid, clean=clean, corrupted=corrupted)
            self.patching = data

        return self._run_analysis("patching", compute, apply, background)


def _swap_sentiment_word(text: str) -> str:
    """``text`` with its first sentiment word replaced by an opposite; ``""`` if it has none."""
    for match in re.finditer(r"[A-Za-z]+", text):
        word = match.group(0)
        swap = _SWAPS.get(word.lower())
        if swap is not None:
            swap = swap.capitalize() if word[0].isupper() else swap
            return text[:match.start()] + swap + text[match.end():]
    return ""
