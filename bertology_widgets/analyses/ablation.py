"""Mean ablation: what a masked head outputs instead of zeros.

Zeroing a head pushes its layer off the input distribution it was trained
on; many interpretability papers replace the head's output by its mean over
a dataset instead. The replacement happens where heads are gated (the input
of the attention output projection, see :func:`~bertology_widgets.core.gating.mask_heads`),
so every analysis built on ``mask_heads`` (evaluation, importance, the
masking curve, live scoring) switches with the bound model's default,
``bound.set_ablation("mean", head_output_means(bound, examples))`` (or a
session's ``set_ablation``), without new arguments. Nothing is written on
the model itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..core.batching import collate, length_sorted_batches
from ..core.bound import BoundModel, EvalSet, as_scored
from ..core.hooks import this_thread_only
from ..core.modes import eval_mode
from ..runtime.progress import Progress, progress_reporter
from .evaluation import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..glue import Example


@torch.inference_mode()
def head_output_means(bound: BoundModel | nn.Module,
                      eval_set: EvalSet | PreTrainedTokenizerBase | Sequence[Example],
                      examples: Sequence[Example] | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE,
                      max_length: int = DEFAULT_MAX_LENGTH,
                      progress: Progress = False, on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Each head's mean output at the gated point, over all non-padding tokens of ``examples``.

    Parameters
    ----------
    bound, eval_set
        A bound model (no head mask is applied) and its encoded examples; or a model, its tokenizer
        and ``examples`` (objects with ``text_a`` / ``text_b``, GLUE examples), bound here
        (see :func:`~bertology_widgets.core.bound.as_scored`).
    progress, on_progress
        The :mod:`~bertology_widgets.runtime.progress` convention, in batches: True a
        bar, a callable ``(done, total)``; ``on_progress`` is the older keyword for the callable.

    Returns
    -------
    np.ndarray, float32, shape ``(layers, heads, d_head)``
        Heads pruned away are zeros.
    """
    bound, eval_set = as_scored(bound, eval_set, examples, max_length=max_length)
    model, adapter = bound.model, bound.adapter
    num_layers, num_heads, head_dim = bound.head_means_shape
    kept = bound.kept_heads()
    sums = torch.zeros(num_layers, num_heads, head_dim, dtype=torch.float64)
    state = {"weights": None}

    def make_hook(layer_index: int):
        def hook(module, args):
            x = args[0].double()  # (batch, pos, kept * d_head)
            heads = x.view(*x.shape[:-1], -1, head_dim)
            weights = state["weights"]  # (batch, pos): 1 on real tokens
            sums[layer_index, kept[layer_index]] += torch.einsum("bp,bphd->hd", weights, heads).cpu()
        return hook

    encoded = eval_set.encoded
    batches = length_sorted_batches(encoded.lengths, batch_size)
    device = bound.device
    pad, with_types = bound.pad_id, bound.uses_token_types
    layers = adapter.layer_modules(model)
    handles = [adapter.out_projection(layers[i]).register_forward_pre_hook(this_thread_only(make_hook(i)))
               for i in range(num_layers) if kept[i]]
    tokens = 0
    report = progress_reporter(progress, len(batches), desc="head means", unit="batch", on_progress=on_progress)
    try:
        with eval_mode(model), report:
            for indices in report.iterate(batches):
                batch = collate(encoded, indices, pad, device, with_types)
                state["weights"] = batch["attention_mask"].double()
                tokens += int(batch["attention_mask"].sum())
                model(**batch)
    finally:
        for handle in handles:
            handle.remove()
    return (sums / max(tokens, 1)).float().numpy()


__all__ = ["head_output_means"]
