"""Norm-based attention analysis (Kobayashi et al. 2020, "Attention is Not Only a Weight").

Head ``h`` of a layer adds ``sum_j alpha_ij f_h(x_j)`` to position ``i``, with
``f_h(x) = (x W_V + b_V) W_O^h`` (the head's rows of the output projection,
without its bias). A large weight ``alpha_ij`` on a vector ``f_h(x_j)`` of
small norm moves little, so ``||alpha_ij f_h(x_j)||`` says more about what a
head does than ``alpha_ij``.

The gate hook on the output projection sees each head's output already
summed over ``j``, so this module records the value vectors per head (a hook
on the value projection, or the value third of GPT-2's fused ``c_attn``)
and applies the head gates itself: masking leaves the weights ``alpha``
unchanged. Under mean ablation a masked head adds a constant that belongs to
no token; it is reported on its own (:attr:`AttentionNorms.ablation_norms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.architectures import BERT, DISTILBERT, ELECTRA, GPT2, ROBERTA, get_submodule
from ..core.bound import BoundModel
from ..core.capturing import (
    _attentions_per_layer,
    _full_head_attention,
    _model_inputs,
    attention_implementation,
    encode,
)
from ..core.gating import HeadMaskLike, resolve_ablation
from ..core.hooks import this_thread_only
from ..core.modes import eval_mode

#: Families whose value projection and output projection this module knows how to split per head.
NORM_ARCHITECTURES = (BERT, ROBERTA, ELECTRA, DISTILBERT, GPT2)


@dataclass
class AttentionNorms:
    """The result of :func:`attention_norms` for one input.

    Attributes
    ----------
    tokens : list of str
    weights : np.ndarray, shape ``(layers, heads, query, key)``
        The attention weights ``alpha`` (unchanged by masking).
    head_norms : np.ndarray, shape ``(layers, heads, query, key)``
        ``||g_h alpha_ij f_h(x_j)||``, with ``g_h`` the head's gate (0 for a masked or pruned head).
    layer_norms : np.ndarray, shape ``(layers, query, key)``
        ``||sum_h g_h alpha_ij f_h(x_j)||``: what the layer's attention moves from ``j`` to ``i``.
    ablation_norms : np.ndarray, shape ``(layers, heads)``
        Under mean ablation, ``||(1 - g_h) mean_h W_O^h||``: the constant a
        (partly) masked head adds to every position, which belongs to no
        token. Zeros under zero ablation.
    vectors : list of torch.Tensor or None
        With ``return_vectors=True``: per layer, ``(heads, query, key, hidden)``,
        the gated vectors ``g_h alpha_ij f_h(x_j)``; with :attr:`constants`
        and :attr:`biases`, they add up to the output projection's output.
    constants : list of torch.Tensor
        Per layer, ``(hidden,)``: the mean-ablation constant (zeros under zero ablation).
    biases : list of torch.Tensor
        Per layer, ``(hidden,)``: the output projection's bias ``b_O``.
    """

    tokens: list
    weights: np.ndarray
    head_norms: np.ndarray
    layer_norms: np.ndarray
    ablation_norms: np.ndarray
    vectors: list | None = None
    constants: list = field(default_factory=list)
    biases: list = field(default_factory=list)


def check_norm_support(adapter) -> None:
    """Raise ``ValueError`` naming the supported families when ``adapter``'s is not one of them."""
    if adapter.name not in {a.name for a in NORM_ARCHITECTURES}:
        names = ", ".join(a.name for a in NORM_ARCHITECTURES)
        raise ValueError(f"attention norms are not available for {adapter.name} models; they work for {names}")


def _output_weight(adapter, out_proj: torch.nn.Module, kept: list[int], head_dim: int) -> torch.Tensor:
    """The output projection as ``(kept heads, d_head, hidden)``: ``W_O^h`` for each kept head."""
    weight = torch.as_tensor(out_proj.weight).float()
    if not adapter.conv1d:  # nn.Linear stores (out, in); Conv1D stores (in, out)
        weight = weight.t()
    return weight.reshape(len(kept), head_dim, -1)


def _bias(out_proj: torch.nn.Module, hidden: int) -> torch.Tensor:
    bias = getattr(out_proj, "bias", None)
    return torch.zeros(hidden) if bias is None else bias.detach().float().cpu()


def _value_hooks(adapter, layers, kept, head_dim, store):
    """Forward hooks recording each layer's value vectors as ``(kept, pos, d_head)`` (batch of 1)."""
    handles = []
    for index, layer in enumerate(layers):
        if not kept[index]:
            continue
        if adapter.conv1d:  # GPT-2's c_attn outputs [q | k | v]
            module, part = get_submodule(layer, adapter.qkv[0]), slice(2 * len(kept[index]) * head_dim, None)
        else:
            module, part = get_submodule(layer, adapter.qkv[2]), slice(None)

        def hook(mod, args, output, index=index, part=part):
            values = output[0, :, part].float()
            store[index] = values.reshape(values.shape[0], -1, head_dim).transpose(0, 1).detach()

        handles.append(module.register_forward_hook(this_thread_only(hook)))
    return handles


@torch.no_grad()
def attention_norms(bound: BoundModel, inputs: str | dict, mask: HeadMaskLike = None, *, pair: str | None = None,
                    ablation: str | None = None, means: np.ndarray | torch.Tensor | None = None,
                    max_length: int | None = None, return_vectors: bool = False) -> AttentionNorms:
    """``||alpha_ij f_h(x_j)||`` per head and layer, and the layer's ``||sum_h ...||``, for one input.

    Parameters
    ----------
    bound : BoundModel
        The model (BERT, RoBERTa, ELECTRA, DistilBERT or GPT-2; others raise ``ValueError`` naming these).
    inputs : str or dict
        A text (``pair`` its second segment; longer than ``max_length`` is
        truncated with a ``TextTruncatedWarning``), or a tokenizer batch of one example.
    mask : array-like, shape ``(layers, heads)``, optional
        Head gates (default: all kept). Applied in the forward pass and to the vectors.
    ablation, means
        As :meth:`BoundModel.masked` (default: the bound model's ablation).
    return_vectors : bool
        Keep the vectors themselves (``(heads, pos, pos, hidden)`` per layer: small inputs only).

    Returns
    -------
    AttentionNorms
    """
    model, tokenizer, adapter = bound.model, bound.tokenizer, bound.adapter
    check_norm_support(adapter)
    if isinstance(inputs, str):
        batch, _ = encode(tokenizer, model, inputs, pair, max_length)
    else:
        batch = inputs
    device = bound.device
    batch = {k: v.to(device) for k, v in _model_inputs(model, batch).items()}
    if batch["input_ids"].shape[0] != 1:
        raise ValueError(f"attention_norms takes one example; got a batch of {batch['input_ids'].shape[0]}")
    num_layers, num_heads, head_dim = bound.num_layers, bound.num_heads, bound.head_dim
    gates = bound.gates(mask).detach().float().cpu()
    if ablation is None:
        mode, default_means = bound.ablation
        ablation, means = mode, (default_means if means is None else means)
    head_means = resolve_ablation(ablation, means, bound.head_means_shape)
    kept = bound.kept_heads()
    layers = adapter.layer_modules(model)
    store: dict[int, torch.Tensor] = {}
    handles = _value_hooks(adapter, layers, kept, head_dim, store)
    try:
        with eval_mode(model), attention_implementation(model, "eager"), torch.autocast(device.type, enabled=False), \
                bound.masked(gates, ablation, means):
            out = model(**batch, output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()
    pos = batch["input_ids"].shape[1]
    per_layer = _attentions_per_layer(out.attentions, kept)
    weights = torch.stack([_full_head_attention(a, kept[i], num_heads, pos) for i, a in enumerate(per_layer)])
    config: Any = model.config
    hidden = int(config.hidden_size if hasattr(config, "hidden_size") else config.n_embd)
    head_norms = torch.zeros(num_layers, num_heads, pos, pos)
    layer_norms = torch.zeros(num_layers, pos, pos)
    ablation_norms = torch.zeros(num_layers, num_heads)
    vectors, constants, biases = [], [], []
    for index, layer in enumerate(layers):
        out_proj = adapter.out_projection(layer)
        biases.append(_bias(out_proj, hidden))
        constant = torch.zeros(hidden)
        if not kept[index]:
            constants.append(constant)
            if return_vectors:
                vectors.append(torch.zeros(num_heads, pos, pos, hidden))
            continue
        heads = kept[index]
        w_o = _output_weight(adapter, out_proj, heads, head_dim).cpu()  # (kept, d_head, hidden)
        f = torch.einsum("hpd,hdo->hpo", store[index].cpu(), w_o)  # f_h(x_j): (kept, key, hidden)
        g = gates[index, heads]  # (kept,)
        alpha = weights[index, heads]  # (kept, query, key)
        f_norm = f.norm(dim=-1)  # (kept, key)
        head_norms[index, heads] = (g[:, None, None] * alpha) * f_norm[:, None, :]
        gated = (g[:, None, None] * alpha)  # (kept, query, key)
        layer_norms[index] = torch.einsum("hqk,hko->qko", gated, f).norm(dim=-1)
        if head_means is not None:
            per_head = (1 - g)[:, None] * torch.einsum("hd,hdo->ho", head_means[index, heads].float().cpu(), w_o)
            ablation_norms[index, heads] = per_head.norm(dim=-1)
            constant = per_head.sum(0)
        constants.append(constant)
        if return_vectors:
            full = torch.zeros(num_heads, pos, pos, hidden)
            full[heads] = gated[..., None] * f[:, None, :, :]
            vectors.append(full)
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    return AttentionNorms(tokens=tokens, weights=weights.numpy(), head_norms=head_norms.numpy(),
                          layer_norms=layer_norms.numpy(), ablation_norms=ablation_norms.numpy(),
                          vectors=vectors if return_vectors else None, constants=constants, biases=biases)


__all__ = ["NORM_ARCHITECTURES", "AttentionNorms", "attention_norms", "check_norm_support"]
