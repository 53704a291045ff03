"""The masking curve, its baselines and the prune report, on a tiny BERT.

Labels are the tiny model's own predictions, so the unmasked accuracy is 1
and masking heads can only lower it.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from reference import HEADS, LAYERS, num_params

from bertology_widgets.analyses.evaluation import evaluate, predict
from bertology_widgets.analyses.importance import head_importance
from bertology_widgets.analyses.masking_curve import (
    heads_per_step,
    keep_one_head_per_layer,
    masking_curve,
    prune_and_compare,
    random_masking_curve,
)
from bertology_widgets.core.pruning import expected_params_after
from bertology_widgets.glue import Example
from bertology_widgets.testing import tiny_bound, tiny_model

TEXTS = [
    "the movie was wonderful and moving", "a dull , lifeless mess", "i loved every minute of it",
    "the plot makes no sense at all", "brilliant acting from the whole cast", "boring",
    "an instant classic that will be remembered", "the worst film of the year , by far",
    "funny , warm and clever", "it drags on forever without a point", "hello there", "what a ride !",
]


@pytest.fixture(scope="module")
def model():
    return tiny_model("bert", seed=1, initializer_range=1.0)


@pytest.fixture(scope="module")
def examples(model, tokenizer):
    unlabelled = [Example(text, None, 0, i) for i, text in enumerate(TEXTS)]
    predictions = predict(model, tokenizer, unlabelled, reduce=False).argmax(-1)
    assert 0 < predictions.sum() < len(TEXTS)  # both classes, so masking can hurt
    return [Example(ex.text_a, None, int(p), ex.idx) for ex, p in zip(unlabelled, predictions)]


def accuracy(model, tokenizer, examples, mask):
    return evaluate(model, tokenizer, examples, mask=mask, task="sst2")["accuracy"]


@pytest.fixture(scope="module")
def curve(model, tokenizer, examples):
    # 0.6: on this model two steps keep the threshold and the third falls below it
    return masking_curve(model, tokenizer, examples, masking_amount=0.25, masking_threshold=0.6, task="sst2")


def test_curve_is_monotone_and_respects_the_threshold(curve, model, tokenizer, examples):
    steps = curve.curve
    assert curve.original_score["accuracy"] == 1.0 and curve.heads_per_step == 3
    assert [s["heads_masked"] for s in steps] == [3 * i for i in range(len(steps))]
    assert [s["step"] for s in steps] == list(range(len(steps)))
    threshold = 0.6 * curve.original_score["accuracy"]
    for step in steps[:-1]:
        assert step["kept"] and step["score"]["accuracy"] >= threshold
    for before, after in zip(steps, steps[1:]):  # masks only grow
        assert (np.asarray(after["mask"]) <= np.asarray(before["mask"])).all()
    last_kept = [s for s in steps if s["kept"]][-1]
    np.testing.assert_array_equal(curve.final_mask, last_kept["mask"])
    assert accuracy(model, tokenizer, examples, curve.final_mask) >= threshold
    assert not steps[-1]["kept"] and steps[-1]["score"]["accuracy"] < threshold
    assert len(steps) >= 3  # the test covers steps after a recomputation of importance


def test_each_step_masks_the_least_important_heads_under_the_current_mask(curve, model, tokenizer, examples):
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    for step in curve.curve[1:]:
        importance = head_importance(model, tokenizer, examples, mask=mask, task="sst2",
                                     compute_entropy=False).importance
        active = np.flatnonzero(mask.reshape(-1) > 0)
        expected = active[np.argsort(importance.reshape(-1)[active], kind="stable")[:3]]
        newly = np.flatnonzero((mask.reshape(-1) > 0) & (np.asarray(step["mask"]).reshape(-1) == 0))
        assert sorted(newly.tolist()) == sorted(expected.tolist())
        mask = np.asarray(step["mask"], dtype=np.float32)


def test_without_a_threshold_it_masks_until_one_step_is_left(model, tokenizer, examples):
    curve = masking_curve(model, tokenizer, examples, masking_amount=0.25, masking_threshold=0.0, task="sst2",
                          compat=True, normalize_global=False)
    assert [s["heads_masked"] for s in curve.curve] == [0, 3, 6, 9]  # 3 heads left: no full step more
    assert all(s["kept"] for s in curve.curve)
    assert curve.final_fraction_masked == 0.75


def test_given_importance_orders_the_first_step(model, tokenizer, examples):
    importance = np.arange(LAYERS * HEADS, dtype=np.float32)[::-1].reshape(LAYERS, HEADS)
    seen = []
    curve = masking_curve(model, tokenizer, examples, masking_amount=0.1, masking_threshold=2.0, task="sst2",
                          importance=importance, on_step=seen.append, metric="acc")
    assert len(curve.curve) == 2 and not curve.curve[1]["kept"]  # threshold above any score: one step
    assert np.asarray(curve.curve[1]["mask"])[-1, -1] == 0 and curve.curve[1]["heads_masked"] == 1
    assert seen == curve.curve[1:] and curve.metric == "accuracy"
    assert (curve.final_mask == 1).all()
    assert curve.to_dict()["steps"] == curve.curve


def test_random_baseline_uses_the_same_step_sizes(model, tokenizer, examples, curve):
    baseline = random_masking_curve(model, tokenizer, examples, masking_amount=0.25, masking_threshold=0.6,
                                    seeds=(0, 1, 2), min_steps=len(curve.curve) - 1, task="sst2",
                                    original_score=curve.original_score)
    steps = baseline["steps"]
    assert len(steps) >= len(curve.curve)
    assert [s["heads_masked"] for s in steps] == [3 * i for i in range(len(steps))]
    for step in steps:
        assert len(step["scores"]) == 3
        assert step["min"] <= step["mean"] <= step["max"]
        assert step["std"] == pytest.approx(np.std(step["scores"]))
    again = random_masking_curve(model, tokenizer, examples, masking_amount=0.25, masking_threshold=0.6,
                                 seeds=(1,), task="sst2",
                                 min_steps=len(steps) - 1)
    assert [s["scores"][0] for s in again["steps"]] == [s["scores"][1] for s in steps]
    order = np.random.default_rng(1).permutation(LAYERS * HEADS)
    mask = np.ones(LAYERS * HEADS, dtype=np.float32)
    mask[order[:3]] = 0
    assert steps[1]["scores"][1] == accuracy(model, tokenizer, examples, mask.reshape(LAYERS, HEADS))
    for fraction, seed_index in zip(baseline["final_fraction_masked"], range(3)):
        scores = [s["scores"][seed_index] for s in steps]
        kept = 0
        while kept + 1 < len(scores) and scores[kept + 1] >= 0.6:
            kept += 1
        assert fraction == steps[kept]["fraction_masked"]


def test_keep_one_head_per_layer(model, tokenizer, examples, curve):
    result = keep_one_head_per_layer(model, tokenizer, examples, curve.importance, task="sst2")
    mask = np.asarray(result["mask"])
    assert (mask.sum(1) == 1).all()
    assert (mask.argmax(1) == curve.importance.argmax(1)).all()
    assert result["score"]["accuracy"] == accuracy(model, tokenizer, examples, mask)
    assert result["heads_kept"] == LAYERS and result["fraction_masked"] == 1 - 1 / HEADS


def test_prune_and_compare(model, tokenizer, examples, curve):
    before = copy.deepcopy(model.state_dict())
    mask = curve.final_mask.copy()
    mask[0] = 0  # a whole layer too
    report = prune_and_compare(model, tokenizer, examples, mask, task="sst2", repeats=2)
    assert report["score_pruned"] == pytest.approx(report["score_masked"])
    assert report["score_masked"]["accuracy"] == accuracy(model, tokenizer, examples, mask)
    assert report["predictions_agree"] == 1.0
    assert report["params_after"] == expected_params_after(tiny_bound(model), mask)
    assert report["params_before"] == num_params(model)
    assert report["params_removed"] == report["params_before"] - report["params_after"] > 0
    assert report["heads_after"] == int(mask.sum()) and report["heads_before"] == LAYERS * HEADS
    assert report["speedup"] == report["seconds_before"] / report["seconds_after"]
    after = model.state_dict()  # the caller's model is untouched
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_bad_arguments(model, tokenizer, examples):
    with pytest.raises(ValueError, match="reports accuracy"):
        masking_curve(model, tokenizer, examples, metric="f1", task="sst2")
    with pytest.raises(ValueError, match="masking_amount"):
        heads_per_step(12, 0.0)
    with pytest.raises(ValueError, match="shape"):
        keep_one_head_per_layer(model, tokenizer, examples, np.ones((2, 2)), task="sst2")
