"""Capture tokens, attention weights and hidden states for one input.

Attention weights only exist with eager attention in transformers 5, so the
capture switches the model to eager for the one forward pass and restores
its implementation afterwards: scoring keeps the fast SDPA path.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch
from torch import nn

from ..core.modes import eval_mode
from .batching import uses_token_types
from .bound import BoundModel, as_bound
from .exceptions import BertologyWarning
from .gating import HeadMaskLike

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class TextTruncatedWarning(BertologyWarning):
    """The text was longer than the model's maximum and was truncated."""


@dataclass
class Capture:
    """One forward pass, opened up.

    Attributes
    ----------
    tokens : list of str
        ``pos`` tokens as the tokenizer produced them.
    attentions : np.ndarray, shape ``(layers, heads, query, key)``
        Attention weights; heads pruned away are all zeros.
    hidden_states : np.ndarray, shape ``(layers + 1, pos, hidden)``
        Embedding output, then the output of every layer.
    logits : np.ndarray, shape ``(labels,)`` or ``(pos, vocab)``
        The model's output for this input (``None`` for a base model).
    token_type_ids : np.ndarray, shape ``(pos,)``
        Which segment each token belongs to (0 for single texts).
    truncated : bool
        True when the text was cut to the model's maximum length.
    causal : bool
        True when the attention is causal (decoder models).
    mask : np.ndarray, shape ``(layers, heads)``, or None
        The head gates the pass ran under (``None``: all heads kept). Masking
        gates a head's output, so its ``attentions`` are still there; analyses
        that follow attention through the layers (rollout) need to know.
    """

    tokens: list
    attentions: np.ndarray
    hidden_states: np.ndarray
    logits: np.ndarray | None
    token_type_ids: np.ndarray
    truncated: bool
    causal: bool
    mask: np.ndarray | None = None


@contextlib.contextmanager
def attention_implementation(model: nn.Module, name: str) -> Iterator[None]:
    """Temporarily switch ``model`` to attention implementation ``name`` ("eager", "sdpa")."""
    config: Any = model.config
    previous = getattr(config, "_attn_implementation", None)
    if previous == name or previous is None:
        yield
        return
    setter = getattr(model, "set_attn_implementation", None)
    try:
        if setter is not None:
            setter(name)
        else:
            config._attn_implementation = name
        yield
    finally:
        if setter is not None:
            setter(previous)
        else:
            config._attn_implementation = previous


def model_max_length(model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> int:
    """The longest input the model accepts, in tokens."""
    config: Any = model.config
    candidates = [getattr(config, "max_position_embeddings", None), getattr(config, "n_positions", None)]
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < 1_000_000:
        candidates.append(tok_limit)
    limits = [int(x) for x in candidates if x]
    limit = min(limits) if limits else 512
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit = min(limit, int(config.max_position_embeddings) - 2)
    return limit


def check_text(text: object, name: str = "text") -> str:
    """Reject texts that carry nothing to look at."""
    if text is None or not isinstance(text, str):
        raise ValueError(f"{name} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{name} is empty; type a sentence to look at its attention")
    return text


def encode(tokenizer: PreTrainedTokenizerBase, model: nn.Module, text: str, text_pair: str | None = None,
           max_length: int | None = None) -> tuple[dict, bool]:
    """Tokenize one text (or pair) for ``model``; returns ``(batch of 1, truncated)``.

    A text longer than the model's maximum is truncated with a
    :class:`TextTruncatedWarning`.
    """
    check_text(text)
    if text_pair is not None:
        check_text(text_pair, "text_pair")
    limit = max_length or model_max_length(model, tokenizer)
    full = tokenizer(text, text_pair, truncation=False, add_special_tokens=True)
    truncated = len(full["input_ids"]) > limit
    if truncated:
        warnings.warn(
            f"the text has {len(full['input_ids'])} tokens; the model takes at most {limit}, "
            f"so it was truncated to the first {limit}",
            TextTruncatedWarning,
            stacklevel=3,
        )
    batch = tokenizer(text, text_pair, truncation=True, max_length=limit, return_tensors="pt")
    return batch, truncated


def _full_head_attention(layer_attn: torch.Tensor | None, kept: list[int], num_heads: int,
                         pos: int) -> torch.Tensor:
    """Place ``(kept, q, k)`` weights into a ``(num_heads, q, k)`` array with zeros for pruned heads."""
    full = torch.zeros(num_heads, pos, pos)
    if layer_attn is not None and kept:
        full[kept] = layer_attn[0].float().cpu()
    return full


@torch.no_grad()
def capture(model: nn.Module | BoundModel, tokenizer: PreTrainedTokenizerBase | None, text: str,
            text_pair: str | None = None, mask: HeadMaskLike = None, max_length: int | None = None) -> Capture:
    """Run one text (or text pair) and return tokens, attentions and hidden states.

    Parameters
    ----------
    model, tokenizer
        A bound model (``tokenizer`` then ``None``), or a supported transformers model and its tokenizer,
        bound here (:func:`~bertology_widgets.core.bound.as_bound`).
    text, text_pair : str
        The input. Empty text raises ``ValueError``; over-long text is
        truncated with a :class:`TextTruncatedWarning`.
    mask : array-like, shape ``(layers, heads)``, optional
        Head mask applied during the pass.

    The bound model's default ablation applies to ``mask`` and the logits come in its task's label order.

    Returns
    -------
    Capture
        With ``attentions`` of shape ``(layers, heads, pos, pos)`` and
        ``hidden_states`` of shape ``(layers + 1, pos, hidden)``.
    """
    bound = as_bound(model, tokenizer)
    model, tokenizer = bound.model, bound.tokenizer
    adapter = bound.adapter
    num_heads = bound.num_heads
    batch, truncated = encode(tokenizer, model, text, text_pair, max_length)
    inputs = {k: v.to(bound.device) for k, v in _model_inputs(model, batch).items()}
    with eval_mode(model), attention_implementation(model, "eager"), bound.masked(mask):
        out = model(**inputs, output_attentions=True, output_hidden_states=True)
    pos = inputs["input_ids"].shape[1]
    kept = bound.kept_heads()
    attentions = torch.stack([
        _full_head_attention(layer_attn, kept[i], num_heads, pos)
        for i, layer_attn in enumerate(_attentions_per_layer(out.attentions, kept))
    ])
    hidden = torch.stack([h[0].float().cpu() for h in out.hidden_states])
    logits = getattr(out, "logits", None)
    token_type_ids = batch.get("token_type_ids")
    if token_type_ids is None:
        token_type_ids = _segments_from_separators(tokenizer, inputs["input_ids"][0].cpu(), text_pair is not None)
    else:
        token_type_ids = token_type_ids[0]
    return Capture(
        tokens=tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist()),
        attentions=attentions.numpy(),
        hidden_states=hidden.numpy(),
        logits=None if logits is None else bound.task_logits(logits)[0].float().cpu().numpy(),
        token_type_ids=np.asarray(token_type_ids),
        truncated=truncated,
        causal=adapter.causal,
        mask=None if mask is None else bound.gates(mask).detach().cpu().numpy(),
    )


def _model_inputs(model: nn.Module, batch) -> dict:
    """The tokenizer output the model should see.

    ``token_type_ids`` go only to models with a token-type embedding
    (``type_vocab_size > 1``: BERT, ELECTRA, the tiny RoBERTa): GPT-2 would add
    ``wte(token_type_ids)`` to its input, and others ignore or reject them.
    The ids are still reported in :attr:`Capture.token_type_ids`.
    """
    inputs = dict(batch)
    if not uses_token_types(model):
        inputs.pop("token_type_ids", None)
    return inputs


def _attentions_per_layer(attentions, kept: list[list[int]]) -> list:
    """One entry per layer: the recorded weights, or ``None`` for a fully pruned layer.

    transformers records attention weights from the attention modules it
    finds; a fully pruned layer's attention is :class:`NoHeads`, so it records
    nothing there and later layers' weights would shift into its slot.
    """
    recorded = iter([a for a in attentions or () if a is not None])  # GPT records None for a pruned layer
    per_layer = [next(recorded, None) if heads else None for heads in kept]
    if next(recorded, None) is not None:
        raise RuntimeError(f"the model returned more attention maps than its {len(kept)} layers")
    return per_layer


def _segments_from_separators(tokenizer, ids: torch.Tensor, is_pair: bool) -> torch.Tensor:
    """Segment ids for tokenizers without ``token_type_ids`` (RoBERTa, GPT-2): 1 after the first separator."""
    segments = torch.zeros_like(ids)
    sep = getattr(tokenizer, "sep_token_id", None)
    if not is_pair or sep is None:
        return segments
    positions = (ids == sep).nonzero().flatten().tolist()
    if positions:
        segments[positions[0] + 1:] = 1
    return segments
