"""A language model's own way from a residual stream to vocabulary logits.

The logit lens reads every layer's residual stream ``(batch, pos, hidden)``
through what the model applies after its last layer. That differs per family:

- Llama-style (``LlamaForCausalLM``, Mistral, Qwen2): the final RMSNorm
  ``model.norm``, then ``lm_head``;
- GPT-2 (``GPT2LMHeadModel``): the final LayerNorm ``transformer.ln_f``,
  then ``lm_head`` (tied to the token embedding);
- GPT (``OpenAIGPTLMHeadModel``): its blocks are post-norm, so there is no
  final norm: ``lm_head`` alone (tied);
- BERT family (``BertForMaskedLM``, ``RobertaForMaskedLM``,
  ``DistilBertForMaskedLM``): the masked-LM head, a transform (dense,
  activation, LayerNorm) and the decoder.

:func:`unembedding_for` returns that map for a model, or raises
``ValueError`` for a model without a language-model head (a sequence
classifier, a base model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn


@dataclass(frozen=True)
class Unembedding:
    """Final normalisation and unembedding of one language model.

    Attributes
    ----------
    kind : {"causal", "masked"}
        The head's objective: the next token, or the token at a masked position.
    final_norm : nn.Module or None
        Applied first (None where the family has none, or where it is part of ``head``).
    head : callable
        ``(batch, pos, hidden) -> (batch, pos, vocab)`` logits.
    """

    kind: str
    final_norm: nn.Module | None
    head: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits ``(..., vocab)`` for a residual stream ``(..., hidden)``."""
        if self.final_norm is not None:
            hidden = self.final_norm(hidden)
        return self.head(hidden)


def _distilbert_head(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    def head(hidden: torch.Tensor) -> torch.Tensor:
        hidden = model.vocab_layer_norm(model.activation(model.vocab_transform(hidden)))
        return model.vocab_projector(hidden)

    return head


def unembedding_for(model: nn.Module) -> Unembedding:
    """The final norm and LM head of ``model`` (see the module docstring).

    Raises
    ------
    ValueError
        When ``model`` has no language-model head (a sequence classifier or a base model): the message
        names the classes that have one.
    """
    name = type(model).__name__
    lm: Any = model  # a transformers model: its submodules are read by name
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    lm_head = getattr(lm, "lm_head", None)
    if model_type == "gpt2" and lm_head is not None:
        return Unembedding("causal", lm.transformer.ln_f, lm_head)
    if model_type == "openai-gpt" and lm_head is not None:
        return Unembedding("causal", None, lm_head)
    if model_type in ("llama", "mistral", "qwen2") and lm_head is not None:
        return Unembedding("causal", lm.model.norm, lm_head)
    if model_type == "bert" and hasattr(getattr(lm, "cls", None), "predictions"):
        return Unembedding("masked", None, lm.cls.predictions)  # transform (dense, activation, LayerNorm), decoder
    if model_type in ("roberta", "xlm-roberta", "camembert") and lm_head is not None:
        return Unembedding("masked", None, lm_head)
    if model_type == "distilbert" and hasattr(model, "vocab_projector"):
        return Unembedding("masked", None, _distilbert_head(lm))
    raise ValueError(
        f"{name} has no language-model head to read the layers through; give a causal LM (GPT2LMHeadModel, "
        "OpenAIGPTLMHeadModel, LlamaForCausalLM) or a masked LM (BertForMaskedLM, RobertaForMaskedLM, "
        "DistilBertForMaskedLM)")


def has_lm_head(model: nn.Module) -> bool:
    """Whether :func:`unembedding_for` knows ``model``'s language-model head."""
    try:
        unembedding_for(model)
    except ValueError:
        return False
    return True


__all__ = ["Unembedding", "has_lm_head", "unembedding_for"]
