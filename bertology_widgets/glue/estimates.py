"""Running estimates of a GLUE metric from a random subset of examples.

While the live scorer walks the evaluation set in a fixed random order, the
examples seen so far are a simple random sample. The point estimate is the
task's official metric on that sample; the interval is a percentile bootstrap
(vectorised, ~1 ms for a few hundred examples) shrunk by the finite-population
correction, since the sample is drawn without replacement from ``N`` examples.
"""

from __future__ import annotations

import numpy as np

from .metrics import compute_metrics
from .tasks import get_task


def _confusion_binary(pred: np.ndarray, gold: np.ndarray):
    tp = ((pred == 1) & (gold == 1)).sum(-1)
    fp = ((pred == 1) & (gold == 0)).sum(-1)
    fn = ((pred == 0) & (gold == 1)).sum(-1)
    tn = ((pred == 0) & (gold == 0)).sum(-1)
    return tp.astype(float), fp.astype(float), fn.astype(float), tn.astype(float)


def _bootstrap_values(metric: str, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Metric values for each bootstrap row, as :func:`compute_metrics` gives them (0 where it gives nan).

    ``pred``, ``gold``: ``(resamples, n)``; returns shape ``(resamples,)``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return (pred == gold).mean(-1)
        if metric == "f1":
            tp, fp, fn, _ = _confusion_binary(pred, gold)
            return np.nan_to_num(2 * tp / (2 * tp + fp + fn))
        if metric == "matthews_correlation":
            tp, fp, fn, tn = _confusion_binary(pred, gold)
            denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
            return np.nan_to_num((tp * tn - fp * fn) / denom)
        if metric in ("pearson", "spearmanr"):
            if metric == "spearmanr":  # average ranks for ties, as scipy.stats.spearmanr (every resample has ties)
                from scipy.stats import rankdata  # here: scipy.stats costs a kernel ~16 MiB, and only STS-B needs it

                pred = rankdata(pred, axis=-1)
                gold = rankdata(gold, axis=-1)
            pc = pred - pred.mean(-1, keepdims=True)
            gc = gold - gold.mean(-1, keepdims=True)
            return np.nan_to_num((pc * gc).sum(-1) / np.sqrt((pc ** 2).sum(-1) * (gc ** 2).sum(-1)))
    raise ValueError(f"no bootstrap for metric {metric!r}")


def estimate(task: str, predictions: np.ndarray, labels: np.ndarray, population: int,
             resamples: int = 200, level: float = 0.95, seed: int = 0) -> tuple[dict, dict]:
    """Point estimates and intervals from a sample.

    Parameters
    ----------
    predictions, labels : np.ndarray, shape ``(n,)``
        The sample scored so far.
    population : int
        Size ``N`` of the whole evaluation set.

    Returns
    -------
    (dict, dict)
        ``{metric: value}`` and ``{metric: (low, high)}``.
    """
    glue_task = get_task(task)
    values = compute_metrics(glue_task.name, predictions, labels)
    n = len(predictions)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, size=(resamples, n))
    fpc = np.sqrt(max(0.0, (population - n) / max(1, population - 1)))
    alpha = (1 - level) / 2
    intervals = {}
    for metric, value in values.items():
        try:
            boot = _bootstrap_values(metric, predictions[rows], labels[rows])
        except ValueError:
            continue
        low, high = np.quantile(boot, [alpha, 1 - alpha])
        intervals[metric] = (float(value - (value - low) * fpc), float(value + (high - value) * fpc))
    return values, intervals
