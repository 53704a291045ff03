"""Score a sequence classifier on GLUE examples under a head mask.

``evaluate`` is the one scoring function behind ``bertology evaluate``,
``ModelSession.evaluate`` and the benchmarks. It uses the model's fast
attention path (SDPA), length-sorted batches, and the task's official metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import nn

from ..core.batching import collate, length_sorted_batches
from ..core.bound import BoundModel, EvalSet, bind
from ..core.gating import HeadMaskLike
from ..core.modes import eval_mode
from ..glue import GlueTask, compute_metrics
from ..runtime.distributed import ONE_PROCESS, Processes
from ..runtime.progress import Progress, progress_reporter

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..core.precision import GuardStats
    from ..glue import Example

DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_LENGTH = 128


def predictions_from_logits(logits: np.ndarray, is_regression: bool) -> np.ndarray:
    """``(n, labels)`` logits -> ``(n,)`` class ids, or ``(n,)`` scores for regression."""
    return logits[:, 0].astype(np.float64) if is_regression else logits.argmax(-1)


def bind_for(model: nn.Module | BoundModel, tokenizer: PreTrainedTokenizerBase | None, examples: Sequence[Example],
             task: str | None = None, label_map: dict | None = None) -> BoundModel:
    """Bind ``model`` for scoring ``examples``: the task is ``task``, else the examples', else the model's."""
    if isinstance(model, BoundModel):
        return model
    return bind(model, tokenizer, task if task is not None else getattr(examples, "task", None), label_map)


def scored_task(bound: BoundModel, eval_set: EvalSet) -> tuple[GlueTask, np.ndarray]:
    """``(GlueTask, labels (n,))`` of a bound model and its examples; ``ValueError`` says what is missing."""
    if bound.task is None:
        raise ValueError("no GLUE task given and the model's config records none; pass task='sst2' (or --task)")
    return bound.task, eval_set.require_labels()


def predict_set(bound: BoundModel, eval_set: EvalSet, mask: HeadMaskLike = None,
                batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress = False,
                autocast_dtype: torch.dtype | None = None, precision: str = "fp32",
                stats: GuardStats | None = None, processes: Processes = ONE_PROCESS) -> np.ndarray:
    """Logits ``(n, labels)``, in the task's label order, for ``eval_set`` in its original order.

    Runs the same :class:`~bertology_widgets.core.layerwise.LayerwiseRunner` as the
    live session, on the same length-sorted batches, so both give identical numbers.
    ``precision="bf16"`` runs bf16 weights with the fp32 guard of
    :mod:`~bertology_widgets.core.precision` (``stats``, a ``GuardStats``, counts its
    work); ``"auto"`` picks bf16 only on hardware with fast bf16.
    Under ``accelerate launch`` (``processes``, see :mod:`~bertology_widgets.runtime.distributed`)
    each process runs every N-th batch and the rows are gathered; every
    process gets the whole ``(n, labels)`` array. ``progress`` (see
    :mod:`~bertology_widgets.runtime.progress`) counts this process's batches.
    """
    from ..core.precision import bf16_copy, guarded, resolve_precision, take_rows

    model = bound.model
    encoded = eval_set.encoded
    runner = bound.runner(autocast_dtype=autocast_dtype)
    low = None
    if resolve_precision(precision, runner.device, int(getattr(model.config, "num_labels", 2)) == 1) == "bf16":
        low = bound.runner(model=bf16_copy(model))
    gates = bound.gates(mask).detach().float()
    indices_done, rows = [], []
    mine = processes.take(length_sorted_batches(encoded.lengths, batch_size))
    report = progress_reporter(progress, len(mine), show_bar=processes.is_main, desc="evaluating", unit="batch")
    with eval_mode(model), report:
        for _, indices in report.iterate(mine):
            batch = collate(encoded, indices, bound.pad_id, runner.device, bound.uses_token_types)
            if low is None:
                logits = runner.logits(batch, gates).cpu().numpy()
            else:
                fast, rescored = guarded(low.logits(batch, gates),
                                          lambda which: runner.logits(take_rows(batch, which), gates))
                logits = fast.cpu().numpy()
                if stats is not None:
                    stats.add(rescored, len(indices))
            rows.append(logits)
            indices_done.append(indices)
    config: Any = model.config
    num_labels = rows[0].shape[1] if rows else int(config.num_labels)
    logits_done = np.concatenate(rows) if rows else np.zeros((0, num_labels), dtype=np.float32)
    order = np.concatenate(indices_done) if indices_done else np.zeros(0, dtype=np.int64)
    return processes.gather_rows(order, logits_done, len(encoded)).astype(np.float32, copy=False)


def predict_logits(model: nn.Module, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example],
                   mask: HeadMaskLike = None, batch_size: int = DEFAULT_BATCH_SIZE,
                   max_length: int = DEFAULT_MAX_LENGTH, progress: Progress = False,
                   autocast_dtype: torch.dtype | None = None, precision: str = "fp32",
                   stats: GuardStats | None = None, processes: Processes = ONE_PROCESS,
                   task: str | None = None) -> np.ndarray:
    """:func:`predict_set` on ``model`` bound once for ``examples`` (logits in the task's label order)."""
    bound = bind_for(model, tokenizer, examples, task)
    return predict_set(bound, bound.encode(examples, max_length), mask, batch_size, progress, autocast_dtype,
                       precision, stats, processes)


def evaluate_set(bound: BoundModel, eval_set: EvalSet, mask: HeadMaskLike = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress = False,
                 autocast_dtype: torch.dtype | None = None, precision: str = "fp32",
                 processes: Processes = ONE_PROCESS) -> dict:
    """Score a bound model on its encoded examples with the task's official metrics (see :func:`evaluate`)."""
    glue_task, labels = scored_task(bound, eval_set)
    logits = predict_set(bound, eval_set, mask, batch_size, progress, autocast_dtype, precision,
                         processes=processes)
    predictions = predictions_from_logits(logits, glue_task.is_regression)
    result = {"task": glue_task.name, "n": int(len(labels))}
    result.update(compute_metrics(glue_task.name, predictions, labels))
    result["predictions"] = predictions
    return result


def evaluate(model: nn.Module, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example],
             mask: HeadMaskLike = None, batch_size: int = DEFAULT_BATCH_SIZE, max_length: int = DEFAULT_MAX_LENGTH,
             task: str | None = None, progress: Progress = False, autocast_dtype: torch.dtype | None = None,
             precision: str = "fp32", processes: Processes = ONE_PROCESS) -> dict:
    """Score ``model`` on ``examples`` with the task's official metrics.

    Parameters
    ----------
    model, tokenizer
        A supported sequence classifier and its tokenizer.
    examples : sequence of :class:`~bertology_widgets.glue.Example`
        Labelled examples.
    mask : array-like, shape ``(layers, heads)``, optional
        Head mask (1 keep, 0 mask).
    batch_size, max_length : int
        Examples per (length-sorted) batch; tokens per example.
    task : str, optional
        GLUE task; defaults to the one recorded in the model's config.
    progress : bool or callable
        A tqdm bar (True), none (False) or ``progress(done, total)`` in batches.
    precision : {"fp32", "bf16", "auto"}
        bf16 weights with the fp32 guard (predictions equal fp32's); ``"auto"``
        picks bf16 on hardware with fast bf16 only (what ``bertology evaluate`` uses).
    processes : :class:`~bertology_widgets.runtime.distributed.Processes`
        Share the batches among ``accelerate launch`` processes (default: one process).

    Returns
    -------
    dict
        ``{"task": ..., "n": ..., <metric>: float, ..., "predictions": np.ndarray (n,)}``.
    """
    bound = bind_for(model, tokenizer, examples, task)
    return evaluate_set(bound, bound.encode(examples, max_length), mask, batch_size, progress, autocast_dtype,
                        precision, processes)
