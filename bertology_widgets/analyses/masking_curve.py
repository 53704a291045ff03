"""Mask heads by importance until the score drops, with baselines and a pruning report.

:func:`masking_curve` is run_bertology.py's ``--try_masking``: mask the least
important heads a few at a time, recomputing importance under the mask after
every step, until the score is no longer within ``threshold`` of the original
(``threshold x original`` where higher is better, ``original / threshold``
where lower is: the bound model's objective says which).
:func:`random_masking_curve` masks heads in random order with the same step
sizes; :func:`keep_one_head_per_layer` keeps only each layer's most important
head. :func:`prune_and_compare` removes the masked heads from a copy of the
model and compares size, score and speed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..core.batching import EncodedExamples, collate, length_sorted_batches
from ..core.bound import BoundModel, EvalSet, as_scored
from ..core.gating import HeadMaskLike
from ..core.modes import eval_mode
from ..runtime.distributed import ONE_PROCESS, Processes
from ..runtime.progress import Progress, progress_reporter
from .evaluation import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, evaluate
from .importance import head_importance

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..glue import Example


@dataclass
class MaskingCurve:
    """The steps of :func:`masking_curve`.

    Attributes
    ----------
    original_score : dict
        Metrics of the unmasked model.
    metric : str
        The metric compared with ``threshold_score``.
    masking_threshold, masking_amount : float
        As passed.
    heads_per_step : int
        ``max(1, int(layers * heads * masking_amount))``.
    curve : list of dict
        One entry per evaluated mask, starting with the unmasked model:
        ``step``, ``heads_masked``, ``fraction_masked``, ``score`` (metrics
        dict), ``kept`` (the score within the threshold of the original) and ``mask``
        (``(layers, heads)`` nested list, 1 keep / 0 masked).
    final_mask : np.ndarray, shape ``(layers, heads)``
        The last mask that kept the threshold.
    importance : np.ndarray, shape ``(layers, heads)``
        Normalised importance of the unmasked model.
    seconds : float
    threshold_score : float
        The worst score still kept (``Objective.threshold_value``: ``original x threshold``
        where higher is better, ``original / threshold`` where lower is).
    higher_is_better : bool
        The metric's direction.
    """

    original_score: dict
    metric: str
    masking_threshold: float
    masking_amount: float
    heads_per_step: int
    curve: list
    final_mask: np.ndarray
    importance: np.ndarray
    seconds: float
    threshold_score: float
    higher_is_better: bool = True

    @property
    def final_fraction_masked(self) -> float:
        return float(1.0 - self.final_mask.mean())

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {
            "original_score": self.original_score,
            "metric": self.metric,
            "masking_threshold": self.masking_threshold,
            "masking_amount": self.masking_amount,
            "heads_per_step": self.heads_per_step,
            "threshold_score": self.threshold_score,
            "higher_is_better": self.higher_is_better,
            "steps": self.curve,
            "final_mask": self.final_mask.tolist(),
            "final_fraction_masked": self.final_fraction_masked,
            "seconds": self.seconds,
        }


def heads_per_step(num_heads_total: int, masking_amount: float) -> int:
    """Heads masked per step, as run_bertology.py: ``max(1, int(total * masking_amount))``."""
    if not 0 < masking_amount <= 1:
        raise ValueError(f"masking_amount is a fraction of all heads in (0, 1]; got {masking_amount}")
    return max(1, int(num_heads_total * masking_amount))


#: run_bertology.py's metric names (``--metric_name acc``) for this package's.
METRIC_ALIASES = {"acc": "accuracy", "mcc": "matthews_correlation"}


def _metric_name(bound: BoundModel, eval_set: EvalSet, metric: str | None) -> str:
    objective = bound.require_objective()
    objective.check(eval_set)
    return objective.metric_name(METRIC_ALIASES.get(metric, metric) if metric else None)


def _scorer(bound: BoundModel, eval_set: EvalSet, batch_size: int, processes: Processes = ONE_PROCESS):
    """``score(mask) -> {metric: value}`` for this bound model and its examples (batches shared among ``processes``)."""
    metric_names = bound.require_objective().metrics

    def score(mask) -> dict:
        result = evaluate(bound, eval_set, mask=mask, batch_size=batch_size, processes=processes)
        return {name: float(result[name]) for name in metric_names}

    return score


def _step(step: int, mask: np.ndarray, score: dict, kept: bool) -> dict:
    return {"step": step, "heads_masked": int((mask == 0).sum()), "fraction_masked": float((mask == 0).mean()),
            "score": score, "kept": bool(kept), "mask": mask.tolist()}


def masking_curve(bound: BoundModel | nn.Module, eval_set: EvalSet | PreTrainedTokenizerBase | Sequence[Example],
                  examples: Sequence[Example] | None = None, *,
                  masking_amount: float = 0.1, masking_threshold: float = 0.9, metric: str | None = None,
                  importance: np.ndarray | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                  max_length: int = DEFAULT_MAX_LENGTH, task: str | None = None, progress: Progress = False,
                  on_step: Callable[[dict], None] | None = None, processes: Processes = ONE_PROCESS,
                  **importance_kwargs: Any) -> MaskingCurve:
    """Mask the least important heads step by step while the score holds (``--try_masking``).

    Each step masks the ``heads_per_step`` least important heads still
    active, scores the new mask with :func:`~bertology_widgets.analyses.evaluation.evaluate`,
    stops once the score is not within ``masking_threshold`` of the original (see
    :meth:`~bertology_widgets.core.objective.Objective.within`), and
    otherwise recomputes importance under the new mask. It also stops when
    no more than ``heads_per_step`` heads are left (run_bertology.py would
    loop on, masking nothing), so at least one head stays.

    Parameters
    ----------
    model, tokenizer, examples
        As for :func:`~bertology_widgets.analyses.importance.head_importance`.
    masking_amount : float
        Fraction of all heads masked per step.
    masking_threshold : float
        Stop when ``score[metric]`` falls below ``masking_threshold * original`` (above
        ``original / masking_threshold`` for a metric where lower is better).
    metric : str, optional
        One of the task's metrics (or run_bertology.py's ``"acc"``, ``"mcc"``);
        default the task's first (accuracy for SST-2).
    importance : np.ndarray ``(layers, heads)``, optional
        Importance of the unmasked model when already computed.
    batch_size, max_length : int
        For scoring.
    progress : bool or callable
        A tqdm bar (True), none (False) or ``progress(done, total)`` in steps,
        ``total`` being the most steps the curve can take (see :mod:`~bertology_widgets.runtime.progress`).
    on_step : callable, optional
        ``on_step(entry)`` with each new curve entry (the curve as it grows, not a progress report).
    processes : :class:`~bertology_widgets.runtime.distributed.Processes`
        Under ``accelerate launch``: every score and importance pass is shared
        among the processes; all of them get the same numbers, so they take
        the same steps. Only the main process shows the bar.
    **importance_kwargs
        Passed to :func:`head_importance` (``per_example``, ``compat``,
        ``normalize_by_layer``, ...; the importance ``batch_size`` is
        ``importance_batch_size`` here).

    Returns
    -------
    MaskingCurve
    """
    start = time.perf_counter()
    bound, eval_set = as_scored(bound, eval_set, examples, task=task, max_length=max_length)
    metric = _metric_name(bound, eval_set, metric)
    num_layers, num_heads = bound.shape
    per_step = heads_per_step(num_layers * num_heads, masking_amount)
    importance_batch_size = importance_kwargs.pop("importance_batch_size", None)
    importance_kwargs.update(compute_entropy=False, batch_size=importance_batch_size, processes=processes)

    def measure(mask):
        return head_importance(bound, eval_set, mask=mask, **importance_kwargs).importance

    score = _scorer(bound, eval_set, batch_size, processes)
    mask = np.ones((num_layers, num_heads), dtype=np.float32)
    first_importance = measure(None) if importance is None else np.asarray(importance, dtype=np.float32)
    current = first_importance
    original = score(mask)
    objective = bound.require_objective()
    threshold = objective.threshold_value(original[metric], masking_threshold, metric)
    curve = [_step(0, mask, original, True)]
    final_mask = mask
    report = progress_reporter(progress, (mask.size - 1) // per_step, show_bar=processes.is_main,
                               desc="masking heads", unit="step")
    with report:
        while int(mask.sum()) > per_step:
            ranked = np.argsort(np.where(mask > 0, current, np.inf).reshape(-1), kind="stable")
            mask = mask.copy()
            mask.reshape(-1)[ranked[:per_step]] = 0.0
            new_score = score(mask)
            kept = objective.within(new_score[metric], original[metric], masking_threshold, metric)
            curve.append(_step(len(curve), mask, new_score, kept))
            report.set_postfix(**{metric: f"{new_score[metric]:.4f}"})
            report.update(1)
            if on_step is not None:
                on_step(curve[-1])
            if not kept:
                break
            final_mask = mask
            if int(mask.sum()) > per_step:
                current = measure(mask)
    return MaskingCurve(
        original_score=original, metric=metric, masking_threshold=float(masking_threshold),
        masking_amount=float(masking_amount), heads_per_step=per_step, curve=curve,
        final_mask=final_mask, importance=first_importance, seconds=time.perf_counter() - start,
        threshold_score=threshold, higher_is_better=objective.higher_is_better(metric),
    )


def random_masking_curve(bound: BoundModel | nn.Module,
                         eval_set: EvalSet | PreTrainedTokenizerBase | Sequence[Example],
                         examples: Sequence[Example] | None = None, *,
                         masking_amount: float = 0.1, masking_threshold: float = 0.9, seeds: Iterable[int] = (0, 1, 2),
                         min_steps: int = 0, metric: str | None = None, original_score: dict | None = None,
                         batch_size: int = DEFAULT_BATCH_SIZE, max_length: int = DEFAULT_MAX_LENGTH,
                         task: str | None = None, progress: Progress = False,
                         processes: Processes = ONE_PROCESS) -> dict:
    """The baseline for :func:`masking_curve`: heads masked in a random order.

    Every seed masks ``heads_per_step`` more heads per step, in the order of
    ``np.random.default_rng(seed).permutation``. All seeds step together
    until each has left ``masking_threshold`` of the original (as :func:`masking_curve`) and at least
    ``min_steps`` steps are done (pass ``len(curve) - 1`` to cover the
    importance curve), or until one head would be left. ``progress``: a tqdm
    bar (True), none (False) or ``progress(done, total)`` in steps.

    Returns
    -------
    dict
        ``seeds``; ``steps``: one entry per step (the unmasked model first)
        with ``heads_masked``, ``fraction_masked``, ``scores`` (one per seed),
        ``mean``, ``std``, ``min``, ``max`` of the metric; ``final_fraction_masked``:
        per seed, the fraction masked at its last step above the threshold,
        and ``final_fraction_masked_mean``.
    """
    bound, eval_set = as_scored(bound, eval_set, examples, task=task, max_length=max_length)
    metric = _metric_name(bound, eval_set, metric)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("random_masking_curve needs at least one seed")
    num_layers, num_heads = bound.shape
    total = num_layers * num_heads
    per_step = heads_per_step(total, masking_amount)
    score = _scorer(bound, eval_set, batch_size, processes)
    original = original_score if original_score is not None else score(None)
    objective = bound.require_objective()
    orders = [np.random.default_rng(seed).permutation(total) for seed in seeds]
    dropped = [False] * len(seeds)
    final_fraction = [0.0] * len(seeds)
    steps = [_aggregate(0, 0, total, [original[metric]] * len(seeds))]
    report = progress_reporter(progress, (total - 1) // per_step, show_bar=processes.is_main,
                               desc="random masking", unit="step")
    with report:
        while total - steps[-1]["heads_masked"] > per_step:
            if all(dropped) and len(steps) - 1 >= min_steps:
                break
            masked = steps[-1]["heads_masked"] + per_step
            values = []
            for i, order in enumerate(orders):
                mask = np.ones(total, dtype=np.float32)
                mask[order[:masked]] = 0.0
                value = score(mask.reshape(num_layers, num_heads))[metric]
                values.append(value)
                if not dropped[i] and objective.within(value, original[metric], masking_threshold, metric):
                    final_fraction[i] = masked / total
                else:
                    dropped[i] = True
            steps.append(_aggregate(len(steps), masked, total, values))
            report.update(1)
    return {"seeds": seeds, "metric": metric, "heads_per_step": per_step, "steps": steps,
            "final_fraction_masked": final_fraction,
            "final_fraction_masked_mean": float(np.mean(final_fraction))}


def _aggregate(step: int, masked: int, total: int, values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"step": step, "heads_masked": int(masked), "fraction_masked": masked / total,
            "scores": values.tolist(), "mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "max": float(values.max())}


def keep_one_head_per_layer(bound: BoundModel | nn.Module,
                            eval_set: EvalSet | PreTrainedTokenizerBase | Sequence[Example],
                            examples: Sequence[Example] | None = None, importance: np.ndarray | None = None, *,
                            metric: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                            max_length: int = DEFAULT_MAX_LENGTH, task: str | None = None,
                            processes: Processes = ONE_PROCESS) -> dict:
    """Score the model with only the most important head of each layer left.

    Returns ``{"mask": (layers, heads) nested list, "score": metrics dict,
    "metric": name, "heads_kept": layers, "fraction_masked": float}``.
    """
    bound, eval_set = as_scored(bound, eval_set, examples, task=task, max_length=max_length)
    metric = _metric_name(bound, eval_set, metric)
    if importance is None:
        raise ValueError("keep_one_head_per_layer needs importance=, a (layers, heads) table")
    importance = np.asarray(importance, dtype=np.float64)
    if importance.shape != bound.shape:
        raise ValueError(f"importance has shape {importance.shape}; this model has "
                         f"{bound.num_layers} layers x {bound.num_heads} heads")
    mask = np.zeros(importance.shape, dtype=np.float32)
    mask[np.arange(mask.shape[0]), importance.argmax(1)] = 1.0
    result = _scorer(bound, eval_set, batch_size, processes)(mask)
    return {"mask": mask.tolist(), "score": result, "metric": metric, "heads_kept": int(mask.sum()),
            "fraction_masked": float((mask == 0).mean())}


def _forward_seconds(bound: BoundModel, encoded: EncodedExamples, batches, mask, repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` forward passes over pre-collated batches."""
    device = bound.device
    inputs = [collate(encoded, indices, bound.pad_id, device, bound.uses_token_types) for indices in batches]
    times = []
    with torch.inference_mode(), bound.masked(mask):
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in inputs:
                bound.model(**batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def _agreement(masked: np.ndarray, pruned: np.ndarray) -> float:
    """The share of examples predicted alike: equal ids, or for rows of statistics ``(n, k)`` close ones."""
    if masked.ndim == 1:
        return float(np.mean(masked == pruned))
    return float(np.mean(np.isclose(masked, pruned, rtol=1e-4, atol=1e-6).all(axis=-1)))


def prune_and_compare(bound: BoundModel | nn.Module, eval_set: EvalSet | PreTrainedTokenizerBase | Sequence[Example],
                      examples: Sequence[Example] | None = None, mask: HeadMaskLike = None, *,
                      metric: str | None = None, repeats: int = 3,
                      batch_size: int = DEFAULT_BATCH_SIZE, max_length: int = DEFAULT_MAX_LENGTH,
                      task: str | None = None) -> dict:
    """Prune the heads ``mask`` removes from a copy of ``model``; compare size, score and speed.

    The caller's model is left as it was. Times are forward passes only
    (tokenization and batching done once beforehand), the median of
    ``repeats`` runs: ``seconds_before`` on the original model with the mask
    applied as gates (what run_bertology.py times), ``seconds_after`` on the
    pruned copy.

    Returns
    -------
    dict
        ``params_before``, ``params_after``, ``params_removed``,
        ``heads_before``, ``heads_after``, ``metric``, ``score_masked`` and
        ``score_pruned`` (metrics dicts, equal up to rounding),
        ``predictions_agree`` (fraction of equal predictions; for a language model, of texts whose
        NLL sum, token count and top-1 hits agree to 1e-4 relative),
        ``seconds_before``, ``seconds_after``, ``speedup``
        (= ``seconds_before / seconds_after``; above 1 means pruning is faster).
    """
    bound, eval_set = as_scored(bound, eval_set, examples, task=task, max_length=max_length)
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    metric = _metric_name(bound, eval_set, metric)
    metric_names = bound.require_objective().metrics
    pruned = bound.pruned(mask)
    report = pruned.prune_report
    assert report is not None  # pruned() sets it
    masked = evaluate(bound, eval_set, mask=mask, batch_size=batch_size)
    after = evaluate(pruned, eval_set, batch_size=batch_size)
    batches = length_sorted_batches(eval_set.encoded.lengths, batch_size)
    with eval_mode(bound.model):
        seconds_before = _forward_seconds(bound, eval_set.encoded, batches, mask, repeats)
    with eval_mode(pruned.model):
        seconds_after = _forward_seconds(pruned, eval_set.encoded, batches, None, repeats)
    return {
        "params_before": report.params_before, "params_after": report.params_after,
        "params_removed": report.params_removed,
        "heads_before": report.heads_before, "heads_after": report.heads_after,
        "metric": metric,
        "score_masked": {name: float(masked[name]) for name in metric_names},
        "score_pruned": {name: float(after[name]) for name in metric_names},
        "predictions_agree": _agreement(masked["predictions"], after["predictions"]),
        "seconds_before": seconds_before, "seconds_after": seconds_after,
        "speedup": seconds_before / seconds_after if seconds_after > 0 else float("inf"),
        "speedup_definition": "seconds_before / seconds_after (forward passes, median of repeats)",
    }
