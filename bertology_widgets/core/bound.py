"""The bound model: a model and its tokenizer, walked once, never changed.

:func:`bind` resolves what every analysis needs to know about a model (its
architecture adapter, ``(layers, heads, head_dim)``, pad id, whether it takes
token types, the GLUE task and the mapping from the model's class order to
the task's label order) once, and keeps it. The engine's analyses take a
:class:`BoundModel` and an :class:`EvalSet` (examples tokenized once, labels
checked once) rather than the bare model that each would inspect again.

Binding does not change the model: its weights, buffers and config stay as
they were. Where the model's classes are in another order than the task's
labels, the permutation is applied to the logits (:meth:`BoundModel.task_logits`)
wherever the engine reads them. The only state a bound model puts on the
model is the gating hooks of :meth:`BoundModel.masked`, removed at the end of
each ``with`` block, so nothing of it stays on the model past the block. The
default ablation (:meth:`BoundModel.set_ablation`) lives on the bound model.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .architectures import ArchitectureAdapter, adapter_for
from .batching import EncodedExamples, encode_examples, pad_token_id, uses_token_types
from .gating import ABLATION_ATTR, HeadMaskLike, as_head_mask, kept_heads, mask_heads, resolve_ablation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..glue import Example, GlueTask
    from .labels import LabelMap
    from .layerwise import LayerwiseRunner
    from .pruning import PruneReport


@dataclass(frozen=True)
class EvalSet:
    """Examples tokenized once for one bound model.

    Attributes
    ----------
    examples : sequence of Example
    encoded : EncodedExamples
        Unpadded token ids, ``n`` rows, cut to ``max_length``.
    labels : np.ndarray, shape ``(n,)``, or None
        Class ids in the task's order (or regression targets); None for unlabelled examples.
    task : GlueTask or None
    max_length : int
    targets : tuple or None
        What an objective scores each example against besides ``labels`` (one entry per example,
        e.g. a masked language model's masked positions and their tokens); None for GLUE.
    """

    examples: Sequence[Example]
    encoded: EncodedExamples
    labels: np.ndarray | None
    task: GlueTask | None
    max_length: int
    targets: tuple | None = None

    def __len__(self) -> int:
        return len(self.encoded)

    def head(self, n: int) -> EvalSet:
        """The first ``n`` examples, without tokenizing them again."""
        encoded = self.encoded
        return EvalSet(
            examples=self.examples[:n],
            encoded=EncodedExamples(encoded.input_ids[:n],
                                    None if encoded.token_type_ids is None else encoded.token_type_ids[:n],
                                    encoded.truncated[:n]),
            labels=None if self.labels is None else self.labels[:n],
            task=self.task,
            max_length=self.max_length,
            targets=None if self.targets is None else self.targets[:n],
        )

    def require_labels(self) -> np.ndarray:
        """The labels ``(n,)``; raises ``ValueError`` for unlabelled examples (a GLUE test split)."""
        if self.labels is None:
            raise ValueError("these examples have no labels (a GLUE test split has none); use 'validation'")
        return self.labels


def encoded_examples(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example] | EvalSet,
                     max_length: int) -> EncodedExamples:
    """The token ids of ``examples``: an :class:`EvalSet`'s own (no second tokenization), else tokenized now."""
    if isinstance(examples, EvalSet):
        return examples.encoded
    return encode_examples(tokenizer, examples, max_length)


class BoundModel:
    """A model bound once for analysis (see the module docstring).

    Attributes
    ----------
    model : nn.Module
        The user's model, untouched.
    tokenizer : PreTrainedTokenizerBase
    adapter : ArchitectureAdapter
    num_layers, num_heads, head_dim : int
        As first configured (before pruning).
    pad_id : int
    uses_token_types : bool
    is_causal : bool
    task : GlueTask or None
        From ``task=``, else what the model's config records, else None.
    label_map : LabelMap or None
        The model's class order against the task's labels (None without a
        task, or for a base model without a classification head).
    """

    def __init__(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, task: str | GlueTask | None = None,
                 label_map: dict | None = None):
        from .labels import check_num_labels, recorded_task, resolve_label_map, task_of, warn_if_other_task

        self.model = model
        self.tokenizer = tokenizer
        self.adapter: ArchitectureAdapter = adapter_for(model)
        self.num_layers = self.adapter.num_layers(model)
        self.num_heads = self.adapter.num_heads(model)
        self.head_dim = self.adapter.head_dim(model)
        self.pad_id = pad_token_id(model, tokenizer)
        self.uses_token_types = uses_token_types(model)
        self.is_causal = bool(self.adapter.causal)
        self.is_task_model = bool(self.adapter.is_task_model(model))
        self.task: GlueTask | None = None
        self.label_map: LabelMap | None = None
        self.task_warning = ""
        self.prune_report: PruneReport | None = None
        self._label_map_given = label_map
        self._ablation: tuple[str, torch.Tensor | None] | None = None
        self._order: torch.Tensor | None = None
        try:
            self.task = task_of(model, task if task is None or isinstance(task, str) else task.name)
        except ValueError:
            if task is not None:
                raise
        if self.task is not None and self.is_task_model:
            check_num_labels(model, self.task)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                warn_if_other_task(model, self.task)
            self.task_warning = "\n".join(str(w.message) for w in caught)
            for w in caught:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            config: Any = model.config
            if not self.task.is_regression:
                self.label_map = resolve_label_map(config.id2label, self.task, label_map, recorded_task(model))
                if not self.label_map.is_identity:
                    self._order = torch.as_tensor(self.label_map.task_to_model, dtype=torch.long)

    # -- facts ---------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(layers, heads)``."""
        return self.num_layers, self.num_heads

    @property
    def device(self) -> torch.device:
        """Where the model's weights are now (read on each access, so ``model.to(...)`` is followed)."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def kept_heads(self) -> list[list[int]]:
        """Original indices of the heads present in each layer (all, unless pruned)."""
        return kept_heads(self.model)

    def copy(self) -> BoundModel:
        """A bound deep copy of the model (as much memory again as its weights), with this one's settings.

        The copy keeps the task, the label mapping and the default ablation; work on it (a long
        analysis in another thread, pruning) leaves this model alone.
        """
        twin = BoundModel(copy.deepcopy(self.model), self.tokenizer, self.task, self._label_map_given)
        twin._ablation = self._ablation
        return twin

    def pruned(self, mask: HeadMaskLike) -> BoundModel:
        """A new bound model on a pruned copy: the heads ``mask`` sets to 0 are removed from a deep copy.

        The copy costs as much memory again as the model's weights, less the heads removed; this
        model stays whole. The copy keeps the task, the label mapping and the default ablation, and
        its :attr:`prune_report` says what was removed.
        """
        from .pruning import prune_heads

        pruned = self.copy()
        pruned.prune_report = prune_heads(pruned.model, mask)
        return pruned

    def to(self, device: torch.device | str) -> BoundModel:
        """Move the model to ``device``; returns ``self``."""
        self.model.to(device)
        return self

    # -- labels --------------------------------------------------------------------------------------------
    @property
    def label_order(self) -> list[int] | None:
        """``task_to_model`` as a list when the model's class order differs from the task's, else None."""
        return None if self._order is None else self._order.tolist()

    def label_notice(self) -> str:
        """One line naming the class mapping applied to the logits (``""`` when the orders agree)."""
        if self.label_map is None or self.label_map.is_identity:
            return ""
        return f"labels reordered to the task's: {self.label_map.describe()}"

    def task_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """``(..., classes)`` logits in the model's class order -> the task's label order (a column permutation)."""
        if self._order is None:
            return logits
        return logits.index_select(-1, self._order.to(logits.device))

    # -- gating --------------------------------------------------------------------------------------------
    def gates(self, mask: HeadMaskLike) -> torch.Tensor:
        """``mask`` validated as a float tensor ``(layers, heads)`` (None: all ones)."""
        return as_head_mask(mask, self.num_layers, self.num_heads)

    def set_ablation(self, ablation: str = "zero", means: np.ndarray | torch.Tensor | None = None) -> None:
        """What a masked head outputs under :meth:`masked`: zeros, or ``means`` ``(layers, heads, d_head)``."""
        resolved = resolve_ablation(self.model, ablation, means)
        self._ablation = ("zero", None) if resolved is None else ("mean", resolved.clone())

    @property
    def ablation(self) -> tuple[str, torch.Tensor | None]:
        """``(mode, means)``: this bound model's default (or the model's own, set with ``set_ablation(model)``)."""
        if self._ablation is not None:
            return self._ablation
        legacy = getattr(self.model, ABLATION_ATTR, None)
        return legacy if legacy else ("zero", None)

    @contextlib.contextmanager
    def masked(self, mask: HeadMaskLike, ablation: str | None = None,
               means: np.ndarray | torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """Gate heads for the ``with`` block (see :func:`~bertology_widgets.core.gating.mask_heads`).

        ``ablation=None`` uses :attr:`ablation`. Yields the validated mask ``(layers, heads)``
        (or ``(batch, layers, heads)``).
        """
        if ablation is None:
            ablation, means = self.ablation
        with mask_heads(self.model, mask, ablation, means) as gates:
            yield gates

    # -- data ----------------------------------------------------------------------------------------------
    def encode(self, examples: Sequence[Example], max_length: int = 128) -> EvalSet:
        """Tokenize ``examples`` once (cut to ``max_length`` tokens) and check their labels once.

        Raises ``ValueError`` for an empty list.
        """
        if len(examples) == 0:
            raise ValueError("no examples to score: the list of examples is empty")
        labels = [ex.label for ex in examples]
        return EvalSet(
            examples=examples,
            encoded=encode_examples(self.tokenizer, examples, max_length),
            labels=None if any(label is None for label in labels) else np.asarray(labels),
            task=self.task,
            max_length=int(max_length),
        )

    def runner(self, autocast_dtype: torch.dtype | None = None, keep_every: int = 1,
               model: nn.Module | None = None) -> LayerwiseRunner:
        """A :class:`~bertology_widgets.core.layerwise.LayerwiseRunner` whose logits come in the task's label order.

        ``model`` runs a copy of this model instead (a bf16 copy, say) with the same label order.
        """
        from .layerwise import LayerwiseRunner

        target = self.model if model is None else model

        def masking(mask: HeadMaskLike) -> contextlib.AbstractContextManager:
            mode, means = self.ablation
            return mask_heads(target, mask, mode, means)

        return LayerwiseRunner(target, autocast_dtype=autocast_dtype, keep_every=keep_every,
                               label_order=self.label_order, masking=masking)

    # -- lifetime ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """End the binding. Its hooks live only inside :meth:`masked` blocks, each removed when its block ends
        (also on an error), so none is left to remove here; another thread's block is never cut short."""

    def __enter__(self) -> BoundModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        task = self.task.name if self.task is not None else None
        return (f"BoundModel({type(self.model).__name__}, layers={self.num_layers}, heads={self.num_heads}, "
                f"task={task!r})")


def bind(model: nn.Module | BoundModel, tokenizer: PreTrainedTokenizerBase | None = None,
         task: str | GlueTask | None = None, label_map: dict | None = None) -> BoundModel:
    """Bind ``model`` and ``tokenizer`` once (see :class:`BoundModel`); a bound model is returned as it is.

    Raises
    ------
    UnsupportedArchitectureError
        For a model family without an adapter.
    ValueError
        When the model's label count does not fit ``task``, or its class names cannot be matched to the
        task's labels (the message shows the ``label_map`` that would fix it).
    """
    if isinstance(model, BoundModel):
        return model
    if tokenizer is None:
        raise ValueError("bind(model, tokenizer): the tokenizer is missing")
    return BoundModel(model, tokenizer, task, label_map)


__all__ = ["BoundModel", "EvalSet", "bind", "encoded_examples"]
