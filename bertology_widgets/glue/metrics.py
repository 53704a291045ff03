"""GLUE metrics, computed with numpy (and scipy for the correlations).

=========================  ==========================================
task                       keys of :func:`compute_metrics`
=========================  ==========================================
CoLA                       ``"matthews_correlation"``
SST-2, QNLI, RTE, WNLI     ``"accuracy"``
MRPC, QQP                  ``"f1"`` (of class 1), ``"accuracy"``
STS-B                      ``"pearson"``, ``"spearmanr"``
MNLI                       ``"accuracy"`` (of whichever set was scored)
=========================  ==========================================

:func:`compute_mnli_metrics` scores both MNLI dev sets at once and returns
``"accuracy_matched"`` and ``"accuracy_mismatched"``.

Degenerate inputs follow the libraries: Matthews correlation is ``0.0``
when predictions or labels hold a single class; F1 is ``0.0`` when there
is no positive prediction and no positive label; Pearson and Spearman are
``nan`` (undefined) when predictions or labels are constant or there are
fewer than two examples.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .tasks import GlueTask, get_task

if TYPE_CHECKING:
    import numpy.typing as npt


# Accuracy, F1 and Matthews correlation are scikit-learn's formulas on counts (exact integers in float64,
# so the results are bitwise scikit-learn's; tests/test_glue_metrics.py compares them). Importing
# sklearn.metrics would cost every kernel about 36 MiB of private memory for three divisions.
def _accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    return float(np.mean(labels == predictions))


def _f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """F1 of class 1: ``2 tp / (2 tp + fp + fn)``, 0.0 when there is no positive prediction or label."""
    tp = float(np.sum((predictions == 1) & (labels == 1)))
    denominator = float(np.sum(labels == 1)) + float(np.sum(predictions == 1))
    return 2.0 * tp / denominator if denominator else 0.0


def _matthews(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Matthews correlation from the confusion matrix (0.0 when either side holds a single class)."""
    k = int(max(labels.max(), predictions.max())) + 1
    confusion = np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k)
    t_sum = confusion.sum(axis=1, dtype=np.float64)
    p_sum = confusion.sum(axis=0, dtype=np.float64)
    n_correct = np.trace(confusion, dtype=np.float64)
    n_samples = p_sum.sum()
    cov_ytyp = n_correct * n_samples - np.dot(t_sum, p_sum)
    cov_ypyp = n_samples ** 2 - np.dot(p_sum, p_sum)
    cov_ytyt = n_samples ** 2 - np.dot(t_sum, t_sum)
    product = cov_ypyp * cov_ytyt
    return float(cov_ytyp / np.sqrt(product)) if product else 0.0


def _correlation(name: str, labels: np.ndarray, predictions: np.ndarray) -> float:
    import scipy.stats

    if len(labels) < 2:
        return float("nan")
    with warnings.catch_warnings():  # constant input: the result is nan, which says enough
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        if name == "pearson":
            return scipy.stats.pearsonr(predictions, labels)[0]
        return scipy.stats.spearmanr(predictions, labels)[0]


_METRICS = {
    "accuracy": _accuracy,
    "f1": _f1,
    "matthews_correlation": _matthews,
    "pearson": lambda labels, predictions: _correlation("pearson", labels, predictions),
    "spearmanr": lambda labels, predictions: _correlation("spearmanr", labels, predictions),
}


def _as_arrays(task: GlueTask, predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert; 2-D classification predictions (logits) become argmax ids."""
    if labels is None or any(label is None for label in np.ravel(np.asarray(labels, dtype=object))):
        raise ValueError(f"{task.display_name}: labels contain None (GLUE test splits have no labels)")
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim == 2 and not task.is_regression:
        predictions = predictions.argmax(axis=-1)
    elif predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions[:, 0]
    if predictions.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            f"{task.display_name}: expected 1-D predictions and labels (or 2-D logits), "
            f"got shapes {predictions.shape} and {labels.shape}"
        )
    if len(predictions) != len(labels):
        raise ValueError(
            f"{task.display_name}: {len(predictions)} predictions but {len(labels)} labels; "
            "they must be the same length"
        )
    if len(labels) == 0:
        raise ValueError(f"{task.display_name}: no predictions and labels to score (empty input)")
    if task.is_regression:
        return predictions.astype(float), labels.astype(float)
    for what, values in (("predictions", predictions), ("labels", labels)):
        if not np.issubdtype(values.dtype, np.number) or np.any(values != np.round(values)):
            raise ValueError(f"{task.display_name}: {what} must be class ids (integers)")
        if values.min() < 0 or values.max() >= task.num_labels:
            raise ValueError(
                f"{task.display_name}: {what} must be class ids in 0..{task.num_labels - 1} "
                f"({', '.join(task.label_names)}), found {values.min()}..{values.max()}"
            )
    return predictions.astype(int), labels.astype(int)


def compute_metrics(task: str | GlueTask, predictions: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, float]:
    """The GLUE metrics of ``task`` for ``predictions`` against ``labels``.

    Parameters
    ----------
    task : str or GlueTask
        Task name or alias (see :func:`~bertology_widgets.glue.get_task`).
    predictions : array-like
        Class ids, or logits of shape ``(n, num_labels)`` (argmax is taken);
        for STS-B, scores of shape ``(n,)`` or ``(n, 1)``.
    labels : array-like
        Gold class ids (or STS-B scores), shape ``(n,)``.

    Returns
    -------
    dict of str to float
        Plain Python floats keyed by the names in ``task.metrics``, in that
        order (see the module docstring for the keys and degenerate cases).

    Raises
    ------
    ValueError
        For empty input, different lengths, labels containing None, or
        class ids that are not integers in ``range(num_labels)``.
    """
    spec = get_task(task)
    predictions, labels = _as_arrays(spec, predictions, labels)
    return {name: float(_METRICS[name](labels, predictions)) for name in spec.metrics}


def compute_mnli_metrics(
    matched: tuple[Sequence, Sequence], mismatched: tuple[Sequence, Sequence]
) -> dict[str, float]:
    """MNLI accuracy on both dev sets.

    Parameters
    ----------
    matched, mismatched : (predictions, labels)
        Predictions and labels on ``validation_matched`` and
        ``validation_mismatched``.

    Returns
    -------
    dict of str to float
        ``{"accuracy_matched": ..., "accuracy_mismatched": ...}``.
    """
    scores = {}
    for suffix, (predictions, labels) in (("matched", matched), ("mismatched", mismatched)):
        for name, value in compute_metrics("mnli", predictions, labels).items():
            scores[f"{name}_{suffix}"] = value
    return scores
