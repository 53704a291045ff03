"""What a bound model is scored on: the objective.

An :class:`Objective` says how examples are tokenized and what they are
scored against, what each batch's logits reduce to, the metrics and which
direction is better, the loss that head importance differentiates, the
vector that activation patching reads, and how a score compares with a
baseline. A :class:`~bertology_widgets.core.bound.BoundModel` carries one
(``bound.objective``); the live scorer, importance, the masking curve,
patching, the readout and the CLI ask it and never test what kind it is.

Scoring works in two steps, so a whole evaluation set never holds more than
one batch's logits: :meth:`Objective.reduce` turns each batch's logits into
per-example statistics rows ``(batch, *stat_shape)`` (a class id, a
regression score, or for a language model the NLL sum, the token count and
the top-1 hits), and :meth:`Objective.score` turns the rows of the whole set
(or of a random part of it, :meth:`Objective.estimate`) into metrics.

The GLUE objectives are :class:`ClassificationObjective` and
:class:`RegressionObjective` (:func:`glue_objective` picks one for a task).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .batching import encode_examples
from .evalset import EvalSet

if TYPE_CHECKING:
    from ..glue import Example, GlueTask
    from .facts import BoundFacts

#: ``metric(patched (rows, k), clean (k,), corrupted (k,)) -> (rows,)``: a patching metric over readout vectors.
PatchMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
#: A score: ``{metric name: value}``.
Scores = Mapping[str, float]


def encode_labelled(bound: BoundFacts, examples: Sequence[Example], max_length: int) -> EvalSet:
    """Texts (pairs too) tokenized by :func:`~bertology_widgets.core.batching.encode_examples`, cut to
    ``max_length`` tokens, with each example's ``label`` (``labels=None`` when one is missing)."""
    labels = [ex.label for ex in examples]
    return EvalSet(examples=examples, encoded=encode_examples(bound.tokenizer, examples, max_length),
                   labels=None if any(label is None for label in labels) else np.asarray(labels),
                   task=bound.task, max_length=int(max_length))


def logit_difference(logits: np.ndarray, target: int) -> np.ndarray:
    """``logits[..., target]`` minus the largest other logit (the other one for two classes).

    logits: ``(..., labels)`` -> ``(...)``.
    """
    logits = np.asarray(logits, dtype=np.float64)
    others = np.delete(logits, target, axis=-1)
    return logits[..., target] - others.max(-1)


def normalised_logit_difference(patched: np.ndarray, clean: np.ndarray, corrupted: np.ndarray, *,
                                target: int | None = None) -> np.ndarray:
    """``(LD(patched) - LD(corrupted)) / (LD(clean) - LD(corrupted))``; a classifier's patching metric.

    LD is :func:`logit_difference` for ``target`` (default: the clean input's predicted class).
    patched: ``(n, labels)``; clean, corrupted: ``(labels,)``. Returns ``(n,)``:
    1 means the patch alone restores the clean behaviour, 0 that nothing changes.
    """
    target = int(np.argmax(clean)) if target is None else int(target)
    ld_clean, ld_corrupted = logit_difference(clean, target), logit_difference(corrupted, target)
    denominator = ld_clean - ld_corrupted
    if abs(denominator) < 1e-9:
        raise ValueError("the clean and corrupted inputs give the same logit difference "
                         f"({ld_clean:.4g}); pick a corrupted input the model treats differently")
    return (logit_difference(patched, target) - ld_corrupted) / denominator


class Objective(ABC):
    """What is scored, by which metrics, and which direction is better.

    Attributes
    ----------
    name : str
        Shown in results (``evaluate(...)["task"]``), e.g. ``"sst2"`` or ``"perplexity"``.
    metrics : tuple of str
        The metrics :meth:`score` returns, in order; the first is the primary one.
    stat_dtype : numpy dtype
        The dtype of :meth:`reduce`'s rows.
    stat_shape : tuple of int
        The shape of one example's statistics row (``()`` for a class id).
    """

    name: str
    metrics: tuple[str, ...]
    stat_dtype: type = np.float64
    stat_shape: tuple[int, ...] = ()
    #: Whether the forward ends at the last layer's output ``(batch, pos, hidden)`` (a language model, whose
    #: head runs only where a score is read, in :meth:`reduce_output`) instead of the classifier head's logits.
    reads_hidden: bool = False

    # -- direction ---------------------------------------------------------------------------------------
    @property
    def primary_metric(self) -> str:
        """The metric to rank, threshold and plot by (the first of :attr:`metrics`)."""
        return self.metrics[0]

    def higher_is_better(self, metric: str | None = None) -> bool:
        """Whether a larger ``metric`` (default: the primary one) is better. True unless overridden."""
        return True

    def improvement(self, value: float, baseline: float, metric: str | None = None) -> float:
        """``value - baseline`` signed so that a positive number is better (the readout's colour)."""
        diff = float(value) - float(baseline)
        return diff if self.higher_is_better(metric) else -diff

    def threshold_value(self, baseline: float, threshold: float, metric: str | None = None) -> float:
        """The worst value still :meth:`within` ``threshold`` of ``baseline``.

        ``baseline * threshold`` where higher is better; ``baseline / threshold`` where lower is better
        (a perplexity may grow by ``1 / threshold``). A threshold of 0 keeps every value.
        """
        if not threshold >= 0:
            raise ValueError(f"the threshold must be 0 or more, got {threshold}")
        if self.higher_is_better(metric):
            return float(baseline) * threshold
        return float(baseline) / threshold if threshold > 0 else float("inf")

    def within(self, value: float, baseline: float, threshold: float, metric: str | None = None) -> bool:
        """Whether ``value`` keeps ``threshold`` of ``baseline`` (the masking curve's stopping test)."""
        limit = self.threshold_value(baseline, threshold, metric)
        return float(value) >= limit if self.higher_is_better(metric) else float(value) <= limit

    def metric_name(self, metric: str | None) -> str:
        """``metric`` checked against :attr:`metrics` (None: the primary one); ``ValueError`` lists them."""
        if metric is None:
            return self.primary_metric
        if metric not in self.metrics:
            raise ValueError(f"{self.name} reports {', '.join(self.metrics)}; got metric {metric!r}")
        return metric

    # -- data --------------------------------------------------------------------------------------------
    def encode(self, bound: BoundFacts, examples: Sequence[Example], max_length: int) -> EvalSet:
        """Tokenize ``examples`` once for ``bound`` and gather what they are scored against.

        The default is :func:`encode_labelled`.
        """
        return encode_labelled(bound, examples, max_length)

    def check(self, eval_set: EvalSet) -> None:
        """Raise ``ValueError`` when ``eval_set`` cannot be scored (a GLUE test split has no labels)."""

    # -- scoring -----------------------------------------------------------------------------------------
    def empty_stats(self, n: int) -> np.ndarray:
        """Zeroed statistics rows ``(n, *stat_shape)`` to fill batch by batch."""
        return np.zeros((n, *self.stat_shape), dtype=self.stat_dtype)

    @abstractmethod
    def reduce(self, logits: torch.Tensor, batch: Mapping[str, torch.Tensor], eval_set: EvalSet,
               indices: np.ndarray) -> np.ndarray:
        """One batch's per-example statistics rows ``(batch, *stat_shape)``.

        ``logits``: the model's output for ``batch`` in the task's label order (``(batch, labels)`` for
        a classifier, ``(batch, pos, vocab)`` for a language model); ``batch``: the collated inputs
        (``input_ids``, ``attention_mask``, ...); ``indices``: the rows of ``eval_set`` in the batch.
        """

    def reduce_output(self, bound: BoundFacts, output: torch.Tensor, batch: Mapping[str, torch.Tensor],
                      eval_set: EvalSet, indices: np.ndarray) -> np.ndarray:
        """Rows ``(batch, *stat_shape)`` from what a layer-by-layer forward ends in
        (:class:`~bertology_widgets.core.layerwise.LayerwiseRunner`): the logits (:meth:`reduce`), or
        the last layer's output where :attr:`reads_hidden`."""
        return self.reduce(output, batch, eval_set, indices)

    @abstractmethod
    def score(self, stats: np.ndarray, eval_set: EvalSet, indices: np.ndarray | None = None) -> dict[str, float]:
        """``{metric: value}`` for :attr:`metrics` from the rows ``stats`` ``(n, *stat_shape)``.

        ``indices``: which examples of ``eval_set`` the rows are (default: all, in order).
        """

    def estimate(self, stats: np.ndarray, eval_set: EvalSet, indices: np.ndarray,
                 population: int) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
        """A running estimate from a random part of the set: ``({metric: value}, {metric: (low, high)})``.

        ``stats`` ``(m, *stat_shape)`` are the rows of the examples ``indices`` seen so far, out of
        ``population``. The default gives the point values without intervals.
        """
        return self.score(stats, eval_set, indices), {}

    @abstractmethod
    def losses(self, logits: torch.Tensor, batch: Mapping[str, torch.Tensor], eval_set: EvalSet,
               indices: np.ndarray) -> torch.Tensor:
        """``(batch,)`` differentiable per-example losses (head importance takes ``d loss / d gate``)."""

    # -- patching ----------------------------------------------------------------------------------------
    def readout(self, logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The vector patching compares, ``(rows, k)``, from ``logits`` of ``rows`` inputs.

        The default: a classifier's logits ``(rows, labels)`` as they are.
        """
        return logits

    def patch_metric(self, target: int | None = None) -> PatchMetric:
        """The default patching metric; ``target``: the class (or token) whose restoration is measured
        (None: the clean input's top one)."""
        if target is None:
            return normalised_logit_difference

        def metric(patched: np.ndarray, clean: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
            return normalised_logit_difference(patched, clean, corrupted, target=target)

        return metric

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class GlueObjective(Objective):
    """A GLUE task: the examples' labels, the task's official metrics (higher is better)."""

    def __init__(self, task: GlueTask):
        self.task = task
        self.name = task.name
        self.metrics = tuple(task.metrics)

    def check(self, eval_set: EvalSet) -> None:
        eval_set.require_labels()

    def score(self, stats: np.ndarray, eval_set: EvalSet, indices: np.ndarray | None = None) -> dict[str, float]:
        from ..glue import compute_metrics

        labels = eval_set.require_labels()
        return compute_metrics(self.task, stats, labels if indices is None else labels[indices])

    def estimate(self, stats: np.ndarray, eval_set: EvalSet, indices: np.ndarray,
                 population: int) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
        """The task's metrics on the part seen, with percentile-bootstrap intervals
        (see :mod:`~bertology_widgets.glue.estimates`)."""
        from ..glue.estimates import estimate

        return estimate(self.task.name, stats, eval_set.require_labels()[indices], population)

    def _targets(self, eval_set: EvalSet, indices: np.ndarray, device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(eval_set.require_labels()[indices], dtype=dtype, device=device)


class ClassificationObjective(GlueObjective):
    """A GLUE classification task: rows are argmax class ids ``(n,)``; the loss is cross-entropy."""

    stat_dtype = np.int64

    def reduce(self, logits, batch, eval_set, indices):
        return logits.detach().float().argmax(-1).cpu().numpy().astype(np.int64)

    def losses(self, logits, batch, eval_set, indices):
        labels = self._targets(eval_set, indices, logits.device, torch.long)
        return F.cross_entropy(logits.float(), labels, reduction="none")


class RegressionObjective(GlueObjective):
    """A GLUE regression task (STS-B): rows are the predicted scores ``(n,)``; the loss is squared error."""

    stat_dtype = np.float64

    def reduce(self, logits, batch, eval_set, indices):
        return logits.detach()[:, 0].double().cpu().numpy()

    def losses(self, logits, batch, eval_set, indices):
        labels = self._targets(eval_set, indices, logits.device, torch.float32)
        return (logits.float().squeeze(-1) - labels) ** 2


def glue_objective(task: GlueTask) -> GlueObjective:
    """The objective of a GLUE task: :class:`RegressionObjective` for STS-B, else :class:`ClassificationObjective`."""
    return RegressionObjective(task) if task.is_regression else ClassificationObjective(task)


__all__ = ["ClassificationObjective", "GlueObjective", "Objective", "PatchMetric", "RegressionObjective",
           "encode_labelled", "glue_objective",
           "logit_difference", "normalised_logit_difference"]
