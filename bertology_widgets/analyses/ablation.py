"""Mean ablation: what a masked head outputs instead of zeros.

Zeroing a head pushes its layer off the input distribution it was trained
on; many interpretability papers replace the head's output by its mean over
a dataset instead. The replacement happens where heads are gated (the input
of the attention output projection, see :func:`~bertology_widgets.core.gating.mask_heads`),
so every analysis built on ``mask_heads`` (evaluation, importance, the
masking curve, live scoring) can switch with :func:`set_ablation` or
:func:`ablation_mode`, without new arguments.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..core.architectures import adapter_for
from ..core.batching import collate, length_sorted_batches, pad_token_id, uses_token_types
from ..core.bound import encoded_examples
from ..core.gating import ABLATION_ATTR, ABLATIONS, kept_heads, model_shape, resolve_ablation
from ..core.hooks import this_thread_only
from ..core.modes import eval_mode
from ..runtime.progress import Progress, progress_reporter
from .evaluation import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..core.bound import EvalSet
    from ..glue import Example


@torch.inference_mode()
def head_output_means(model: nn.Module, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example] | EvalSet, *,
                      batch_size: int = DEFAULT_BATCH_SIZE, max_length: int = DEFAULT_MAX_LENGTH,
                      progress: Progress = False, on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Each head's mean output at the gated point, over all non-padding tokens of ``examples``.

    Parameters
    ----------
    model, tokenizer
        A supported model (no head mask is applied) and its tokenizer.
    examples : sequence of Example
        Objects with ``text_a`` / ``text_b`` (GLUE examples).
    progress, on_progress
        The :mod:`~bertology_widgets.runtime.progress` convention, in batches: True a
        bar, a callable ``(done, total)``; ``on_progress`` is the older keyword for the callable.

    Returns
    -------
    np.ndarray, float32, shape ``(layers, heads, d_head)``
        Heads pruned away are zeros.
    """
    if len(examples) == 0:
        raise ValueError("no examples given to average head outputs over")
    adapter = adapter_for(model)
    num_layers, num_heads = model_shape(model)
    head_dim = adapter.head_dim(model)
    kept = kept_heads(model)
    sums = torch.zeros(num_layers, num_heads, head_dim, dtype=torch.float64)
    state = {"weights": None}

    def make_hook(layer_index: int):
        def hook(module, args):
            x = args[0].double()  # (batch, pos, kept * d_head)
            heads = x.view(*x.shape[:-1], -1, head_dim)
            weights = state["weights"]  # (batch, pos): 1 on real tokens
            sums[layer_index, kept[layer_index]] += torch.einsum("bp,bphd->hd", weights, heads).cpu()
        return hook

    encoded = encoded_examples(tokenizer, examples, max_length)
    batches = length_sorted_batches(encoded.lengths, batch_size)
    device = next(model.parameters()).device
    pad, with_types = pad_token_id(model, tokenizer), uses_token_types(model)
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


def set_ablation(model: nn.Module, ablation: str = "zero", means: np.ndarray | torch.Tensor | None = None) -> None:
    """Make ``ablation`` the default of every :func:`~bertology_widgets.core.gating.mask_heads` on ``model``.

    ``means`` (``(layers, heads, d_head)``, from :func:`head_output_means`) is
    required for ``"mean"``. A deep copy of the model keeps the setting.
    """
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, got {ablation!r}")
    resolved = resolve_ablation(model, ablation, means)
    if resolved is None:
        if hasattr(model, ABLATION_ATTR):
            delattr(model, ABLATION_ATTR)
    else:
        # object.__setattr__: a tuple attribute on an nn.Module, not a registered buffer
        object.__setattr__(model, ABLATION_ATTR, ("mean", resolved.clone()))


def get_ablation(model: nn.Module) -> str:
    """``"mean"`` or ``"zero"``: the default ablation of ``model``."""
    setting = getattr(model, ABLATION_ATTR, None)
    return setting[0] if setting else "zero"


@contextlib.contextmanager
def ablation_mode(
    model: nn.Module, ablation: str = "zero", means: np.ndarray | torch.Tensor | None = None
) -> Iterator[nn.Module]:
    """:func:`set_ablation` for the duration of the ``with`` block; the previous default comes back in ``finally``."""
    previous = getattr(model, ABLATION_ATTR, None)
    set_ablation(model, ablation, means)
    try:
        yield model
    finally:
        if previous is None:
            set_ablation(model, "zero")
        else:
            object.__setattr__(model, ABLATION_ATTR, previous)


__all__ = ["ablation_mode", "get_ablation", "head_output_means", "set_ablation"]
