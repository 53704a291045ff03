"""Real head pruning: slice Q/K/V and the output projection.

``prune_heads`` is gone from transformers 5, so this module does it for the
architectures in :mod:`bertology_widgets.core.architectures`: ``nn.Linear`` for the
BERT family, GPT-2's ``Conv1D`` (weight ``(in, out)``) for ``c_attn`` /
``c_proj``. A pruned model computes what the masked model computes: heads
with gate 0 are removed; fractional gates are folded into the output
projection's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .architectures import ArchitectureAdapter, get_submodule
from .gating import KEPT_HEADS_ATTR, HeadMaskLike

if TYPE_CHECKING:
    from .facts import BoundFacts


@dataclass(frozen=True)
class PruneReport:
    """What :func:`prune_heads` did.

    Attributes
    ----------
    params_before, params_after : int
        Parameter counts of the whole model.
    heads_before, heads_after : int
        Heads present in the model.
    kept_heads : list of list of int
        Original indices of the heads left in each layer.
    """

    params_before: int
    params_after: int
    heads_before: int
    heads_after: int
    kept_heads: list

    @property
    def params_removed(self) -> int:
        return self.params_before - self.params_after


class NoHeads(nn.Module):
    """Stands in for the attention of a layer whose heads are all pruned.

    Returns ``(output, None)`` like the attention modules it replaces:
    ``(batch, pos, 0)`` zeros when the output projection follows outside this
    module, or the projection's bias ``(batch, pos, hidden)`` when the
    projection lived inside it (GPT-2, DistilBERT). With ``as_list`` the pair
    comes as a list, for layers that concatenate it to a list (GPT).
    """

    def __init__(self, bias: torch.Tensor | None, hidden_size: int, as_list: bool = False):
        super().__init__()
        self.hidden_size = hidden_size
        self.as_list = as_list
        if bias is None:
            self.bias = None
        else:
            self.bias = nn.Parameter(bias.detach().clone(), requires_grad=bias.requires_grad)

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        shape = hidden_states.shape[:-1]
        if self.bias is None:
            out = hidden_states.new_zeros(*shape, 0)
        else:
            out = self.bias.to(hidden_states.dtype).expand(*shape, self.hidden_size)
        return [out, None] if self.as_list else (out, None)


def check_prunable(bound: BoundFacts) -> ArchitectureAdapter:
    """The bound model's adapter; ``ValueError`` saying why when its family cannot be pruned exactly."""
    adapter = bound.adapter
    if not adapter.prunable:
        why = f" ({adapter.not_prunable_because})" if adapter.not_prunable_because else ""
        raise ValueError(f"pruning is not implemented for {adapter.name}{why}; head masking works "
                         f"(bertology_widgets.mask_heads)")
    return adapter


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _slice_linear(linear: Any, index: torch.Tensor, dim: int, conv1d: bool,
                  scale: torch.Tensor | None = None) -> None:
    """Keep ``index`` along ``dim`` ('out' = 0, 'in' = 1 in ``nn.Linear`` terms) of ``linear``, in place.

    ``linear`` is an ``nn.Linear`` or transformers' ``Conv1D`` (GPT-2).

    For ``Conv1D`` the weight is stored transposed, so the dims swap. ``scale``
    (one value per kept input feature) multiplies the kept input columns.
    """
    weight = linear.weight.data
    axis = (1 - dim) if conv1d else dim
    new_weight = weight.index_select(axis, index.to(weight.device)).clone()
    if scale is not None:
        shape = [1, 1]
        shape[axis] = -1
        new_weight = new_weight * scale.to(new_weight).view(shape)
    linear.weight = nn.Parameter(new_weight, requires_grad=linear.weight.requires_grad)
    if dim == 0 and getattr(linear, "bias", None) is not None:
        linear.bias = nn.Parameter(linear.bias.data.index_select(0, index.to(weight.device)).clone(),
                                   requires_grad=linear.bias.requires_grad)
    if conv1d:
        linear.nf = new_weight.shape[1]
    else:
        linear.out_features, linear.in_features = new_weight.shape


def _feature_index(heads: list[int], head_dim: int) -> torch.Tensor:
    """Feature positions of ``heads`` in a ``(head * d_head)`` axis."""
    if not heads:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])


def _prune_layer(adapter: ArchitectureAdapter, layer: nn.Module, present: list[int], keep_positions: list[int],
                 gates: torch.Tensor, head_dim: int, hidden_size: int) -> None:
    """Prune one layer. ``keep_positions`` index into ``present`` (the heads there now)."""
    core_path = adapter.attention_core
    out_proj = adapter.out_projection(layer)
    core: Any = get_submodule(layer, core_path)  # its head-count attributes differ per family
    if not keep_positions:
        inside = adapter.out_proj.startswith(core_path + ".")
        bias = getattr(out_proj, "bias", None) if inside else None
        if not inside:
            _slice_linear(out_proj, torch.zeros(0, dtype=torch.long), 1, adapter.conv1d)
        parent_path, _, name = core_path.rpartition(".")
        setattr(get_submodule(layer, parent_path), name,
                NoHeads(bias, hidden_size, as_list=adapter.attention_returns_list))
        return
    index = _feature_index(keep_positions, head_dim)
    per_feature = gates.repeat_interleave(head_dim)
    scale = None if bool((per_feature == 1).all()) else per_feature
    if adapter.conv1d:  # fused c_attn: [q | k | v], each of width present * head_dim
        width = len(present) * head_dim
        fused = torch.cat([index, index + width, index + 2 * width])
        _slice_linear(get_submodule(layer, adapter.qkv[0]), fused, 0, True)
    else:
        for path in adapter.qkv:
            _slice_linear(get_submodule(layer, path), index, 0, False)
    _slice_linear(out_proj, index, 1, adapter.conv1d, scale=scale)
    for attr in adapter.head_count_attrs:
        setattr(core, attr, len(keep_positions))
    if hasattr(core, "all_head_size"):
        core.all_head_size = len(keep_positions) * head_dim
    if hasattr(core, "split_size"):
        core.split_size = len(keep_positions) * head_dim


@torch.no_grad()
def prune_heads(bound: BoundFacts, mask: HeadMaskLike) -> PruneReport:
    """Physically remove the heads whose gate is 0 from ``bound.model``, in place.

    ``bound.pruned(mask)`` prunes a copy instead and leaves the model whole.

    Parameters
    ----------
    bound : BoundModel
        BERT, RoBERTa, DistilBERT, ELECTRA, GPT or GPT-2 (base model, classifier or language model), bound.
    mask : array-like, shape ``(num_layers, num_heads)``
        1 keeps, 0 prunes; fractional gates are folded into the output
        projection. Entries for heads already pruned are ignored.

    Returns
    -------
    PruneReport
        Parameter and head counts before and after.
    """
    adapter, model = check_prunable(bound), bound.model
    gates = bound.gates(mask).detach().float()
    head_dim = bound.head_dim
    config: Any = model.config
    hidden_size = int(config.hidden_size)
    before_kept = bound.kept_heads()
    params_before = _num_params(model)
    after_kept = []
    for layer_index, (layer, present) in enumerate(zip(adapter.layer_modules(model), before_kept)):
        layer_gates = gates[layer_index, present]
        keep_positions = [i for i, g in enumerate(layer_gates.tolist()) if g != 0]
        after_kept.append([present[i] for i in keep_positions])
        if len(keep_positions) == len(present) and bool((layer_gates == 1).all()):
            continue
        if not present:
            continue
        _prune_layer(adapter, layer, present, keep_positions, layer_gates[keep_positions], head_dim, hidden_size)
    setattr(model, KEPT_HEADS_ATTR, after_kept)
    return PruneReport(
        params_before=params_before,
        params_after=_num_params(model),
        heads_before=sum(len(k) for k in before_kept),
        heads_after=sum(len(k) for k in after_kept),
        kept_heads=after_kept,
    )


def expected_params_after(bound: BoundFacts, mask: HeadMaskLike) -> int:
    """Parameter count :func:`prune_heads` will leave, computed from shapes alone.

    Each removed head drops ``3 * (hidden * d_head + d_head)`` Q/K/V weights
    and biases plus ``d_head * hidden`` output-projection weights.
    """
    gates = bound.gates(mask).detach()
    config: Any = bound.model.config
    d, h = bound.head_dim, int(config.hidden_size)
    removed = int(sum((gates[layer, k] == 0).sum().item() for layer, k in enumerate(bound.kept_heads())))
    return _num_params(bound.model) - removed * (3 * (h * d + d) + d * h)
