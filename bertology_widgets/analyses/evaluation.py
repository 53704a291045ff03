"""Score a sequence classifier on GLUE examples under a head mask.

``evaluate`` is the one scoring function behind ``bertology evaluate``,
``ModelSession.evaluate`` and the benchmarks. It uses the model's fast
attention path (SDPA), length-sorted batches, and the bound model's
objective (:mod:`~bertology_widgets.core.objective`): each batch's logits
are reduced to per-example rows, the whole set's rows to the metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import nn

from ..core.batching import collate, length_sorted_batches
from ..core.bound import BoundModel, EvalSet, as_scored
from ..core.gating import HeadMaskLike
from ..core.modes import eval_mode
from ..runtime.distributed import ONE_PROCESS, Processes
from ..runtime.progress import Progress, progress_reporter

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..core.precision import GuardStats
    from ..glue import Example

DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_LENGTH = 128


def predict(bound: BoundModel | nn.Module, eval_set: EvalSet | PreTrainedTokenizerBase | Sequence[Example],
            examples: Sequence[Example] | None = None, mask: HeadMaskLike = None,
            batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress = False,
            autocast_dtype: torch.dtype | None = None, precision: str = "fp32", stats: GuardStats | None = None,
            processes: Processes = ONE_PROCESS, *, reduce: bool = True, max_length: int = DEFAULT_MAX_LENGTH,
            task: str | None = None) -> np.ndarray:
    """Per-example rows for ``eval_set`` in its original order: the objective's statistics ``(n, *stat_shape)``
    (class ids, regression scores, a language model's NLL sums, tokens and hits), or with ``reduce=False``
    the logits ``(n, labels)`` in the task's label order.

    Called as ``predict(bound, eval_set)`` or ``predict(model, tokenizer, examples)`` (see
    :func:`~bertology_widgets.core.bound.as_scored`). Runs the same
    :class:`~bertology_widgets.core.layerwise.LayerwiseRunner` as the
    live session, on the same length-sorted batches, so both give identical numbers.
    ``precision="bf16"`` runs bf16 weights with the fp32 guard of
    :mod:`~bertology_widgets.core.precision` (``stats``, a ``GuardStats``, counts its
    work); ``"auto"`` picks bf16 only on hardware with fast bf16. A language model's objective has no guard:
    its precision is ``autocast_dtype`` alone (fp32 by default, see :mod:`~bertology_widgets.analyses.lm_evaluation`).
    Under ``accelerate launch`` (``processes``, see :mod:`~bertology_widgets.runtime.distributed`)
    each process runs every N-th batch and the rows are gathered; every
    process gets the whole array. ``progress`` (see
    :mod:`~bertology_widgets.runtime.progress`) counts this process's batches.
    """
    from ..core.precision import bf16_copy, guarded, resolve_precision, take_rows

    bound, eval_set = as_scored(bound, eval_set, examples, task=task, max_length=max_length)
    objective = bound.require_objective() if reduce else None
    model = bound.model
    encoded = eval_set.encoded
    runner = bound.runner(autocast_dtype=autocast_dtype)
    low = None
    guarded_bf16 = objective is None or not objective.reads_hidden  # a perplexity has no close calls to guard
    if guarded_bf16 and resolve_precision(precision, runner.device,
                                          int(getattr(model.config, "num_labels", 2)) == 1) == "bf16":
        low = bound.runner(model=bf16_copy(model))
    gates = bound.gates(mask).detach().float()
    indices_done, rows = [], []
    mine = processes.take(length_sorted_batches(encoded.lengths, batch_size))
    report = progress_reporter(progress, len(mine), show_bar=processes.is_main, desc="evaluating", unit="batch")
    # A language model's head runs in the objective (reduce_output), under the layers' autocast too.
    head_autocast = torch.autocast(runner.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    with eval_mode(model), report, head_autocast:
        for _, indices in report.iterate(mine):
            batch = collate(encoded, indices, bound.pad_id, runner.device, bound.uses_token_types)
            if low is None:
                logits = runner.logits(batch, gates)
            else:
                logits, rescored = guarded(low.logits(batch, gates),
                                           lambda which: runner.logits(take_rows(batch, which), gates))
                if stats is not None:
                    stats.add(rescored, len(indices))
            logits = logits.float()
            rows.append(logits.cpu().numpy() if objective is None
                        else objective.reduce_output(bound, logits, batch, eval_set, indices))
            indices_done.append(indices)
    if rows:
        done = np.concatenate(rows)
    elif objective is not None:
        done = objective.empty_stats(0)
    else:
        config: Any = model.config
        done = np.zeros((0, int(config.num_labels)), dtype=np.float32)
    order = np.concatenate(indices_done) if indices_done else np.zeros(0, dtype=np.int64)
    gathered = processes.gather_rows(order, done, len(encoded))
    return gathered.astype(np.float32, copy=False) if objective is None else gathered


def evaluate(bound: BoundModel | nn.Module, eval_set: EvalSet | PreTrainedTokenizerBase | Sequence[Example],
             examples: Sequence[Example] | None = None, mask: HeadMaskLike = None,
             batch_size: int = DEFAULT_BATCH_SIZE, max_length: int = DEFAULT_MAX_LENGTH, task: str | None = None,
             progress: Progress = False, autocast_dtype: torch.dtype | None = None, precision: str = "fp32",
             processes: Processes = ONE_PROCESS) -> dict:
    """Score a bound model on its examples with its objective's metrics (a GLUE task's official ones).

    Parameters
    ----------
    bound, eval_set
        A bound model and its encoded examples; or a model, its tokenizer and the ``examples``
        (:class:`~bertology_widgets.glue.Example`, labelled), bound and tokenized here
        (see :func:`~bertology_widgets.core.bound.as_scored`).
    mask : array-like, shape ``(layers, heads)``, optional
        Head mask (1 keep, 0 mask).
    batch_size, max_length : int
        Examples per (length-sorted) batch; tokens per example (when tokenized here).
    task : str, optional
        GLUE task when binding here; defaults to the one recorded in the model's config.
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
        ``{"task": objective name, "n": ..., <metric>: float, ..., "predictions": np.ndarray (n, *stat_shape)}``:
        for a GLUE task the predictions are class ids (or scores for STS-B).
    """
    bound, eval_set = as_scored(bound, eval_set, examples, task=task, max_length=max_length)
    objective = bound.require_objective()
    objective.check(eval_set)
    predictions = predict(bound, eval_set, mask=mask, batch_size=batch_size, progress=progress,
                          autocast_dtype=autocast_dtype, precision=precision, processes=processes)
    result: dict = {"task": objective.name, "n": int(len(eval_set))}
    result.update(objective.score(predictions, eval_set))
    result["predictions"] = predictions
    return result
