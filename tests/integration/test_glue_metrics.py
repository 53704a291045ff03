"""GLUE metrics against values computed independently (by hand or with numpy formulas)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from bertology_widgets.glue import compute_metrics, compute_mnli_metrics


def mcc_by_formula(labels, predictions) -> float:
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    tp = np.sum((predictions == 1) & (labels == 1))
    tn = np.sum((predictions == 0) & (labels == 0))
    fp = np.sum((predictions == 1) & (labels == 0))
    fn = np.sum((predictions == 0) & (labels == 1))
    return (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))


@pytest.mark.parametrize("task", ["sst2", "qnli", "rte", "wnli", "SST-2"])
def test_accuracy(task):
    assert compute_metrics(task, [0, 1, 1, 0], [0, 1, 0, 0]) == {"accuracy": 0.75}


@pytest.mark.parametrize("task", ["mrpc", "qqp"])
def test_f1_of_the_positive_class_and_accuracy(task):
    # tp = 2, fp = 1, fn = 1, tn = 1: precision = recall = 2/3, so F1 = 2/3; accuracy 3/5.
    scores = compute_metrics(task, [1, 1, 1, 0, 0], [1, 1, 0, 1, 0])
    assert list(scores) == ["f1", "accuracy"]
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(3 / 5)


def test_f1_uses_class_one_as_positive():
    # All wrong on class 1 and right on class 0: F1 of class 1 is 0 though accuracy is 1/2.
    scores = compute_metrics("mrpc", [0, 0, 0, 0], [1, 1, 0, 0])
    assert scores == {"f1": 0.0, "accuracy": 0.5}


def test_matthews_correlation_matches_formula():
    labels = [1, 1, 1, 0, 0, 1, 0, 1, 1, 0]
    predictions = [1, 0, 1, 0, 1, 1, 0, 1, 1, 1]
    # tp=5, tn=2, fp=2, fn=1 -> (10 - 2) / sqrt(7 * 6 * 4 * 3)
    expected = 8 / math.sqrt(7 * 6 * 4 * 3)
    assert mcc_by_formula(labels, predictions) == pytest.approx(expected)
    assert compute_metrics("cola", predictions, labels) == {"matthews_correlation": pytest.approx(expected)}


def test_pearson_and_spearman_match_numpy():
    labels = [0.0, 1.5, 2.0, 3.5, 5.0]
    predictions = [0.3, 1.0, 2.8, 3.0, 4.1]
    scores = compute_metrics("stsb", predictions, labels)
    assert list(scores) == ["pearson", "spearmanr"]
    assert scores["pearson"] == pytest.approx(np.corrcoef(predictions, labels)[0, 1])
    assert scores["spearmanr"] == pytest.approx(1.0)  # both are increasing: identical ranks


def test_spearman_with_ties_uses_average_ranks():
    labels = [1.0, 2.0, 2.0, 3.0]
    predictions = [1.0, 2.0, 3.0, 4.0]
    label_ranks, prediction_ranks = [1, 2.5, 2.5, 4], [1, 2, 3, 4]
    expected = np.corrcoef(label_ranks, prediction_ranks)[0, 1]
    assert compute_metrics("stsb", predictions, labels)["spearmanr"] == pytest.approx(expected)


def test_spearman_differs_from_pearson_on_nonlinear_data():
    labels = [1.0, 2.0, 3.0, 4.0]
    predictions = [1.0, 2.0, 3.0, 100.0]
    scores = compute_metrics("stsb", predictions, labels)
    assert scores["spearmanr"] == pytest.approx(1.0)
    assert scores["pearson"] == pytest.approx(np.corrcoef(predictions, labels)[0, 1])
    assert scores["pearson"] < 0.8


def test_results_are_plain_python_floats():
    for task, predictions, labels in [
        ("cola", [1, 0], [1, 0]), ("mrpc", [1, 0], [1, 1]), ("stsb", [0.1, 0.9], [0.0, 5.0]),
    ]:
        assert all(type(value) is float for value in compute_metrics(task, predictions, labels).values())


def test_logits_are_turned_into_class_ids():
    logits = np.array([[2.0, 0.1, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 0.5], [5.0, 0.0, 0.0]])
    assert compute_metrics("mnli", logits, [0, 1, 2, 1]) == {"accuracy": 0.75}


def test_regression_predictions_of_shape_n_by_1():
    predictions = np.array([[0.5], [1.0], [4.0]])
    labels = [0.0, 2.0, 3.0]
    expected = np.corrcoef(predictions[:, 0], labels)[0, 1]
    assert compute_metrics("stsb", predictions, labels)["pearson"] == pytest.approx(expected)


def test_mnli_matched_and_mismatched_accuracy():
    scores = compute_mnli_metrics(matched=([0, 1, 2, 2], [0, 1, 2, 0]), mismatched=([1, 1], [1, 0]))
    assert scores == {"accuracy_matched": 0.75, "accuracy_mismatched": 0.5}


# ---------------------------------------------------------------- degenerate input


def test_degenerate_cases_follow_the_libraries_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compute_metrics("cola", [1, 1, 1], [1, 0, 1]) == {"matthews_correlation": 0.0}
        assert compute_metrics("mrpc", [0, 0], [0, 0]) == {"f1": 0.0, "accuracy": 1.0}
        constant = compute_metrics("stsb", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
        assert math.isnan(constant["pearson"]) and math.isnan(constant["spearmanr"])
        single = compute_metrics("stsb", [2.0], [1.0])
        assert math.isnan(single["pearson"]) and math.isnan(single["spearmanr"])


@pytest.mark.parametrize(
    "task, predictions, labels, message",
    [
        ("sst2", [0, 1, 1], [0, 1], "3 predictions but 2 labels"),
        ("sst2", [], [], "empty input"),
        ("stsb", [], [], "empty input"),
        ("rte", [0, 1], [0, None], "labels contain None"),
        ("rte", [0, 2], [0, 1], r"predictions must be class ids in 0..1"),
        ("mnli", [0, 1], [0, 3], r"labels must be class ids in 0..2"),
        ("sst2", [0.5, 1.0], [0, 1], "predictions must be class ids"),
        ("cola", [[[0]]], [0], "expected 1-D predictions"),
    ],
)
def test_invalid_input_raises_clear_errors(task, predictions, labels, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(task, predictions, labels)


def test_unknown_task():
    with pytest.raises(ValueError, match="valid tasks: cola, sst2"):
        compute_metrics("imdb", [0], [0])


@pytest.mark.parametrize("seed", range(5))
def test_counting_metrics_are_bitwise_scikit_learns(seed):
    """Accuracy, F1 and Matthews are computed with numpy; the values must be scikit-learn's, bit for bit."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 1500))
    labels = rng.integers(0, 2, n)
    # mostly right, sometimes a single predicted class (the degenerate Matthews case)
    predictions = np.where(rng.random(n) < 0.8, labels, 1 - labels) if seed < 4 else np.ones(n, dtype=int)
    assert compute_metrics("sst2", predictions, labels)["accuracy"] == accuracy_score(labels, predictions)
    assert compute_metrics("mrpc", predictions, labels)["f1"] == f1_score(labels, predictions, zero_division=0.0)
    assert compute_metrics("cola", predictions, labels)["matthews_correlation"] == matthews_corrcoef(labels,
                                                                                                     predictions)


def test_scoring_a_classification_task_imports_no_sklearn():
    """sklearn.metrics costs every kernel ~36 MiB; the live score never needs it."""
    import subprocess
    import sys

    code = ("import sys; from bertology_widgets.glue import compute_metrics; "
            "compute_metrics('cola', [0, 1, 1], [0, 1, 0]); compute_metrics('mrpc', [0, 1, 1], [0, 1, 0]); "
            "import numpy as np; from bertology_widgets.glue import estimates; "
            "estimates.estimate('sst2', np.array([0, 1]), np.array([1, 1]), 10); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "sklearn" not in out
