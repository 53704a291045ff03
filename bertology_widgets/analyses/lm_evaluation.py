"""Score a language model by its own objective (perplexity, token accuracy), optionally under a head mask.

:func:`evaluate_lm` is the language-model counterpart of
:func:`~bertology_widgets.analyses.evaluation.evaluate`: the texts are
tokenized once by the objective (:mod:`bertology_widgets.core.lm_objective`),
cut into length-sorted batches, and each batch runs the base model under the
mask and is reduced at once to per-text statistics; the LM head runs only at
the scored positions.

Precision: ``"auto"`` is fp32 for a language model, on every machine. A
classifier's bf16 path re-scores its close calls in fp32 (the guard), so its
predictions equal fp32's; a perplexity has no close calls to re-score, so bf16
would simply be another number. ``"bf16"`` runs the forward under bf16
autocast when asked; ``docs/models.md`` gives how far it lies from fp32 on the
default LM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..core.batching import collate, length_sorted_batches
from ..core.bound import BoundModel, EvalSet, bind
from ..core.gating import HeadMaskLike
from ..core.lm_objective import LanguageModelObjective, lm_objective
from ..core.modes import eval_mode

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from ..glue import Example

PRECISIONS = ("auto", "fp32", "bf16")


def lm_precision(precision: str = "auto") -> str:
    """``"fp32"`` or ``"bf16"``: what ``precision`` means for a language model (``"auto"`` is fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return "bf16" if precision == "bf16" else "fp32"


def lm_statistics(bound: BoundModel, eval_set: EvalSet, objective: LanguageModelObjective,
                  mask: HeadMaskLike = None, batch_size: int = 16, precision: str = "auto") -> np.ndarray:
    """Per-text rows ``(n, 3)``: NLL sum, scored tokens and top-1 hits, under ``mask``."""
    model = bound.model
    base = bound.adapter.base_model(model)
    dtype = torch.bfloat16 if lm_precision(precision) == "bf16" else None
    stats = objective.empty_stats(len(eval_set))
    extra = {"use_cache": False} if bound.is_causal else {}
    device = bound.device
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                else torch.autocast(device.type, enabled=False))
    with torch.inference_mode(), eval_mode(model), bound.masked(mask), autocast:
        for indices in length_sorted_batches(eval_set.encoded.lengths, batch_size):
            batch = collate(eval_set.encoded, indices, bound.pad_id, device, with_token_types=bound.uses_token_types)
            hidden = base(**batch, **extra).last_hidden_state  # the base model applies its own final norm
            stats[indices] = objective.reduce_hidden(bound, hidden, batch, eval_set, indices, final_norm=False)
    return stats


def evaluate_lm(model: nn.Module | BoundModel, tokenizer: PreTrainedTokenizerBase | None,
                texts: Sequence[Example] | EvalSet, task: str = "lm", mask: HeadMaskLike = None,
                batch_size: int = 16, max_length: int = 128, precision: str = "auto") -> dict:
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


__all__ = ["PRECISIONS", "evaluate_lm", "lm_precision", "lm_statistics"]
