"""Score a language model by its own objective (perplexity, token accuracy), optionally under a head mask.

:func:`evaluate_lm` is the language-model counterpart of
:func:`~bertology_widgets.analyses.evaluation.evaluate`: the texts are
tokenized once by the objective (:mod:`bertology_widgets.core.lm_objective`),
cut into length-sorted batches, and each batch runs layer by layer under the
mask, as the live session does (:func:`~bertology_widgets.analyses.evaluation.predict`),
and is reduced at once to per-text statistics; the final norm and the LM head
run only at the scored positions.

Precision: ``"auto"`` is fp32 for a language model, on every machine. A
classifier's bf16 path re-scores its close calls in fp32 (the guard), so its
predictions equal fp32's; a perplexity has no close calls to re-score, so bf16
would simply be another number. ``"bf16"`` runs the forward under bf16
autocast when asked; ``docs/models.md`` gives how far it lies from fp32 on the
default LM.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..core.bound import BoundModel, EvalSet, bind
from ..core.gating import HeadMaskLike
from ..core.lm_objective import LanguageModelObjective, lm_objective
from .evaluation import DEFAULT_BATCH_SIZE, predict

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from ..glue import Example

PRECISIONS = ("auto", "fp32", "bf16")
#: A live session's batch size for a language model: the 32 live texts in 8 batches, so the first estimate of
#: a new mask's perplexity comes after an eighth of the work. Scores depend on the batches in the last bits:
#: ``evaluate_lm(..., batch_size=4)`` (``bertology evaluate --task lm --batch-size 4``) equals the session's.
LIVE_LM_BATCH_SIZE = 4
#: A live session keeps every layer's input for a language model (SmolLM2 on the 32 live texts: 51 MiB), for
#: the fewest layers re-run per change.
LIVE_LM_CACHE_EVERY = 1


def lm_precision(precision: str = "auto") -> str:
    """``"fp32"`` or ``"bf16"``: what ``precision`` means for a language model (``"auto"`` is fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return "bf16" if precision == "bf16" else "fp32"


def lm_statistics(bound: BoundModel, eval_set: EvalSet, objective: LanguageModelObjective,
                  mask: HeadMaskLike = None, batch_size: int = DEFAULT_BATCH_SIZE,
                  precision: str = "auto") -> np.ndarray:
    """Per-text rows ``(n, 3)``: NLL sum, scored tokens and top-1 hits, under ``mask``.

    The rows come from :func:`~bertology_widgets.analyses.evaluation.predict`, the layer-by-layer forward
    of the live session, on the same batches: a session's settled score equals this one bit for bit.
    """
    if bound.objective is not objective:
        bound = copy.copy(bound)  # the same model and facts, scored on ``objective``
        bound.objective = objective
    dtype = torch.bfloat16 if lm_precision(precision) == "bf16" else None
    return predict(bound, eval_set, mask=mask, batch_size=batch_size, autocast_dtype=dtype)


def evaluate_lm(model: nn.Module | BoundModel, tokenizer: PreTrainedTokenizerBase | None,
                texts: Sequence[Example] | EvalSet, task: str = "lm", mask: HeadMaskLike = None,
                batch_size: int = DEFAULT_BATCH_SIZE, max_length: int = 128, precision: str = "auto") -> dict:
    """Perplexity and token accuracy of a language model on ``texts``, under ``mask``.

    Parameters
    ----------
    model, tokenizer
        A causal or masked LM (or a :class:`BoundModel` of one, ``tokenizer`` then ``None``).
    texts : sequence of Example, or EvalSet
        E.g. :func:`~bertology_widgets.analyses.lm_texts.load_lm_texts`; an ``EvalSet`` encoded by the
        objective is used as it is.
    task : {"lm", "causal_lm", "masked_lm"}
    mask : array-like ``(layers, heads)``, optional
    precision : {"auto", "fp32", "bf16"}
        ``"auto"`` is fp32 (see the module docstring).

    Returns
    -------
    dict
        ``perplexity``, ``token_accuracy``, ``tokens`` (the number scored), ``n`` (texts), ``task``
        (``"causal_lm"`` or ``"masked_lm"``) and ``precision``.
    """
    bound = model if isinstance(model, BoundModel) else bind(model, tokenizer, objective=lm_objective(model, task))
    objective = bound.objective if isinstance(bound.objective, LanguageModelObjective) else \
        lm_objective(bound.model, task)
    eval_set = texts if isinstance(texts, EvalSet) else objective.encode(bound, list(texts), max_length)
    stats = lm_statistics(bound, eval_set, objective, mask, batch_size, precision)
    return {**objective.score(stats), "tokens": objective.scored_tokens(stats), "n": len(eval_set),
            "task": objective.name, "precision": lm_precision(precision)}


__all__ = ["LIVE_LM_BATCH_SIZE", "LIVE_LM_CACHE_EVERY", "PRECISIONS", "evaluate_lm", "lm_precision", "lm_statistics"]
