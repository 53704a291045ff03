"""Head gating: scale or silence attention heads with forward pre-hooks.

transformers 5 dropped ``head_mask``; a gate on the input of each layer's
attention output projection does the same job for every attention
implementation (eager, SDPA, flash), because by then the heads have been
concatenated into ``(batch, pos, head * d_head)`` whatever kernel made them.

Convention (as ``run_bertology.py``'s ``head_mask.npy``): a mask has shape
``(num_layers, num_heads)``; 1 keeps a head, 0 removes it, fractions scale it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Sequence, Union

import numpy as np
import torch
from torch import nn

from .hooks import this_thread_only

if TYPE_CHECKING:
    from .facts import BoundFacts

#: Set by :func:`~bertology_widgets.core.pruning.prune_heads` on the model it prunes: the heads left per layer.
KEPT_HEADS_ATTR = "_bertology_kept_heads"
ABLATIONS = ("zero", "mean")

#: What a ``mask=`` argument may be: ``(layers, heads)`` gates as an array, a tensor, nested lists, or None (all 1).
HeadMaskLike = Union[np.ndarray, torch.Tensor, Sequence[Sequence[float]], None]


def as_head_mask(mask: HeadMaskLike, num_layers: int, num_heads: int, *, dtype: torch.dtype = torch.float32,
                 batched: bool = False) -> torch.Tensor:
    """Validate ``mask`` and return it as a float tensor of shape ``(num_layers, num_heads)``.

    A torch tensor is returned as is (same storage, so gradients flow); any
    other array-like is converted. With ``batched=True`` a
    ``(batch, num_layers, num_heads)`` mask (one per example) is accepted too.

    Raises
    ------
    ValueError
        On a wrong shape, a non-numeric dtype, non-finite values or values
        outside ``[0, 1]``, with a message saying what was expected.
    """
    if mask is None:
        return torch.ones(num_layers, num_heads, dtype=dtype)
    expected = f"({num_layers}, {num_heads})"
    if isinstance(mask, torch.Tensor):
        tensor = mask
        if tensor.is_complex():
            raise ValueError(f"mask has dtype {tensor.dtype}; expected real numbers (bool, int or float) "
                             f"of shape {expected}")
    else:
        try:
            array = np.asarray(mask)
        except ValueError:  # ragged nested lists
            raise ValueError(f"mask is ragged (rows of different lengths); expected {expected}") from None
        if np.issubdtype(array.dtype, np.complexfloating):
            raise ValueError(f"mask has dtype {array.dtype}; expected real numbers (bool, int or float) "
                             f"of shape {expected}")
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
        ):
            raise ValueError(
                f"mask has dtype {array.dtype}; expected numbers (bool, int or float) "
                f"of shape {expected}"
            )
        tensor = torch.as_tensor(array.astype(np.float32))
    per_example = batched and tensor.ndim == 3
    if tuple(tensor.shape[1:] if per_example else tensor.shape) != (num_layers, num_heads):
        also = f" or (batch, {num_layers}, {num_heads})" if batched else ""
        raise ValueError(
            f"mask has shape {tuple(tensor.shape)}; this model has "
            f"{num_layers} layers x {num_heads} heads, so expected ({num_layers}, {num_heads}){also}"
        )
    if tensor.dtype == torch.bool or not tensor.is_floating_point():
        tensor = tensor.to(dtype)
    values = tensor.detach()
    if not torch.isfinite(values).all():
        bad = torch.nonzero(~torch.isfinite(values))[0].tolist()
        where = f"example {bad[0]}, " if per_example else ""
        raise ValueError(f"mask has a non-finite value at ({where}layer {bad[-2]}, head {bad[-1]}); "
                         "values must lie in [0, 1]")
    if (values < 0).any() or (values > 1).any():
        lo, hi = float(values.min()), float(values.max())
        raise ValueError(f"mask values must lie in [0, 1] (1 = keep, 0 = mask); got min {lo:g}, max {hi:g}")
    return tensor


def _gate_hook(gates: torch.Tensor, layer_index: int, kept: list[int], head_dim: int,
               means: torch.Tensor | None = None):
    """A pre-hook that multiplies each head's slice of the input by its gate.

    gates: ``(layers, heads)``, or ``(batch, layers, heads)`` for a gate per
    example. The layer's gates ``gates[..., layer_index, kept]`` are taken at
    every call, so each forward builds its own autograd graph (several
    forward/backward passes may share one ``mask_heads`` block). The hooked
    input is ``(batch, pos, kept_heads * d_head)``. With ``means``
    (``(layers, heads, d_head)``, mean ablation) a head's slice becomes
    ``g * x + (1 - g) * mean`` instead of ``g * x``.
    """
    layer_means = None if means is None else means[layer_index, kept]

    def hook(module, args):
        x = args[0]
        batch_shape = x.shape[:-1]
        g = gates[..., layer_index, kept].to(device=x.device, dtype=x.dtype)[..., None]  # (kept, 1)
        if g.ndim == 3:  # one gate per example: (batch, kept, 1) -> (batch, 1, kept, 1)
            g = g[:, None]
        heads = x.view(*batch_shape, -1, head_dim)
        if layer_means is None:
            gated = heads * g
        else:
            gated = heads * g + (1 - g) * layer_means.to(device=x.device, dtype=x.dtype)
        return (gated.reshape(x.shape), *args[1:])

    return hook


def resolve_ablation(ablation: str, means: np.ndarray | torch.Tensor | None,
                     expected: tuple[int, int, int]) -> torch.Tensor | None:
    """The means tensor ``(layers, heads, d_head)`` for mean ablation, or ``None`` for zero ablation.

    ``expected``: the model's ``(layers, heads, d_head)`` (``BoundModel.head_means_shape``).
    """
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, got {ablation!r}")
    if ablation == "zero":
        return None
    if means is None:
        raise ValueError("mean ablation needs means=head_output_means(model, tokenizer, examples), "
                         f"shape {expected}")
    means = torch.as_tensor(np.asarray(means, dtype=np.float32)) if not isinstance(means, torch.Tensor) else means
    if tuple(means.shape) != expected:
        raise ValueError(f"means has shape {tuple(means.shape)}; this model needs {expected} "
                         "(layers, heads, d_head)")
    return means.detach()


@contextlib.contextmanager
def mask_heads(bound: BoundFacts, mask: HeadMaskLike, ablation: str | None = None,
               means: np.ndarray | torch.Tensor | None = None, *,
               model: nn.Module | None = None) -> Iterator[torch.Tensor]:
    """Gate attention heads of a bound model for the duration of the ``with`` block.

    Parameters
    ----------
    bound : BoundModel
        Any model in :data:`bertology_widgets.core.architectures.ADAPTERS`
        (base model or sequence classifier), pruned or not, bound once.
    mask : array-like or torch.Tensor, shape ``(num_layers, num_heads)`` or ``(batch, num_layers, num_heads)``
        1 keeps a head, 0 masks it, a fraction scales it. A tensor with
        ``requires_grad=True`` collects ``d(output)/d(gate)`` in ``mask.grad``.
        Heads already pruned away are ignored. With a leading batch axis
        every example of the forward's batch (which must have that size) gets
        its own gates; summing per-example losses then gives each example's
        own gradient in ``mask.grad[b]``, since examples do not interact in
        the forward pass of these models.
    ablation : {"zero", "mean"}, optional
        What a masked head outputs: zeros, or its mean output ``means``
        (gates between 0 and 1 interpolate: ``g * x + (1 - g) * mean``).
        ``None`` uses the bound model's default (``bound.ablation``, see ``BoundModel.set_ablation``).
    means : array-like, shape ``(num_layers, num_heads, d_head)``
        Each head's mean output at the gated point, from
        :func:`~bertology_widgets.analyses.ablation.head_output_means`; needed for ``"mean"``.
    model : nn.Module, optional
        Gate this copy of ``bound.model`` instead (a bf16 copy, say: the same architecture and heads).

    Yields
    ------
    torch.Tensor
        The validated mask, ``(num_layers, num_heads)`` (or ``(batch, num_layers, num_heads)``).

    The hooks are removed in ``finally``, even when the forward raises.
    """
    adapter, target = bound.adapter, bound.model if model is None else model
    gates = as_head_mask(mask, bound.num_layers, bound.num_heads, batched=True)
    if ablation is None:
        ablation, means = bound.ablation
    head_means = resolve_ablation(ablation, means, bound.head_means_shape)
    handles = []
    try:
        for layer_index, (layer, kept) in enumerate(zip(adapter.layer_modules(target), bound.kept_heads())):
            if not kept:
                continue
            layer_gates = gates[..., layer_index, kept]
            if not layer_gates.requires_grad and bool((layer_gates == 1).all()):
                continue  # an all-ones gate changes nothing: skip the work
            hook = _gate_hook(gates, layer_index, kept, bound.head_dim, head_means)
            handles.append(adapter.out_projection(layer).register_forward_pre_hook(this_thread_only(hook)))
        yield gates
    finally:
        for handle in handles:
            handle.remove()


def validate_layer_head(shape: tuple[int, int], layer: int, head: int | None = None) -> None:
    """Raise ``ValueError`` if ``layer`` (and ``head``) are out of range of ``shape`` ``(layers, heads)``."""
    num_layers, num_heads = shape
    _check_index("layer", layer)
    if not 0 <= int(layer) < num_layers:
        raise ValueError(f"layer {layer} does not exist; this model has layers 0..{num_layers - 1}")
    if head is not None:
        _check_index("head", head)
        if not 0 <= int(head) < num_heads:
            raise ValueError(f"head {head} does not exist; this model has heads 0..{num_heads - 1} per layer")


def _check_index(name: str, value: object) -> None:
    """Accept Python / NumPy / 0-d torch integers; reject floats, strings, bools."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer index, got {value!r} ({type(value).__name__})")


__all__ = [
    "ABLATIONS",
    "HeadMaskLike",
    "as_head_mask",
    "mask_heads",
    "validate_layer_head",
]
