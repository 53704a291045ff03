"""Faithfulness, measured: does an attribution method rank words as occlusion does?

Abnar and Zuidema (2020) judge attention rollout and flow by how well they
correlate with blanking out input tokens. :func:`attribution_agreement`
does the same for every method of :mod:`.attribution`, with occlusion
standing in for the blank-out: per example, the Spearman correlation of a
method's word scores with occlusion's, then summarised over examples.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.bound import BoundModel
from ..core.capturing import TextTruncatedWarning, capture
from ..core.gating import HeadMaskLike
from ..runtime.progress import Progress, progress_reporter
from .attribution import ATTENTION_METHODS, METHOD_LABELS, resolve_method, token_attributions

if TYPE_CHECKING:
    from ..glue import Example

DEFAULT_AGREEMENT_METHODS = ("grad_x_input", "integrated_gradients", "rollout", "attention")


@dataclass
class AgreementTable:
    """Spearman correlation with occlusion's word ranking, per method.

    Attributes
    ----------
    methods : list of str
    correlations : dict of str to np.ndarray, shape ``(examples,)``
        Per example; NaN where it is undefined (fewer than 3 words, or a
        ranking with every score equal).
    seconds : dict of str to float
        Total time per method (occlusion included).
    n_examples : int
    """

    methods: list
    correlations: dict
    seconds: dict
    n_examples: int
    skipped: int = 0
    notes: list = field(default_factory=list)

    def summary(self) -> dict:
        """Per method: mean, median and standard deviation over the examples where it is defined, and n."""
        out = {}
        for method in self.methods:
            values = self.correlations[method]
            defined = values[np.isfinite(values)]
            out[method] = {
                "mean": float(defined.mean()) if defined.size else float("nan"),
                "median": float(np.median(defined)) if defined.size else float("nan"),
                "std": float(defined.std()) if defined.size else float("nan"),
                "n": int(defined.size),
                "seconds_per_example": self.seconds[method] / max(self.n_examples, 1),
            }
        return out

    def table(self) -> str:
        """A readable table, one row per method."""
        lines = [f"{'method':<24} {'mean rho':>9} {'median':>8} {'std':>7} {'n':>5} {'s/example':>10}"]
        for method, row in self.summary().items():
            lines.append(f"{METHOD_LABELS.get(method, method):<24} {row['mean']:>9.3f} {row['median']:>8.3f} "
                         f"{row['std']:>7.3f} {row['n']:>5d} {row['seconds_per_example']:>10.3f}")
        occlusion = self.seconds.get("occlusion", 0.0) / max(self.n_examples, 1)
        lines.append(f"(occlusion itself: {occlusion:.3f} s/example; {self.n_examples} examples)")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"summary": self.summary(), "n_examples": self.n_examples, "skipped": self.skipped,
                "per_example": {m: [None if not np.isfinite(v) else float(v) for v in self.correlations[m]]
                                for m in self.methods},
                "seconds": dict(self.seconds)}

    def save(self, folder) -> tuple:
        """Write ``agreement.json`` and ``agreement.txt`` into ``folder``; returns their paths."""
        from pathlib import Path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        js, txt = folder / "agreement.json", folder / "agreement.txt"
        js.write_text(json.dumps(self.to_dict(), indent=1))
        txt.write_text(self.table())
        return js, txt


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two score vectors; NaN when fewer than 3 values or either is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def attribution_agreement(bound: BoundModel, examples: Sequence[Example],
                          methods: Sequence[str] = DEFAULT_AGREEMENT_METHODS, *, mask: HeadMaskLike = None,
                          ablation: str | None = None, means: np.ndarray | None = None, max_length: int | None = 128,
                          progress: Progress = True) -> AgreementTable:
    """Spearman correlation of each method's word ranking with occlusion's, over ``examples``.

    Parameters
    ----------
    bound : BoundModel
    examples : sequence of Example
        Objects with ``text_a`` / ``text_b`` (e.g. the SST-2 dev set).
    methods : sequence of str
        Methods of :data:`~.attribution.METHODS` other than occlusion.
    mask, ablation, means
        The head mask every method runs under.
    progress : bool or callable
        The :mod:`~bertology_widgets.runtime.progress` convention, in examples.

    Every method attributes the class occlusion targets (the prediction under the mask).
    """
    methods = [resolve_method(m) for m in methods]
    if "occlusion" in methods:
        raise ValueError("occlusion is the reference; list the methods to compare with it")
    if len(examples) == 0:
        raise ValueError("no examples to measure agreement on")
    correlations = {m: np.full(len(examples), np.nan) for m in methods}
    seconds = dict.fromkeys(["occlusion", *methods], 0.0)
    skipped = 0
    report = progress_reporter(progress, len(examples), desc="agreement", unit="example")
    with report, warnings.catch_warnings():
        warnings.simplefilter("ignore", TextTruncatedWarning)
        for index, example in enumerate(report.iterate(examples)):
            common: dict[str, Any] = dict(mask=mask, ablation=ablation, means=means, max_length=max_length)
            try:
                reference = token_attributions(bound, example.text_a, example.text_b, "occlusion", **common)
            except ValueError:  # an empty text, or one with no words
                skipped += 1
                continue
            seconds["occlusion"] += reference.seconds
            shared = None
            if any(m in ATTENTION_METHODS for m in methods):
                with bound.masked(mask, ablation, means):
                    shared = capture(bound, None, example.text_a, example.text_b, None, max_length)
                shared.mask = bound.gates(mask).detach().cpu().numpy()
            for method in methods:
                result = token_attributions(bound, example.text_a, example.text_b, method, reference.target,
                                            capture_=shared, **common)
                seconds[method] += result.seconds
                correlations[method][index] = spearman(result.word_scores, reference.word_scores)
    return AgreementTable(methods=methods, correlations=correlations, seconds=seconds, n_examples=len(examples),
                          skipped=skipped)


__all__ = ["DEFAULT_AGREEMENT_METHODS", "AgreementTable", "attribution_agreement", "spearman"]
