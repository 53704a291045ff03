"""The table of supported architectures.

Each :class:`ArchitectureAdapter` says, for one family of Hugging Face models,
where the transformer layers are, which module is each layer's attention
output projection (the point where heads are gated), how many heads a layer
has and how big they are, how to slice Q/K/V for pruning, and how the
sequence-classification head turns the last hidden state into logits.

Everything else in the package (gating, pruning, capture, incremental
re-evaluation) is written against this table, so a new family is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, cast

import torch
from torch import nn


def get_submodule(root: nn.Module, path: str) -> nn.Module:
    """``get_submodule`` that accepts the empty path for ``root`` itself."""
    return root.get_submodule(path) if path else root


def _gpt_style_pool(logits: torch.Tensor, batch: dict, config) -> torch.Tensor:
    """Pick the logits of the right-most non-padding token, as GPT-2 and Llama do.

    logits: ``(batch, pos, labels)`` -> ``(batch, labels)``.
    """
    input_ids = batch.get("input_ids")
    pad = getattr(config, "pad_token_id", None)
    if pad is None or input_ids is None:
        last = torch.full((logits.shape[0],), -1, device=logits.device, dtype=torch.long)
    else:
        non_pad = (input_ids != pad).to(logits.device, torch.int32)
        positions = torch.arange(input_ids.shape[-1], device=logits.device, dtype=torch.int32)
        last = (positions * non_pad).argmax(-1)
    return logits[torch.arange(logits.shape[0], device=logits.device), last]


def _bert_head(model, hidden, batch):
    base = model.bert
    pooled = base.pooler(hidden) if base.pooler is not None else hidden[:, 0]
    return model.classifier(model.dropout(pooled))


def _sequence_head(model, hidden, batch):
    """RoBERTa / ELECTRA: the classifier reads the whole sequence output."""
    return model.classifier(hidden)


def _distilbert_head(model, hidden, batch):
    pooled = torch.relu(model.pre_classifier(hidden[:, 0]))
    return model.classifier(model.dropout(pooled))


def _deberta_v2_head(model, hidden, batch):
    """DeBERTa-v2/v3: ``ContextPooler`` (dense + activation on position 0), then the classifier."""
    return model.classifier(model.dropout(model.pooler(hidden)))


def _deberta_v2_unsupported(model) -> str | None:
    """DeBERTa-v2-xlarge's convolution after layer 0 sits outside the layers, where gating cannot follow it."""
    if int(getattr(model.config, "conv_kernel_size", 0) or 0) > 0:
        return ("this DeBERTa-v2 checkpoint adds a convolution after layer 0 (conv_kernel_size > 0), "
                "which bertology-widgets does not support; DeBERTa-v3 checkpoints have none")
    if int(getattr(getattr(model, "deberta", model), "z_steps", 0) or 0) > 1:
        return "DeBERTa-v2 with z_steps > 1 is not supported"
    return None


def _modernbert_head(model, hidden, batch):
    """ModernBERT: final norm, ``cls`` or masked ``mean`` pooling, prediction head, classifier."""
    hidden = model.model.final_norm(hidden)
    if model.config.classifier_pooling == "mean":
        mask = batch.get("attention_mask")
        if mask is None:
            mask = torch.ones(hidden.shape[:2], device=hidden.device, dtype=torch.bool)
        pooled = (hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True)
    else:
        pooled = hidden[:, 0]
    return model.classifier(model.drop(model.head(pooled)))


def _modernbert_layer_kind(model, index: int) -> str:
    """``"full_attention"`` or ``"sliding_attention"``: the two kinds get different masks and rotary tables."""
    return model.config.layer_types[index]


def _modernbert_layer_note(model, index: int) -> str:
    """``"local ±64 tokens"`` for a sliding-window layer, ``"global"`` for a full-attention one."""
    if _modernbert_layer_kind(model, index) == "sliding_attention":
        return f"local ±{int(model.config.local_attention) // 2} tokens"
    return "global"


def _gpt2_head(model, hidden, batch):
    return _gpt_style_pool(model.score(model.transformer.ln_f(hidden)), batch, model.config)


def _openai_gpt_head(model, hidden, batch):
    """GPT's blocks are post-norm: no final norm before the score."""
    return _gpt_style_pool(model.score(hidden), batch, model.config)


def _llama_head(model, hidden, batch):
    return _gpt_style_pool(model.score(model.model.norm(hidden)), batch, model.config)


@dataclass(frozen=True)
class ArchitectureAdapter:
    """Where the heads of one model family live.

    Attributes
    ----------
    name : str
        Human name, e.g. ``"BERT"``.
    model_types : tuple of str
        ``config.model_type`` values this adapter serves.
    base_prefix : str
        Attribute of a task model (``BertForSequenceClassification``) that
        holds the base model (``"bert"``); ``""`` when given the base model.
    layers : str
        Path from the base model to the ``nn.ModuleList`` of layers.
    attention_core : str
        Path from a layer to the module that computes per-head outputs
        (replaced by :class:`NoHeads` when every head of a layer is pruned).
    out_proj : str
        Path from a layer to the attention output projection. Its input is
        ``(batch, pos, head * d_head)``; the gating pre-hook sits here.
    qkv : tuple of str
        Paths from a layer to the Q, K and V projections (one fused path for
        GPT-2's ``c_attn``).
    conv1d : bool
        True when projections are GPT-2 ``Conv1D`` (weight ``(in, out)``).
    head_count_attrs : tuple of str
        Attributes of the attention core holding the head count, updated by pruning.
    classifier_head : callable
        ``(model, hidden (batch, pos, hidden), batch) -> logits (batch, labels)``.
    classifier_modules : tuple of str
        Attributes that the task model has on top of the base model.
    causal : bool
        True for decoder-only models (attention is causal).
    pooled_rows_from : str or None
        Path from a layer to a module that receives ``(context, residual)``,
        both ``(batch, pos, hidden)``, after attention and before anything
        position-wise. In the last layer only the pooled ``[CLS]`` row is
        needed, so the layerwise runner slices both to position 0 there and
        skips the output projection and feed-forward work for the other tokens.
        ``None`` where the classifier does not read position 0.
    prunable : bool
        False where slicing heads out would not be exact; ``not_prunable_because``
        then says why, in the error :func:`~bertology_widgets.core.pruning.prune_heads` raises.
    sdpa : bool
        False for families transformers runs only with eager attention (DeBERTa).
    layer_kind : callable or None
        ``(model, layer_index) -> hashable``: layers of different kinds receive
        different extra arguments from the model (ModernBERT's local and global
        layers get different masks and rotary tables). ``None``: all alike.
    unsupported : callable or None
        ``(model) -> str or None``: why this particular model cannot be run
        layer by layer (a variant the table does not cover), or ``None``.
    layer_note : callable or None
        ``(model, layer_index) -> str``: what a view should say about a
        layer's attention (ModernBERT: ``"local ±64 tokens"`` or ``"global"``).
    attention_returns_list : bool
        True where the layer indexes its attention's output as a list
        (``[output] + attentions[1:]``, GPT): a fully pruned layer's stand-in
        then returns a list as well.
    """

    name: str
    model_types: tuple[str, ...]
    base_prefix: str
    layers: str
    attention_core: str
    out_proj: str
    qkv: tuple[str, ...]
    conv1d: bool = False
    head_count_attrs: tuple[str, ...] = ()
    classifier_head: Callable | None = None
    classifier_modules: tuple[str, ...] = ()
    causal: bool = False
    pooled_rows_from: str | None = None
    prunable: bool = True
    not_prunable_because: str = ""
    sdpa: bool = True
    layer_kind: Callable | None = None
    unsupported: Callable | None = None
    layer_note: Callable | None = None
    attention_returns_list: bool = False
    extra: dict = field(default_factory=dict)

    # -- model geometry -------------------------------------------------------
    def base_model(self, model: nn.Module) -> nn.Module:
        if self.base_prefix and hasattr(model, self.base_prefix):
            return getattr(model, self.base_prefix)
        return model

    def layer_modules(self, model: nn.Module) -> nn.ModuleList:
        return cast(nn.ModuleList, get_submodule(self.base_model(model), self.layers))

    def num_layers(self, model: nn.Module) -> int:
        return len(self.layer_modules(model))

    def num_heads(self, model: nn.Module) -> int:
        """Heads per layer in the original (unpruned) configuration."""
        config: Any = model.config  # a transformers PretrainedConfig
        return int(config.num_attention_heads)

    def head_dim(self, model: nn.Module) -> int:
        config: Any = model.config
        explicit = getattr(config, "head_dim", None) or getattr(config, "attention_head_size", None)
        if explicit:
            return int(explicit)
        return int(config.hidden_size // config.num_attention_heads)

    def out_projection(self, layer: nn.Module) -> nn.Module:
        return get_submodule(layer, self.out_proj)

    def is_task_model(self, model: nn.Module) -> bool:
        return bool(self.classifier_modules) and all(hasattr(model, m) for m in self.classifier_modules)


def _encoder(base_prefix: str, qkv=("query", "key", "value"), **fields) -> ArchitectureAdapter:
    """A BERT-style encoder: ``encoder.layer[i].attention.self`` computes the heads from the ``qkv``
    projections, ``attention.output`` mixes them (its ``dense`` is the output projection)."""
    return ArchitectureAdapter(base_prefix=base_prefix, layers="encoder.layer", attention_core="attention.self",
                               out_proj="attention.output.dense", qkv=tuple(f"attention.self.{p}" for p in qkv),
                               head_count_attrs=("num_attention_heads",), pooled_rows_from="attention.output",
                               **fields)


BERT = _encoder("bert", name="BERT", model_types=("bert",), classifier_head=_bert_head,
                classifier_modules=("classifier", "dropout"))

ROBERTA = _encoder("roberta", name="RoBERTa", model_types=("roberta", "xlm-roberta", "camembert"),
                   classifier_head=_sequence_head, classifier_modules=("classifier",))

ELECTRA = replace(ROBERTA, name="ELECTRA", model_types=("electra",), base_prefix="electra")

DEBERTA_V2 = _encoder(
    "deberta", ("query_proj", "key_proj", "value_proj"), name="DeBERTa-v2/v3", model_types=("deberta-v2",),
    classifier_head=_deberta_v2_head, classifier_modules=("pooler", "classifier", "dropout"), prunable=False,
    not_prunable_because="its disentangled attention also projects the relative-position embeddings per head "
                         "(pos_key_proj / pos_query_proj, or the shared Q/K projections), which head pruning "
                         "does not slice",
    sdpa=False, unsupported=_deberta_v2_unsupported)

DISTILBERT = ArchitectureAdapter(
    name="DistilBERT", model_types=("distilbert",), base_prefix="distilbert", layers="transformer.layer",
    attention_core="attention", out_proj="attention.out_lin",
    qkv=("attention.q_lin", "attention.k_lin", "attention.v_lin"), head_count_attrs=("n_heads",),
    classifier_head=_distilbert_head,
    classifier_modules=("pre_classifier", "classifier", "dropout"))

GPT2 = ArchitectureAdapter(
    name="GPT-2", model_types=("gpt2",), base_prefix="transformer", layers="h", attention_core="attn",
    out_proj="attn.c_proj", qkv=("attn.c_attn",), conv1d=True, head_count_attrs=("num_heads",),
    classifier_head=_gpt2_head, classifier_modules=("score",), causal=True)

OPENAI_GPT = ArchitectureAdapter(
    name="GPT", model_types=("openai-gpt",), base_prefix="transformer", layers="h", attention_core="attn",
    out_proj="attn.c_proj", qkv=("attn.c_attn",), conv1d=True, head_count_attrs=("n_head",),
    classifier_head=_openai_gpt_head, classifier_modules=("score",), causal=True, sdpa=False,
    attention_returns_list=True)

LLAMA = ArchitectureAdapter(
    name="Llama", model_types=("llama", "mistral", "qwen2"), base_prefix="model", layers="layers",
    attention_core="self_attn", out_proj="self_attn.o_proj",
    qkv=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), classifier_head=_llama_head,
    classifier_modules=("score",), causal=True, prunable=False,
    not_prunable_because="with grouped-query attention one key/value head serves several query heads, so a "
                         "query head cannot be sliced out with a K and V of its own")

MODERNBERT = ArchitectureAdapter(
    name="ModernBERT", model_types=("modernbert",), base_prefix="model", layers="layers", attention_core="attn",
    out_proj="attn.Wo", qkv=("attn.Wqkv",), classifier_head=_modernbert_head,
    classifier_modules=("head", "classifier", "drop"), prunable=False,
    not_prunable_because="it fuses Q, K and V into one Wqkv projection, which head pruning does not slice",
    layer_kind=_modernbert_layer_kind, layer_note=_modernbert_layer_note)

ADAPTERS: tuple[ArchitectureAdapter, ...] = (BERT, ROBERTA, DISTILBERT, ELECTRA, GPT2, OPENAI_GPT, LLAMA, DEBERTA_V2,
                                             MODERNBERT)


class UnsupportedArchitectureError(ValueError):
    """The model's architecture is not in :data:`ADAPTERS`."""


def supported_architectures() -> str:
    return ", ".join(a.name for a in ADAPTERS)


def adapter_for_model_type(model_type: str | None) -> ArchitectureAdapter:
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise UnsupportedArchitectureError(
        f"unsupported architecture {model_type!r}; bertology-widgets supports "
        f"{supported_architectures()} (config.model_type in "
        f"{sorted(t for a in ADAPTERS for t in a.model_types)})"
    )


def adapter_for(model: nn.Module) -> ArchitectureAdapter:
    """The adapter for ``model`` (a base model or its sequence classifier).

    Raises
    ------
    UnsupportedArchitectureError
        Naming the supported architectures.
    """
    config = getattr(model, "config", None)
    return adapter_for_model_type(getattr(config, "model_type", None))
