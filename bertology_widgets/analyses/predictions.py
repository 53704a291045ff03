"""What a language model predicts for one text, under a head mask.

- Causal LMs (:func:`next_token_predictions`): the ``k`` most probable next
  tokens after the text, and each token's surprisal, its negative
  log-likelihood (nats) given the tokens before it.
- Masked LMs (:func:`mask_fills`): the ``k`` most probable fills of every
  mask token typed in the text (the tokenizer's own: ``[MASK]`` for BERT,
  ``<mask>`` for RoBERTa). A text without one gets no fills and a ``note``
  that says how to add one.

:func:`text_predictions` picks the one the model's head calls for. Each runs
one forward pass under the bound model's mask and ablation
(:meth:`~bertology_widgets.core.bound.BoundModel.masked`); the model is not
changed. The text is tokenized as the session's capture does
(:func:`~bertology_widgets.core.capturing.encode`), so the tokens line up
with the attention maps.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.bound import BoundModel
from ..core.capturing import _model_inputs, encode
from ..core.gating import HeadMaskLike
from ..core.modes import eval_mode
from ..core.unembedding import unembedding_for

DEFAULT_TOP_K = 5


@dataclass
class TopTokens:
    """The ``k`` most probable tokens read at one position.

    Attributes
    ----------
    position : int
        The position whose output is read: the last one for the next token, a mask token's for a fill.
    ids : np.ndarray, shape ``(k,)``
    probs : np.ndarray, shape ``(k,)``
        Softmax over the vocabulary, most probable first.
    tokens : list of str
        ``ids`` decoded one token each.
    """

    position: int
    ids: np.ndarray
    probs: np.ndarray
    tokens: list

    def to_dict(self) -> dict:
        return {"position": int(self.position), "ids": self.ids.astype(int).tolist(),
                "probs": np.round(self.probs.astype(np.float64), 6).tolist(), "tokens": list(self.tokens)}


@dataclass
class TextPredictions:
    """A language model's predictions for one text.

    Attributes
    ----------
    kind : {"causal", "masked"}
    tokens : list of str
        The ``pos`` input tokens.
    input_ids : np.ndarray, shape ``(pos,)``
    slots : list of TopTokens
        Causal: one, the next token after the text. Masked: one per mask token, in text order (none
        when the text has no mask token: see ``note``).
    surprisal : np.ndarray, shape ``(pos,)``, or None
        Causal only: ``-log p(token_i | tokens before i)`` in nats; NaN at position 0, which nothing predicts.
    note : str
        Why there is nothing to show (a masked LM's text without a mask token), else ``""``.
    mask : np.ndarray, shape ``(layers, heads)``, or None
        The head gates of the pass (None: every head).
    """

    kind: str
    tokens: list
    input_ids: np.ndarray
    slots: list = field(default_factory=list)
    surprisal: np.ndarray | None = None
    note: str = ""
    mask: np.ndarray | None = None

    def to_dict(self) -> dict:
        """JSON-ready: ``kind``, ``tokens``, ``slots`` (each ``position``, ``ids``, ``probs``, ``tokens``),
        ``surprisal`` (None where undefined), ``note``."""
        surprisal = None if self.surprisal is None else [
            None if not np.isfinite(v) else round(float(v), 6) for v in self.surprisal]
        return {"kind": self.kind, "tokens": list(self.tokens), "slots": [s.to_dict() for s in self.slots],
                "surprisal": surprisal, "note": self.note}


def mask_token_hint(tokenizer) -> str:
    """How to ask a masked LM for a fill: type the tokenizer's own mask token into the text."""
    token = getattr(tokenizer, "mask_token", None)
    if not token:
        return "this tokenizer has no mask token, so there is nothing to fill in"
    return (f"no {token} in the text: type {token} where a word should be filled in, "
            f"e.g. \"The capital of France is {token}.\"")


def _forward(bound: BoundModel, text: str, mask: HeadMaskLike, max_length: int | None):
    """One pass under ``mask``: ``(ids (pos,), logits (pos, vocab) float32)``; over-long text is cut as a capture
    cuts it (its warning is the capture's to give)."""
    model, tokenizer = bound.model, bound.tokenizer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch, _ = encode(tokenizer, model, text, None, max_length)
    inputs = {k: v.to(bound.device) for k, v in _model_inputs(model, batch).items()}
    with eval_mode(model), bound.masked(mask):
        logits = model(**inputs).logits[0].float()
    return inputs["input_ids"][0], logits


def _top(tokenizer, logits: torch.Tensor, position: int, k: int) -> TopTokens:
    """The ``k`` most probable tokens of ``logits[position]`` (``logits``: ``(pos, vocab)``)."""
    probs = logits[position].softmax(-1)
    values, ids = probs.topk(min(int(k), probs.shape[-1]))
    ids_list = ids.cpu().tolist()
    return TopTokens(int(position), np.asarray(ids_list), values.cpu().numpy(),
                     [tokenizer.decode([i]) for i in ids_list])


def _check(bound: BoundModel, kind: str, k: int) -> None:
    if int(k) < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    actual = unembedding_for(bound.model).kind
    if actual != kind:
        other = "mask_fills" if actual == "masked" else "next_token_predictions"
        raise ValueError(f"{type(bound.model).__name__} is a {actual} LM: use {other} (or text_predictions)")


@torch.inference_mode()
def next_token_predictions(bound: BoundModel, text: str, k: int = DEFAULT_TOP_K, mask: HeadMaskLike = None,
                           max_length: int | None = None) -> TextPredictions:
    """A causal LM's top ``k`` next tokens after ``text`` and the surprisal of each of its tokens.

    Parameters
    ----------
    bound : BoundModel
        A causal LM (GPT-2, GPT, Llama-style).
    text : str
        Tokenized as a capture does; empty: ``ValueError``; longer than ``max_length`` (default: the
        model's maximum): cut.
    k : int
    mask : array-like, shape ``(layers, heads)``, optional
        Head gates (the bound model's ablation applies).

    Returns
    -------
    TextPredictions
        One slot (the last position's output) and ``surprisal`` ``(pos,)`` in nats, NaN at position 0.
    """
    _check(bound, "causal", k)
    ids, logits = _forward(bound, text, mask, max_length)
    surprisal = np.full(ids.shape[0], np.nan)
    if ids.shape[0] > 1:
        nll = -logits[:-1].log_softmax(-1).gather(-1, ids[1:, None])[:, 0]  # (pos - 1,)
        surprisal[1:] = nll.cpu().numpy()
    return TextPredictions("causal", bound.tokenizer.convert_ids_to_tokens(ids.tolist()), ids.cpu().numpy(),
                           [_top(bound.tokenizer, logits, ids.shape[0] - 1, k)], surprisal,
                           mask=None if mask is None else bound.gates(mask).cpu().numpy())


@torch.inference_mode()
def mask_fills(bound: BoundModel, text: str, k: int = DEFAULT_TOP_K, mask: HeadMaskLike = None,
               max_length: int | None = None) -> TextPredictions:
    """A masked LM's top ``k`` fills of every mask token in ``text`` (``[MASK]``, ``<mask>``: the tokenizer's own).

    Parameters are those of :func:`next_token_predictions`, for a masked LM (BERT, RoBERTa, DistilBERT).

    Returns
    -------
    TextPredictions
        One slot per mask token, in text order; none, and a ``note`` that says how to add one, for a text
        without a mask token (the model is then not run).
    """
    _check(bound, "masked", k)
    tokenizer = bound.tokenizer
    mask_id = getattr(tokenizer, "mask_token_id", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids = encode(tokenizer, bound.model, text, None, max_length)[0]["input_ids"][0]
    positions = [] if mask_id is None else (ids == mask_id).nonzero().flatten().tolist()
    gates = None if mask is None else bound.gates(mask).cpu().numpy()
    tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
    if not positions:
        return TextPredictions("masked", tokens, ids.numpy(), note=mask_token_hint(tokenizer), mask=gates)
    ids, logits = _forward(bound, text, mask, max_length)
    return TextPredictions("masked", tokens, ids.cpu().numpy(), [_top(tokenizer, logits, p, k) for p in positions],
                           mask=gates)


def text_predictions(bound: BoundModel, text: str, k: int = DEFAULT_TOP_K, mask: HeadMaskLike = None,
                     max_length: int | None = None) -> TextPredictions:
    """:func:`next_token_predictions` for a causal LM, :func:`mask_fills` for a masked LM.

    Raises ``ValueError`` for a model without a language-model head (a sequence classifier).
    """
    if unembedding_for(bound.model).kind == "causal":
        return next_token_predictions(bound, text, k, mask, max_length)
    return mask_fills(bound, text, k, mask, max_length)


__all__ = ["DEFAULT_TOP_K", "TextPredictions", "TopTokens", "mask_fills", "mask_token_hint",
           "next_token_predictions", "text_predictions"]
