"""Run a sequence classifier or a language model one layer at a time, keeping each layer's input.

This is what makes live re-scoring incremental: for every batch of the
evaluation set we keep the hidden states entering each layer, computed under
the mask that was current then. A new mask whose lowest changed layer is
``L`` only re-runs layers ``L`` and above; layers below are reused as they are.

The runner calls the model's own layer modules with the exact arguments the
model passes them (captured once per batch by a pre-hook on layer 0), so
every architecture in the adapter table works and the result is bitwise the
full forward's.

A classifier's run ends in its head's logits ``(batch, labels)``; a language
model's (its objective ``reads_hidden``) ends at the last layer's output
``(batch, pos, hidden)``, which the objective reduces with the final norm and
the LM head at the scored positions only
(:meth:`~bertology_widgets.core.objective.Objective.reduce_output`), so no
``(tokens, vocabulary)`` matrix is ever held for a batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from .architectures import get_submodule
from .gating import mask_heads
from .hooks import this_thread_only

if TYPE_CHECKING:
    from .facts import BoundFacts


class _StopAtFirstLayer(Exception):
    pass


def _first_row_only(module, args):
    """Pre-hook: keep position 0 of ``(context, residual)``, each ``(batch, pos, hidden)`` -> ``(batch, 1, hidden)``."""
    return (args[0][:, :1], args[1][:, :1], *args[2:])


@dataclass
class LayerCache:
    """Cached state of one batch.

    Attributes
    ----------
    inputs : dict of torch.Tensor
        The model inputs, each ``(batch, pos)``.
    layer_args, layer_kwargs : tuple, dict
        What the model passes layer 0 besides the hidden states (attention
        mask in the form the attention implementation wants, positions, ...).
    kind_args : dict
        ``{layer kind: (args, kwargs)}``, the same for the first layer of each
        kind (see ``ArchitectureAdapter.layer_kind``); what each layer is called with.
    hidden : list of torch.Tensor
        ``hidden[i]`` is the input of layer ``i``, ``(batch, pos, hidden)``;
        ``hidden[num_layers]`` is the last layer's output. ``None`` where
        the runner does not keep it (see ``keep_every``).
    mask : torch.Tensor, shape ``(layers, heads)``
        The mask ``hidden`` was computed under.
    logits : torch.Tensor, shape ``(batch, labels)``
        What the run ended in (a language model: the last layer's output ``(batch, pos, hidden)``).
    """

    inputs: dict
    layer_args: tuple
    layer_kwargs: dict
    hidden: list
    mask: torch.Tensor
    logits: torch.Tensor | None = None
    kind_args: dict = field(default_factory=dict)

    def nbytes(self) -> int:
        return sum(h.numel() * h.element_size() for h in self.hidden if h is not None)


def first_changed_layer(old: torch.Tensor, new: torch.Tensor) -> int | None:
    """Lowest layer whose mask row differs (``None`` if the masks are equal). Masks: ``(layers, heads)``."""
    diff = (old != new).any(dim=1).nonzero()
    return int(diff[0]) if len(diff) else None


class LayerwiseRunner:
    """Layer-by-layer forward of a sequence classifier or a language model, with per-layer caches.

    Parameters
    ----------
    bound : BoundModel
        A bound sequence classifier (a model from the adapter table), or a language model bound with its
        objective (``bound.objective.reads_hidden``), run in eval mode: its adapter, shape, label order and
        default ablation are read from it. Usually made by ``bound.runner()``.
    autocast_dtype : torch.dtype, optional
        ``torch.bfloat16`` to run under CPU/GPU autocast.
    keep_every : int
        Keep the input of every ``keep_every``-th layer (and the last
        output); a change in a layer whose input was dropped resumes from the
        nearest kept one below it. With ``keep_every > 1`` the embeddings
        (``hidden[0]``) are not kept either: a change that resumes from layer
        0 embeds the batch again, a lookup and a layer norm next to the
        layers' matrix products. ``keep_every=3`` on a 6-layer model keeps 1
        of the 6 full hidden states (a sixth of the memory) for at most 2
        extra layers per change; the logits are the same, bit for bit (the
        layers re-run below the changed one see unchanged mask rows).
    model : nn.Module, optional
        Run this copy of ``bound.model`` instead (a bf16 copy, say), with the same label order and gates.
    """

    def __init__(self, bound: BoundFacts, autocast_dtype: torch.dtype | None = None, keep_every: int = 1,
                 model: nn.Module | None = None):
        if int(keep_every) < 1:
            raise ValueError(f"keep_every must be >= 1, got {keep_every}")
        self.keep_every = int(keep_every)
        model = bound.model if model is None else model
        self.bound, self.model = bound, model
        self.adapter = bound.adapter
        objective = getattr(bound, "objective", None)
        # A language model's forward ends at the last layer's output; its objective runs the head where it reads.
        self.reads_hidden = bool(getattr(objective, "reads_hidden", False))
        if not self.reads_hidden and not self.adapter.is_task_model(model):
            raise ValueError(
                f"{type(model).__name__} has no sequence-classification head; load it with "
                f"AutoModelForSequenceClassification (or fine-tune it with `bertology finetune`)"
            )
        problem = self.adapter.unsupported(model) if self.adapter.unsupported else None
        if problem:
            raise ValueError(problem)
        self.layers = self.adapter.layer_modules(model)
        kind = self.adapter.layer_kind
        self._kinds = [kind(model, i) if kind else None for i in range(len(self.layers))]
        self.shape = bound.shape
        self.autocast_dtype = autocast_dtype
        self.device = bound.device
        label_order = bound.label_order
        self.label_order = None if label_order is None else torch.as_tensor(label_order, dtype=torch.long)

    def masking(self, mask: torch.Tensor) -> contextlib.AbstractContextManager:
        """Gate the heads of the model run, with the bound model's default ablation."""
        return mask_heads(self.bound, mask, model=self.model)

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @torch.inference_mode()
    def prepare(self, inputs: dict) -> LayerCache:
        """Embed a batch and capture what the layers receive. ``inputs`` are ``(batch, pos)`` tensors.

        The forward stops at the first layer of the last kind still unseen
        (layer 0 for families whose layers are all alike), so at most a
        layer or two run here.
        """
        captured: dict[int, tuple] = {}
        first_of_kind: dict[object, int] = {}
        for i in range(len(self.layers)):
            first_of_kind.setdefault(self._kinds[i], i)
        stop_at = max(first_of_kind.values())

        def grab(index):
            def hook(module, args, kwargs):
                captured[index] = (args, kwargs)
                if index == stop_at:
                    raise _StopAtFirstLayer
            return hook

        handles = [self.layers[i].register_forward_pre_hook(this_thread_only(grab(i)), with_kwargs=True)
                   for i in first_of_kind.values()]
        try:
            with self._autocast():
                self.model(**inputs, use_cache=False) if self.adapter.causal else self.model(**inputs)
        except _StopAtFirstLayer:
            pass
        finally:
            for handle in handles:
                handle.remove()
        args, kwargs = captured[0]
        hidden = [args[0]] + [None] * len(self.layers)
        extra = {kind: (tuple(captured[i][0][1:]), dict(captured[i][1])) for kind, i in first_of_kind.items()}
        return LayerCache(inputs=inputs, layer_args=tuple(args[1:]), layer_kwargs=dict(kwargs),
                          hidden=hidden, mask=torch.full(self.shape, float("nan")), kind_args=extra)

    @torch.inference_mode()
    def run(self, cache: LayerCache, mask: torch.Tensor) -> torch.Tensor:
        """Bring ``cache`` up to date with ``mask`` and return the logits ``(batch, labels)`` (a language
        model: the last layer's output ``(batch, pos, hidden)``).

        Only layers from the lowest changed one upwards are computed. The cache
        is updated only when the whole batch has finished, so an interrupted
        run leaves it consistent.
        """
        start = first_changed_layer(cache.mask, mask) if cache.hidden[-1] is not None else 0
        if start is None and cache.logits is not None:
            return cache.logits
        start = 0 if start is None else start
        new_hidden = list(cache.hidden)
        while start > 0 and new_hidden[start] is None:  # this layer's input was not kept: resume from the one below
            start -= 1
        last = len(self.layers)
        h = new_hidden[start] if new_hidden[start] is not None else self.prepare(cache.inputs).hidden[0]
        with self._autocast(), self.masking(mask):
            for i in range(start, last):
                h = self._layer(i, h, cache)
                new_hidden[i + 1] = h if (i + 1) % self.keep_every == 0 or i + 1 == last else None
            logits = h if self.reads_hidden else self._head(h, cache.inputs)
        if self.keep_every > 1:
            new_hidden[0] = None  # the embeddings are cheap to compute again
        cache.hidden, cache.mask, cache.logits = new_hidden, mask.clone(), logits.float()
        return cache.logits

    def _head(self, h: torch.Tensor, inputs: dict) -> torch.Tensor:
        """The classifier's logits ``(batch, labels)`` in the task's label order, from the last layer's output."""
        head = self.adapter.classifier_head
        assert head is not None  # __init__ refuses models without one
        logits = head(self.model, h, inputs)
        if self.label_order is not None:  # the model's class order -> the task's (see bound.BoundModel)
            logits = logits.index_select(-1, self.label_order.to(logits.device))
        return logits

    def _layer(self, i: int, h: torch.Tensor, cache: LayerCache) -> torch.Tensor:
        """Layer ``i`` on ``h`` ``(batch, pos, hidden)``; a classifier's last layer keeps only the pooled row
        where it can (a language model reads every position)."""
        handle = None
        if i == len(self.layers) - 1 and self.adapter.pooled_rows_from and not self.reads_hidden:
            handle = get_submodule(self.layers[i], self.adapter.pooled_rows_from).register_forward_pre_hook(
                this_thread_only(_first_row_only))
        try:
            layer_args, layer_kwargs = cache.kind_args[self._kinds[i]]
            out = self.layers[i](h, *layer_args, **layer_kwargs)
        finally:
            if handle is not None:
                handle.remove()
        return out[0] if isinstance(out, (tuple, list)) else out  # GPT's blocks return a list

    @torch.inference_mode()
    def logits(self, inputs: dict, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, labels)`` for one batch, keeping nothing (what :func:`evaluate` uses)."""
        return self.run(self.prepare(inputs), mask)


#: Default memory budget of a live session's layer caches, in MiB (BERT-base on SST-2 dev needs about 804).
DEFAULT_CACHE_MB = 1024.0
#: A live session keeps every 3rd layer's input: on the default MiniLM (6 layers) that is 1 full hidden state per
#: batch instead of 6 (34 instead of 202 MiB on SST-2 dev), for at most 2 more layers re-run per change.
DEFAULT_CACHE_EVERY = 3


class CacheBudget:
    """Admit batch caches while their total stays within ``limit_mb``.

    Batches refused here have no cache: they are scored from their inputs on
    every change (the full forward, the same numbers), so past the budget the
    session keeps working, only slower on those batches.

    Parameters
    ----------
    limit_mb : float or None
        MiB of hidden states to keep; ``None`` for no limit.
    """

    def __init__(self, limit_mb: float | None = DEFAULT_CACHE_MB):
        if limit_mb is not None and limit_mb < 0:
            raise ValueError(f"cache_mb must be >= 0 (or None for no limit), got {limit_mb}")
        self.limit_mb = limit_mb
        self.used = 0
        self.kept = 0
        self.refused = 0

    def admit(self, cache: LayerCache) -> bool:
        """Whether to keep ``cache``; counts it either way."""
        size = cache.nbytes()
        if self.limit_mb is None or self.used + size <= self.limit_mb * 2**20:
            self.used += size
            self.kept += 1
            return True
        self.refused += 1
        return False

    @property
    def notice(self) -> str:
        """What the budget costs, for the session's ``notice`` ("" while every batch is cached)."""
        if not self.refused:
            return ""
        total = self.kept + self.refused
        return (f"cache budget {self.limit_mb:g} MB: {self.kept} of {total} batches keep their layer cache; "
                f"the other {self.refused} are re-scored in full on every change (raise cache_mb to keep more)")
