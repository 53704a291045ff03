"""Hidden states of words and sentences, on every layer, under a head mask.

The pipeline probes (:mod:`bertology_widgets.analyses.pipeline`) read vectors of
*units*: a word (the mean of its sub-word tokens' states, Tenney et al.'s
choice) or a sentence (its first or last token, or the mean of its tokens). Both
are a list of token positions per unit; :func:`unit_states` runs the model
once per batch, with ``output_hidden_states=True`` under
:func:`~bertology_widgets.core.gating.mask_heads` (the same gating, zero or mean
ablation, as every other analysis), and averages each unit's positions on
every layer.

Words come from a tokenizer call with ``is_split_into_words=True``; byte-level
BPE tokenizers (GPT-2, RoBERTa, ModernBERT) are given ``add_prefix_space=True``
on a copy, so that every word is tokenized as it is in running text (with its
leading space). For a causal model (GPT-2, Llama) a word's state has seen only
the words before it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..core.batching import (
    EncodedExamples,
    collate,
    encode_examples,
    length_sorted_batches,
)
from ..core.bound import BoundModel, as_bound
from ..core.gating import HeadMaskLike
from ..core.modes import eval_mode
from ..runtime.progress import Progress, progress_reporter
from .representations import pooling_positions

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from ..glue import Example
    from .ud import UDSentence


@dataclass
class EncodedUnits:
    """Token ids of some examples, and which token positions make up each unit.

    Attributes
    ----------
    encoded : EncodedExamples
        Unpadded token ids, one list per example.
    units : list of list of list of int
        ``units[i][u]``: the token positions of unit ``u`` of example ``i``;
        an empty list marks a unit that was dropped (cut by ``max_length``).
    dropped : int
        Units dropped.
    """

    encoded: EncodedExamples
    units: list
    dropped: int = 0

    @property
    def offsets(self) -> np.ndarray:
        """``(examples + 1,)``: unit ``u`` of example ``i`` is row ``offsets[i] + u`` of the states."""
        return np.concatenate([[0], np.cumsum([len(u) for u in self.units])]).astype(np.int64)

    @property
    def kept(self) -> np.ndarray:
        """``(units,)`` bool: which units have at least one token."""
        return np.array([bool(positions) for unit in self.units for positions in unit], dtype=bool)


def _byte_level_pre_tokenizer(tokenizer):
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    return pre if pre is not None and type(pre).__name__ == "ByteLevel" else None


def word_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """``tokenizer``, or a copy with ``add_prefix_space=True`` for byte-level BPE (the original is untouched)."""
    pre = _byte_level_pre_tokenizer(tokenizer)
    if pre is None or pre.add_prefix_space:
        return tokenizer
    words = copy.deepcopy(tokenizer)
    words.backend_tokenizer.pre_tokenizer.add_prefix_space = True
    if hasattr(words, "add_prefix_space"):
        words.add_prefix_space = True
    return words


def encode_words(tokenizer: PreTrainedTokenizerBase, sentences: Sequence[UDSentence],
                 max_length: int = 128) -> EncodedUnits:
    """Tokenize pre-split sentences; each word is a unit made of its sub-word positions.

    A word whose tokens do not all fit in ``max_length`` (special tokens
    included) is dropped and counted, as is a word the tokenizer turns into
    no token at all.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("word probes need a fast tokenizer (for word_ids()); load the tokenizer with use_fast=True")
    tok = word_tokenizer(tokenizer)
    words = [list(s.words) for s in sentences]
    enc = tok(words, is_split_into_words=True, truncation=True, max_length=max_length)
    full = tok(words, is_split_into_words=True, truncation=False)
    units, dropped = [], 0
    for i, sentence in enumerate(sentences):
        positions: list[list[int]] = [[] for _ in sentence.words]
        for pos, w in enumerate(enc.word_ids(i)):
            if w is not None:
                positions[w].append(pos)
        full_counts = np.bincount([w for w in full.word_ids(i) if w is not None], minlength=len(sentence.words))
        for w, kept in enumerate(positions):
            if len(kept) != full_counts[w] or not kept:
                positions[w] = []
                dropped += 1
        units.append(positions)
    truncated = np.array([len(f) > max_length for f in full["input_ids"]], dtype=bool)
    encoded = EncodedExamples(input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids"),
                              truncated=truncated)
    return EncodedUnits(encoded, units, dropped)


def sentence_positions(length: int, pooling: str, causal: bool) -> list[int]:
    """The token positions of a sentence of ``length`` tokens that ``pooling`` averages.

    ``"cls"``: the first token (encoders) or the last (decoders); ``"mean"``:
    every token. The same choice as :func:`~bertology_widgets.analyses.representations.pooling_positions`,
    which this reads.
    """
    weights = pooling_positions(torch.ones(1, length), pooling, causal)[0]
    return torch.nonzero(weights).flatten().tolist()


def encode_sentences(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], causal: bool,
                     max_length: int = 128, pooling: str = "cls") -> EncodedUnits:
    """GLUE examples, one unit each: the positions :func:`sentence_positions` pools.

    ``"cls"`` reads the first token (encoders) or the last (decoders), ``"mean"`` averages
    every token of the sentence (padding comes later, in the batches, and is never a position);
    another ``pooling`` is refused by :func:`sentence_positions`.
    """
    encoded = encode_examples(tokenizer, examples, max_length)
    units = [[sentence_positions(len(ids), pooling, causal)] for ids in encoded.input_ids]
    return EncodedUnits(encoded, units, 0)


@torch.inference_mode()
def unit_states(model: BoundModel | nn.Module, tokenizer: PreTrainedTokenizerBase | None, units: EncodedUnits,
                mask: HeadMaskLike = None, ablation: str | None = None, means=None, batch_size: int = 32,
                progress: Progress = False, desc: str = "hidden states") -> np.ndarray:
    """Every unit's vector on every layer: ``(layers + 1, units, hidden)`` float32 (dropped units: zeros).

    ``model``: a bound model (``tokenizer`` then ``None``) or a model and its tokenizer, bound here.
    ``ablation=None`` uses the bound model's default ablation (see ``BoundModel.masked``).
    Row 0 is the embedding output. ``progress`` counts batches. The forward
    pass's batch size changes the numbers only by float round-off (padding is
    masked; units are averaged in float32 on the CPU in a fixed order).
    """
    bound = as_bound(model, tokenizer)
    model = bound.model
    encoded, offsets = units.encoded, units.offsets
    device = bound.device
    pad, with_types = bound.pad_id, bound.uses_token_types
    batches = length_sorted_batches(encoded.lengths, batch_size)
    out = None
    report = progress_reporter(progress, len(batches), desc=desc, unit="batch")
    with eval_mode(model), bound.masked(mask, ablation, means), report:
        for indices in report.iterate(batches):
            batch = collate(encoded, indices, pad, device, with_types)
            hidden = torch.stack(model(**batch, output_hidden_states=True).hidden_states).float().cpu()
            if out is None:
                out = np.zeros((hidden.shape[0], int(offsets[-1]), hidden.shape[-1]), dtype=np.float32)
            for row, i in enumerate(indices):
                for u, positions in enumerate(units.units[i]):
                    if positions:
                        out[:, offsets[i] + u] = hidden[:, row, positions].mean(dim=1).numpy()
    if out is None:
        raise ValueError("no examples to compute hidden states for")
    return out


__all__ = ["EncodedUnits", "encode_sentences", "encode_words", "sentence_positions", "unit_states", "word_tokenizer"]
