"""Induction heads (Olsson et al. 2022): heads that copy what followed a token's earlier occurrence.

The probe is a sequence of random tokens repeated twice. In the second half
every token has been seen once before; an induction head at that token looks
at the token that came right after its first occurrence, and the model can
then predict the repeated half from context alone.

The sequences (module constants, all arguments of :func:`repeated_tokens`)
-------------------------------------------------------------------------
- :data:`INDUCTION_SEQUENCES` (8) sequences of :data:`INDUCTION_LENGTH` (50)
  tokens, each then repeated once: ``2 * 50`` tokens, after the tokenizer's
  BOS token where it has one (GPT-2 and Llama-style tokenizers do; a
  WordPiece tokenizer has none, and nothing is prepended).
- Tokens are drawn uniformly, without replacement within a sequence (so every
  token's first occurrence is unique), from the ids in
  :data:`INDUCTION_TOKEN_RANGE` ``[1000, 10000)`` (cut to the vocabulary),
  leaving out the tokenizer's special tokens: ordinary, frequent tokens in
  BPE and WordPiece vocabularies alike.
- ``numpy.random.default_rng(seed)`` with :data:`INDUCTION_SEED` (0).

Scores
------
- ``induction`` ``(layers, heads)``: for every second-half token at position
  ``q`` (first-half copy at ``q - L``), the attention weight on position
  ``q - L + 1``, the token right after its first occurrence; the mean over
  the ``L`` second-half queries of every sequence.
- ``in_context_loss``: the mean next-token loss (nats) on the repeated half,
  over the second-half tokens ``1 .. L - 1``; the first token of the second
  half cannot be inferred from context and is left out. A model that copies
  from context scores near 0, one that does not near ``log(vocabulary)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..core.bound import BoundModel
from ..core.capturing import _attentions_per_layer, attention_implementation, model_max_length
from ..core.gating import HeadMaskLike
from ..core.modes import eval_mode
from ..core.unembedding import has_lm_head, unembedding_for

INDUCTION_LENGTH = 50
INDUCTION_SEQUENCES = 8
INDUCTION_TOKEN_RANGE = (1000, 10000)
INDUCTION_SEED = 0


@dataclass(frozen=True)
class RepeatedTokens:
    """Random token sequences, each repeated twice.

    Attributes
    ----------
    input_ids : torch.Tensor, shape ``(count, offset + 2 * length)``
    length : int
        ``L``, the length of one half.
    offset : int
        1 when a BOS token leads each row, else 0.
    """

    input_ids: torch.Tensor
    length: int
    offset: int

    @property
    def second_half(self) -> torch.Tensor:
        """Query positions ``(L,)`` of the repeated half."""
        return torch.arange(self.offset + self.length, self.offset + 2 * self.length)


def repeated_tokens(tokenizer, vocab_size: int, length: int = INDUCTION_LENGTH, count: int = INDUCTION_SEQUENCES,
                    seed: int = INDUCTION_SEED, token_range: tuple[int, int] = INDUCTION_TOKEN_RANGE) -> RepeatedTokens:
    """The probe sequences (see the module docstring)."""
    low, high = int(token_range[0]), min(int(token_range[1]), int(vocab_size))
    special = set(getattr(tokenizer, "all_special_ids", None) or ())
    candidates = np.array([i for i in range(low, high) if i not in special])
    if length < 2 or count < 1:
        raise ValueError(f"need sequences of at least 2 tokens and at least 1 sequence; got length {length}, "
                         f"count {count}")
    if candidates.size < length:
        raise ValueError(f"token range [{low}, {high}) holds {candidates.size} ordinary tokens; "
                         f"a sequence of {length} distinct tokens needs more")
    rng = np.random.default_rng(seed)
    halves = np.stack([rng.choice(candidates, size=length, replace=False) for _ in range(count)])
    rows = np.concatenate([halves, halves], axis=1)
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        rows = np.concatenate([np.full((count, 1), bos), rows], axis=1)
    return RepeatedTokens(torch.as_tensor(rows, dtype=torch.long), int(length), int(bos is not None))


@dataclass
class InductionScores:
    """What :func:`induction_scores` measured.

    Attributes
    ----------
    induction : np.ndarray, shape ``(layers, heads)``
        Mean attention to the token after the earlier occurrence, 0..1 (NaN for a pruned head).
    in_context_loss : float or None
        Mean loss (nats per token) on the repeated half; None for a model without a causal LM head.
    length, count, seed : int
    token_range : tuple of int
    """

    induction: np.ndarray
    in_context_loss: float | None
    length: int
    count: int
    seed: int
    token_range: tuple

    def top_heads(self, n: int = 10) -> list[tuple[int, int, float]]:
        """The ``n`` highest-scoring heads as ``(layer, head, score)``, best first."""
        return top_heads(self.induction, n)


def top_heads(scores: np.ndarray, n: int = 10) -> list[tuple[int, int, float]]:
    """The ``n`` highest of ``scores`` ``(layers, heads)`` as ``(layer, head, score)``, best first (NaN last)."""
    flat = np.nan_to_num(scores, nan=-np.inf).ravel()
    order = np.argsort(-flat, kind="stable")[:n]
    heads = scores.shape[1]
    return [(int(i // heads), int(i % heads), float(flat[i])) for i in order]


def probe_fits(bound: BoundModel, length: int = INDUCTION_LENGTH) -> bool:
    """Whether the model takes a probe sequence (BOS and ``2 * length`` tokens) in one pass."""
    return 2 * length + 1 <= model_max_length(bound.model, bound.tokenizer)


def _probe(bound: BoundModel, length: int, count: int, seed: int, token_range: tuple[int, int]) -> RepeatedTokens:
    model: Any = bound.model
    vocab = int(model.get_input_embeddings().num_embeddings)
    probe = repeated_tokens(bound.tokenizer, vocab, length, count, seed, token_range)
    limit = model_max_length(model, bound.tokenizer)
    if probe.input_ids.shape[1] > limit:
        raise ValueError(f"the induction probe has {probe.input_ids.shape[1]} tokens; this model takes at most "
                         f"{limit}: give length={(limit - probe.offset) // 2} or less")
    return probe


def _copy_loss(logits: torch.Tensor, probe: RepeatedTokens) -> float:
    """Mean next-token loss on second-half tokens ``1 .. L - 1``; logits ``(count, pos, vocab)``."""
    predictors = probe.second_half[:-1].to(logits.device)  # positions predicting tokens L+1 .. 2L-1 of each half
    targets = probe.input_ids.to(logits.device)[:, predictors + 1]
    chosen = logits[:, predictors].float()
    return float(F.cross_entropy(chosen.reshape(-1, chosen.shape[-1]), targets.reshape(-1)))


@torch.inference_mode()
def in_context_loss(bound: BoundModel, mask: HeadMaskLike = None, *, length: int = INDUCTION_LENGTH,
                    count: int = INDUCTION_SEQUENCES, seed: int = INDUCTION_SEED,
                    token_range: tuple[int, int] = INDUCTION_TOKEN_RANGE) -> float:
    """The in-context copying loss (nats per token, see the module docstring) under head ``mask`` ``(layers, heads)``.

    The bound model's ablation applies to ``mask``. Raises ``ValueError`` for a model without a causal LM head.
    """
    if unembedding_for(bound.model).kind != "causal":
        raise ValueError("the in-context copying loss needs a causal language model (next-token prediction); "
                         f"{type(bound.model).__name__} is a masked LM")
    probe = _probe(bound, length, count, seed, token_range)
    with eval_mode(bound.model), bound.masked(mask):
        logits = bound.model(input_ids=probe.input_ids.to(bound.device), use_cache=False).logits
    return _copy_loss(logits, probe)


@torch.inference_mode()
def induction_scores(bound: BoundModel, mask: HeadMaskLike = None, *, length: int = INDUCTION_LENGTH,
                     count: int = INDUCTION_SEQUENCES, seed: int = INDUCTION_SEED,
                     token_range: tuple[int, int] = INDUCTION_TOKEN_RANGE) -> InductionScores:
    """Every head's induction score ``(layers, heads)`` and the in-context copying loss, in one pass.

    Parameters
    ----------
    bound : BoundModel
        A causal model (decoder). The loss needs a causal LM head; without one it is None.
    mask : array-like, shape ``(layers, heads)``, optional
        Head gates for the pass (the bound model's ablation applies).
    length, count, seed, token_range
        The probe sequences (see the module docstring).

    Raises
    ------
    ValueError
        For a bidirectional model (BERT family): every token sees the repeat, so the score means nothing.
    """
    if not bound.is_causal:
        raise ValueError("induction scores are defined for causal (decoder) models; "
                         f"{type(bound.model).__name__} attends both ways")
    model = bound.model
    probe = _probe(bound, length, count, seed, token_range)
    causal_lm = has_lm_head(model) and unembedding_for(model).kind == "causal"
    queries = probe.second_half
    keys = queries - probe.length + 1
    scores = np.full(bound.shape, np.nan)
    kept = bound.kept_heads()
    with eval_mode(model), attention_implementation(model, "eager"), bound.masked(mask):
        out = model(input_ids=probe.input_ids.to(bound.device), output_attentions=True, use_cache=False)
    for layer, att in enumerate(_attentions_per_layer(out.attentions, kept)):
        if att is None:
            continue
        chosen = att.float()[:, :, queries, keys]  # (count, kept heads, L)
        scores[layer, kept[layer]] = chosen.mean((0, 2)).cpu().numpy()
    loss = _copy_loss(out.logits, probe) if causal_lm else None
    return InductionScores(scores, loss, probe.length, int(count), int(seed), tuple(token_range))


__all__ = ["INDUCTION_LENGTH", "INDUCTION_SEED", "INDUCTION_SEQUENCES", "INDUCTION_TOKEN_RANGE", "InductionScores",
           "RepeatedTokens", "in_context_loss", "induction_scores", "probe_fits", "repeated_tokens",
           "top_heads"]
