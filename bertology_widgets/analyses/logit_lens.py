"""The logit lens: what each layer's residual stream would predict (nostalgebraist 2020).

:func:`logit_lens` runs one text and reads the residual stream before the
first layer (the embeddings) and after every layer through the model's own
final normalisation and unembedding (:mod:`~bertology_widgets.core.unembedding`).
Row ``l + 1`` is the stream after layer ``l``; the last row is exactly the
model's own output. The pass runs under the bound model's head mask and
ablation, so a masked head changes the rows above its layer only.

For a causal LM position ``i`` predicts token ``i + 1``; for a masked LM it
predicts the token at ``i`` (the fill, at a mask token).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from torch import nn

from ..core.bound import BoundModel
from ..core.capturing import check_text, model_max_length
from ..core.gating import HeadMaskLike
from ..core.hooks import this_thread_only
from ..core.modes import eval_mode
from ..core.unembedding import unembedding_for

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DEFAULT_TOP_K = 5


@dataclass
class LogitLens:
    """Each layer's prediction at each position of one text.

    Attributes
    ----------
    tokens : list of str
        The ``pos`` input tokens.
    input_ids : np.ndarray, shape ``(pos,)``
    top_ids : np.ndarray, shape ``(layers + 1, pos, k)``
        The ``k`` most probable token ids of each row (row 0: the embeddings; row ``l + 1``: after layer ``l``).
    top_probs : np.ndarray, shape ``(layers + 1, pos, k)``
        Their probabilities (softmax over the vocabulary).
    top_tokens : list, ``(layers + 1) x pos x k`` str
        ``top_ids`` decoded one token each.
    final_ids : np.ndarray, shape ``(pos,)``
        The model's own top-1 prediction at each position (``top_ids[-1, :, 0]``).
    final_rank : np.ndarray, shape ``(layers + 1, pos)``
        The rank of ``final_ids`` in each row's distribution: 1 is the top token.
    final_probs : np.ndarray, shape ``(layers + 1, pos)``
        The probability of ``final_ids`` in each row.
    kind : {"causal", "masked"}
        Whether position ``i`` predicts token ``i + 1`` (causal) or token ``i`` (masked).
    mask : np.ndarray, shape ``(layers, heads)``, or None
        The head gates of the pass (None: every head).
    """

    tokens: list
    input_ids: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    top_tokens: list
    final_ids: np.ndarray
    final_rank: np.ndarray
    final_probs: np.ndarray
    kind: str
    mask: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        """``layers + 1``."""
        return int(self.top_ids.shape[0])

    def first_top_layer(self, token_id: int, position: int = -1) -> int | None:
        """The first row whose top-1 at ``position`` is ``token_id`` (0: the embeddings), or None if none is."""
        rows = np.flatnonzero(self.top_ids[:, position, 0] == int(token_id))
        return int(rows[0]) if rows.size else None

    def to_dict(self) -> dict:
        """JSON-ready: ``tokens``, ``top_tokens``, ``top_probs``, ``final_rank``, ``final_probs``, ``kind``."""
        return {
            "tokens": list(self.tokens),
            "top_tokens": self.top_tokens,
            "top_probs": np.round(self.top_probs.astype(np.float64), 6).tolist(),
            "final_rank": self.final_rank.astype(int).tolist(),
            "final_probs": np.round(self.final_probs.astype(np.float64), 6).tolist(),
            "kind": self.kind,
        }


def encode_text(tokenizer: PreTrainedTokenizerBase, model: nn.Module, text: str) -> torch.Tensor:
    """``tokenizer(text)`` as its defaults have it: ids ``(1, pos)``.

    Raises ``ValueError`` for an empty text, or one longer than the model takes (nothing is cut silently).
    """
    check_text(text)
    ids = tokenizer(text)["input_ids"]
    limit = model_max_length(model, tokenizer)
    if len(ids) > limit:
        raise ValueError(f"the text has {len(ids)} tokens; this model takes at most {limit}: give a shorter text")
    if not ids:
        raise ValueError("the text gives no tokens; type a sentence")
    return torch.tensor([ids], dtype=torch.long)


@contextlib.contextmanager
def residual_stream(layers: nn.ModuleList) -> Iterator[list[torch.Tensor]]:
    """Record the residual stream for the ``with`` block: the input of the first layer, then each layer's output.

    The list it yields fills during a forward with ``len(layers) + 1`` tensors ``(batch, pos, hidden)``.
    """
    stream: list[torch.Tensor] = []

    def first_input(module, args, kwargs):
        hidden = args[0] if args else kwargs.get("hidden_states", kwargs.get("x"))
        stream.append(hidden.detach())

    def output(module, args, result):
        stream.append((result[0] if isinstance(result, (tuple, list)) else result).detach())

    handles = [layers[0].register_forward_pre_hook(this_thread_only(first_input), with_kwargs=True)]
    handles += [layer.register_forward_hook(this_thread_only(output)) for layer in layers]
    try:
        yield stream
    finally:
        for handle in handles:
            handle.remove()


@torch.inference_mode()
def logit_lens(bound: BoundModel, text: str, k: int = DEFAULT_TOP_K, mask: HeadMaskLike = None) -> LogitLens:
    """Read every layer's residual stream through the model's final norm and unembedding.

    Parameters
    ----------
    bound : BoundModel
        A causal or masked LM (see :func:`~bertology_widgets.core.unembedding.unembedding_for`).
    text : str
        Tokenized as ``tokenizer(text)`` does by default. Empty, or longer than the model takes: ``ValueError``.
    k : int
        How many top tokens to keep per layer and position.
    mask : array-like, shape ``(layers, heads)``, optional
        Head gates for the pass; the bound model's ablation (zero or mean) applies.

    Returns
    -------
    LogitLens
        ``top_ids`` / ``top_probs`` ``(layers + 1, pos, k)``, ``final_rank`` ``(layers + 1, pos)``.
    """
    if int(k) < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    model, tokenizer = bound.model, bound.tokenizer
    unembed = unembedding_for(model)
    ids = encode_text(tokenizer, model, text).to(bound.device)
    layers = bound.adapter.layer_modules(model)
    with eval_mode(model), bound.masked(mask), residual_stream(layers) as stream:
        logits = model(input_ids=ids).logits[0].float()  # (pos, vocab)
    final_ids = logits.argmax(-1)  # (pos,)
    k = min(int(k), logits.shape[-1])
    top_ids, top_probs, ranks, final_probs = [], [], [], []
    for hidden in stream:
        row = unembed(hidden)[0].float()  # (pos, vocab)
        probs = row.softmax(-1)
        values, indices = probs.topk(k, dim=-1)
        target = row.gather(-1, final_ids[:, None])  # (pos, 1)
        top_ids.append(indices.cpu())
        top_probs.append(values.cpu())
        ranks.append((row > target).sum(-1).cpu() + 1)
        final_probs.append(probs.gather(-1, final_ids[:, None])[:, 0].cpu())
    top = torch.stack(top_ids).numpy()
    return LogitLens(
        tokens=tokenizer.convert_ids_to_tokens(ids[0].tolist()),
        input_ids=ids[0].cpu().numpy(),
        top_ids=top,
        top_probs=torch.stack(top_probs).numpy(),
        top_tokens=[[[tokenizer.decode([int(t)]) for t in pos] for pos in row] for row in top],
        final_ids=final_ids.cpu().numpy(),
        final_rank=torch.stack(ranks).numpy(),
        final_probs=torch.stack(final_probs).numpy(),
        kind=unembed.kind,
        mask=None if mask is None else bound.gates(mask).detach().cpu().numpy(),
    )


__all__ = ["DEFAULT_TOP_K", "LogitLens", "encode_text", "logit_lens", "residual_stream"]
