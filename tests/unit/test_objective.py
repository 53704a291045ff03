"""The objective a bound model carries: the GLUE scores it gives, and a metric where lower is better."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bertology_widgets.analyses.evaluation import evaluate, predict
from bertology_widgets.analyses.masking_curve import masking_curve, random_masking_curve
from bertology_widgets.core.bound import bind
from bertology_widgets.core.objective import ClassificationObjective, RegressionObjective, glue_objective
from bertology_widgets.glue import compute_metrics, get_task
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets.score_readout import score_html

GREEN, RED = "#15803d", "#b91c1c"


class ErrorRate(ClassificationObjective):
    """SST-2 scored by its error rate: lower is better (as a language model's perplexity)."""

    def __init__(self):
        super().__init__(get_task("sst2"))
        self.name, self.metrics = "sst2-error", ("error_rate",)

    def higher_is_better(self, metric=None) -> bool:
        return False

    def score(self, stats, eval_set, indices=None):
        accuracy = super().score(stats, eval_set, indices)["accuracy"]
        return {"error_rate": 1.0 - accuracy}


@pytest.fixture(scope="module")
def examples():
    return tiny_examples(24, seed=11)


def test_the_glue_objectives_give_the_official_metrics(tokenizer, examples):
    model = tiny_model("bert", seed=5, initializer_range=1.0)
    bound = bind(model, tokenizer, "sst2")
    assert isinstance(bound.objective, ClassificationObjective) and bound.objective.primary_metric == "accuracy"
    assert isinstance(glue_objective(get_task("stsb")), RegressionObjective)
    eval_set = bound.encode(examples)
    logits = predict(bound, eval_set, reduce=False)
    result = evaluate(bound, eval_set)
    assert result["accuracy"] == compute_metrics("sst2", logits.argmax(-1), eval_set.labels)["accuracy"]
    np.testing.assert_array_equal(result["predictions"], logits.argmax(-1))
    losses = bound.objective.losses(torch.from_numpy(logits), {}, eval_set, np.arange(len(eval_set)))
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.as_tensor(eval_set.labels),
                                                 reduction="none")
    torch.testing.assert_close(losses, expected)
    with pytest.raises(ValueError, match="reports accuracy"):
        bound.objective.metric_name("f1")


@pytest.mark.parametrize("higher", [True, False])
def test_the_direction_decides_the_threshold_and_the_improvement(higher):
    objective = ClassificationObjective(get_task("sst2")) if higher else ErrorRate()
    assert objective.threshold_value(0.5, 0.8) == pytest.approx(0.4 if higher else 0.625)
    assert objective.within(0.3, 0.5, 0.8) is (not higher)  # an accuracy fell too far; an error rate is fine
    assert objective.within(0.7, 0.5, 0.8) is higher  # an accuracy is fine; an error rate grew too far
    assert (objective.improvement(0.6, 0.5) > 0) is higher
    assert objective.threshold_value(0.5, 0.0) == (0.0 if higher else float("inf"))


def test_a_lower_is_better_objective_drives_the_masking_curve(tokenizer, examples):
    """The curve keeps masking while the error rate stays at most original / threshold, and stops past it."""
    model = tiny_model("bert", seed=5, initializer_range=1.0)
    bound = bind(model, tokenizer, "sst2", objective=ErrorRate())
    eval_set = bound.encode(examples)
    curve = masking_curve(bound, eval_set, masking_amount=0.25, masking_threshold=0.7)
    original = curve.original_score["error_rate"]
    assert curve.metric == "error_rate" and not curve.higher_is_better
    assert curve.threshold_score == pytest.approx(original / 0.7)
    errors = [step["score"]["error_rate"] for step in curve.curve]
    assert [step["kept"] for step in curve.curve] == [e <= original / 0.7 for e in errors]
    assert all(step["kept"] for step in curve.curve[:-1])
    if not curve.curve[-1]["kept"]:  # stopped because the error rate grew past the threshold
        assert errors[-1] > original / 0.7
        np.testing.assert_array_equal(curve.final_mask, np.asarray(curve.curve[-2]["mask"]))
    accuracy = evaluate(bind(model, tokenizer, "sst2"), examples, mask=curve.final_mask)["accuracy"]
    assert 1.0 - accuracy <= original / 0.7 + 1e-12
    baseline = random_masking_curve(bound, eval_set, masking_amount=0.25, masking_threshold=0.7, seeds=(0, 1))
    for seed, fraction in enumerate(baseline["final_fraction_masked"]):
        expected = 0.0
        for step in baseline["steps"][1:]:
            if step["scores"][seed] > original / 0.7:
                break
            expected = step["fraction_masked"]
        assert fraction == expected


def readout(objective, score: float, baseline: float) -> str:
    metric = objective.primary_metric
    session = SimpleNamespace(
        score={metric: score}, baseline_score={metric: baseline}, score_interval={}, score_is_estimate=False,
        metric_names=[metric], busy=False, progress=1.0, examples=[0] * 10, precision="fp32", num_layers=2,
        num_heads=2, masked_count=1, bound=SimpleNamespace(objective=objective))
    return score_html(session)


def test_the_readout_colours_follow_the_direction():
    accuracy, error = ClassificationObjective(get_task("sst2")), ErrorRate()
    assert f'color:{GREEN}">+0.1000' in readout(accuracy, 0.9, 0.8)
    assert f'color:{RED}">-0.1000' in readout(accuracy, 0.7, 0.8)
    assert f'color:{RED}">+0.1000' in readout(error, 0.3, 0.2)  # more errors: worse, though the number grew
    assert f'color:{GREEN}">-0.1000' in readout(error, 0.1, 0.2)
