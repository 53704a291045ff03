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

from ..core.batching import collate, encode_examples, length_sorted_batches, pad_token_id, uses_token_types
from ..runtime.distributed import ONE_PROCESS, Processes
from ..glue import GlueTask, compute_metrics, get_task
from ..core.gating import HeadMaskLike, as_head_mask
from ..models.loading import eval_mode
from ..runtime.progress import Progress, progress_reporter

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..glue import Example
    from ..core.precision import GuardStats

DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_LENGTH = 128


def task_of(model: nn.Module, task: str | None = None) -> GlueTask:
    """The GLUE task to score with: ``task`` if given, else the one recorded in the model's config."""
    name = task
    if name is None:
        config = getattr(model, "config", None)
        name = getattr(config, "bertology_task", None) or getattr(config, "finetuning_task", None)
    if name is None:
        raise ValueError("no GLUE task given and the model's config records none; pass task='sst2' (or --task)")
    return get_task(name if isinstance(name, str) else name.name)


def predictions_from_logits(logits: np.ndarray, is_regression: bool) -> np.ndarray:
    """``(n, labels)`` logits -> ``(n,)`` class ids, or ``(n,)`` scores for regression."""
    return logits[:, 0].astype(np.float64) if is_regression else logits.argmax(-1)


def labels_of(examples: Sequence[Example]) -> np.ndarray | None:
    labels = [ex.label for ex in examples]
    if any(label is None for label in labels):
        return None
    return np.asarray(labels)


def check_num_labels(model: nn.Module, task: GlueTask) -> None:
    expected = task.num_labels
    got = int(getattr(model.config, "num_labels", expected))
    if got != expected:
        raise ValueError(
            f"the model has {got} output labels but {task.display_name} needs {expected}; "
            f"fine-tune it on {task.name} first (bertology finetune --task {task.name})"
        )


def labelled_task(
    model: nn.Module, examples: Sequence[Example], task: str | None = None, label_map: dict | None = None
) -> tuple[GlueTask, np.ndarray]:
    """``(GlueTask, labels (n,))`` for scoring ``model`` on ``examples``.

    The task is ``task``, else the examples', else the model's. Raises
    ``ValueError`` for no examples, unlabelled examples (a test split), a
    model whose label count does not fit the task, or class names
    (``config.id2label``) that do not match the task's labels. The model's
    classes are put in the task's label order here, once, in place (see
    :mod:`bertology_widgets.core.labels`), so every score and loss downstream
    compares like with like; ``label_map`` (``{model class name: task
    label name}``) overrides the matching by name. A model fine-tuned on
    another task gets a :class:`~bertology_widgets.core.labels.TaskMismatchWarning`.
    """
    from ..core.labels import align_labels, warn_if_other_task

    if len(examples) == 0:
        raise ValueError("no examples to score: the list of examples is empty")
    glue_task = task_of(model, task if task is not None else getattr(examples, "task", None))
    check_num_labels(model, glue_task)
    warn_if_other_task(model, glue_task)
    align_labels(model, glue_task, label_map)
    labels = labels_of(examples)
    if labels is None:
        raise ValueError("these examples have no labels (a GLUE test split has none); use 'validation'")
    return glue_task, labels


def predict_logits(model: nn.Module, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example],
                   mask: HeadMaskLike = None, batch_size: int = DEFAULT_BATCH_SIZE,
                   max_length: int = DEFAULT_MAX_LENGTH, progress: Progress = False,
                   autocast_dtype: torch.dtype | None = None, precision: str = "fp32",
                   stats: GuardStats | None = None, processes: Processes = ONE_PROCESS) -> np.ndarray:
    """Logits ``(n, labels)`` for ``examples`` in their original order.

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
    from ..core.layerwise import LayerwiseRunner
    from ..core.precision import bf16_copy, guarded, resolve_precision, take_rows

    encoded = encode_examples(tokenizer, examples, max_length)
    runner = LayerwiseRunner(model, autocast_dtype=autocast_dtype)
    low = None
    if resolve_precision(precision, runner.device, int(getattr(model.config, "num_labels", 2)) == 1) == "bf16":
        low = LayerwiseRunner(bf16_copy(model))
    num_layers, num_heads = runner.shape
    gates = as_head_mask(mask, num_layers, num_heads).detach().float()
    pad, with_types = pad_token_id(model, tokenizer), uses_token_types(model)
    indices_done, rows = [], []
    mine = processes.take(length_sorted_batches(encoded.lengths, batch_size))
    report = progress_reporter(progress, len(mine), show_bar=processes.is_main, desc="evaluating", unit="batch")
    with eval_mode(model), report:
        for _, indices in report.iterate(mine):
            batch = collate(encoded, indices, pad, runner.device, with_types)
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
    glue_task, labels = labelled_task(model, examples, task)
    logits = predict_logits(model, tokenizer, examples, mask, batch_size, max_length, progress, autocast_dtype,
                            precision, processes=processes)
    predictions = predictions_from_logits(logits, glue_task.is_regression)
    result = {"task": glue_task.name, "n": int(len(labels))}
    result.update(compute_metrics(glue_task.name, predictions, labels))
    result["predictions"] = predictions
    return result
