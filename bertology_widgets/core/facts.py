"""What the engine reads from a bound model, as a protocol the lower core modules type against.

:class:`~bertology_widgets.core.bound.BoundModel` has all of it; gating, pruning, the
layer-by-layer runner and the objectives name :class:`BoundFacts` rather than importing
the bound model, so the core's imports run one way (``bound`` imports them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from .architectures import ArchitectureAdapter


class BoundFacts(Protocol):
    """A model walked once: see :class:`~bertology_widgets.core.bound.BoundModel` for each attribute."""

    model: nn.Module
    tokenizer: Any
    adapter: ArchitectureAdapter
    num_layers: int
    num_heads: int
    head_dim: int
    task: Any  # GlueTask or None

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def label_order(self) -> list[int] | None: ...

    @property
    def ablation(self) -> tuple[str, torch.Tensor | None]: ...

    @property
    def head_means_shape(self) -> tuple[int, int, int]: ...

    def kept_heads(self) -> list[list[int]]: ...

    def gates(self, mask: np.ndarray | torch.Tensor | Any) -> torch.Tensor: ...


__all__ = ["BoundFacts"]
