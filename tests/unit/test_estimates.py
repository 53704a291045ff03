"""The bootstrap's vectorised metrics agree with the GLUE metrics, resample by resample."""

from __future__ import annotations

import numpy as np
import pytest

from bertology_widgets.glue import compute_metrics, get_task
from bertology_widgets.glue.estimates import _bootstrap_values, estimate


def fixed_resamples(n: int, resamples: int = 20) -> np.ndarray:
    """Rows of indices drawn with replacement: every row repeats examples, so ranks tie."""
    return np.random.default_rng(1).integers(0, n, size=(resamples, n))


@pytest.mark.parametrize("task", ["sst2", "mrpc", "cola"])
def test_classification_bootstrap_matches_compute_metrics(task):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    predictions = np.where(rng.random(40) < 0.7, labels, 1 - labels)
    rows = fixed_resamples(40)
    for metric in get_task(task).metrics:
        boot = _bootstrap_values(metric, predictions[rows], labels[rows])
        expected = [compute_metrics(task, predictions[r], labels[r])[metric] for r in rows]
        np.testing.assert_allclose(boot, expected, atol=1e-12, err_msg=metric)


def test_correlation_bootstrap_matches_compute_metrics_with_ties():
    rng = np.random.default_rng(0)
    labels = np.round(rng.uniform(0, 5, 30) * 2) / 2  # STS-B style: many equal gold scores
    predictions = np.round(labels + rng.normal(0, 1, 30), 1)
    rows = fixed_resamples(30)
    assert all(len(np.unique(r)) < len(r) for r in rows)  # the resamples do tie
    for metric in ("pearson", "spearmanr"):
        boot = _bootstrap_values(metric, predictions[rows], labels[rows])
        expected = [compute_metrics("stsb", predictions[r], labels[r])[metric] for r in rows]
        np.testing.assert_allclose(boot, expected, atol=1e-12, err_msg=metric)


def test_estimate_gives_the_sample_metric_inside_its_interval():
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 5, 50)
    predictions = labels + rng.normal(0, 1, 50)
    values, intervals = estimate("stsb", predictions, labels, population=1500)
    assert values == compute_metrics("stsb", predictions, labels)
    for metric, (low, high) in intervals.items():
        assert low <= values[metric] <= high
