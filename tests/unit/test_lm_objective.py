"""Causal and masked LM objectives: perplexity equals transformers' own ``labels=`` loss, token-weighted.

References are computed text by text with the model's own ``labels=`` loss (mean
over the text's predicted tokens), multiplied back by the token count and summed,
so they check the token weighting as well as the positions. The masked
positions are chosen here again from the documented procedure, independently
of the package.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference import CAUSAL_LMS, HEADS, LAYERS, LMS, SENTENCES, shared_lm, zero_head_slices

from bertology_widgets.analyses.lm_evaluation import evaluate_lm, lm_precision
from bertology_widgets.core.bound import bind
from bertology_widgets.core.lm_objective import CausalLMObjective, MaskedLMObjective, lm_objective
from bertology_widgets.glue import Example

TEXTS = [Example(text_a=t, text_b=None, label=None, idx=i) for i, t in enumerate(
    SENTENCES + ["Why?", "The old man the boats, and the young sail them home before dark."])]
MASK = torch.tensor([[0.0, 1.0, 0.5, 1.0], [1.0, 0.0, 1.0, 0.25], [1.0, 1.0, 1.0, 0.0]])


def documented_positions(tokenizer, ids, index, seed=0):
    """docs/models.md's procedure, written out again."""
    special = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
    candidates = [p for p, s in enumerate(special) if s == 0]
    k = max(1, math.floor(0.15 * len(candidates) + 0.5))
    chosen = np.random.default_rng([seed, index]).choice(len(candidates), k, replace=False)
    return sorted(candidates[c] for c in chosen)


@torch.no_grad()
def labels_reference(model, tokenizer, arch, texts=TEXTS):
    """``(perplexity, token_accuracy, tokens)`` from the model's own ``labels=`` loss, text by text."""
    nll = hits = count = 0.0
    for i, ex in enumerate(texts):
        ids = tokenizer(ex.text_a)["input_ids"]
        if arch in CAUSAL_LMS:
            inputs = torch.tensor([ids])
            labels = inputs.clone()
            predicted = len(ids) - 1
            out = model(input_ids=inputs, labels=labels)
            guess = out.logits[0, :-1].argmax(-1)
            hits += float((guess == inputs[0, 1:]).sum())
        else:
            where = documented_positions(tokenizer, ids, i)
            labels = torch.full((1, len(ids)), -100)
            masked = torch.tensor([ids])
            labels[0, where] = masked[0, where]
            masked[0, where] = tokenizer.mask_token_id
            predicted = len(where)
            out = model(input_ids=masked, labels=labels)
            hits += float((out.logits[0, where].argmax(-1) == labels[0, where]).sum())
        nll += float(out.loss) * predicted
        count += predicted
    return math.exp(nll / count), hits / count, int(count)


@pytest.mark.parametrize("arch", LMS)
def test_perplexity_equals_the_token_weighted_labels_loss(arch, tokenizer):
    model = shared_lm(arch)
    result = evaluate_lm(model, tokenizer, TEXTS, batch_size=2)
    perplexity, accuracy, tokens = labels_reference(model, tokenizer, arch)
    assert result["perplexity"] == pytest.approx(perplexity, rel=1e-5)
    assert result["token_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert result["tokens"] == tokens and result["n"] == len(TEXTS)
    assert result["task"] == ("causal_lm" if arch in CAUSAL_LMS else "masked_lm") and result["precision"] == "fp32"


@pytest.mark.parametrize("arch", LMS)
def test_masked_perplexity_equals_the_slice_zeroing_reference(arch, tokenizer):
    model = shared_lm(arch)
    masked = evaluate_lm(model, tokenizer, TEXTS, mask=MASK, batch_size=3)
    perplexity, accuracy, _ = labels_reference(zero_head_slices(model, arch, MASK), tokenizer, arch)
    assert masked["perplexity"] == pytest.approx(perplexity, rel=1e-5)
    assert masked["token_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert masked["perplexity"] != pytest.approx(evaluate_lm(model, tokenizer, TEXTS)["perplexity"], rel=1e-4)


@pytest.mark.parametrize("arch", ["gpt2", "bert"])
def test_the_lm_head_runs_only_at_the_scored_positions(arch, tokenizer):
    model = shared_lm(arch)
    head = model.lm_head if arch == "gpt2" else model.cls.predictions.decoder
    rows = []
    handle = head.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    try:
        result = evaluate_lm(model, tokenizer, TEXTS, batch_size=2)
    finally:
        handle.remove()
    assert sum(rows) == result["tokens"]  # one row per scored token: no (pos, vocab) matrix for padding


def test_masked_positions_follow_the_documented_procedure_and_keep_with_a_prefix(tokenizer):
    bound = bind(shared_lm("bert"), tokenizer)
    objective = MaskedLMObjective()
    full, prefix = objective.encode(bound, TEXTS, 128), objective.encode(bound, TEXTS[:2], 128)
    for i, ex in enumerate(TEXTS):
        ids = tokenizer(ex.text_a)["input_ids"]
        where, original = full.targets[i]
        assert where.tolist() == documented_positions(tokenizer, ids, i) and len(where) >= 1
        assert original.tolist() == [ids[p] for p in where]
        assert [full.encoded.input_ids[i][p] for p in where] == [tokenizer.mask_token_id] * len(where)
        assert full.encoded.input_ids[i][0] == tokenizer.cls_token_id  # special tokens are never masked
    for i in range(2):
        assert prefix.targets[i][0].tolist() == full.targets[i][0].tolist()
    assert len(full.head(2).targets) == 2


def test_task_lm_picks_the_objective_from_the_head_and_explicit_kinds_are_checked():
    assert isinstance(lm_objective(shared_lm("openai-gpt")), CausalLMObjective)
    assert isinstance(lm_objective(shared_lm("distilbert"), "masked_lm"), MaskedLMObjective)
    with pytest.raises(ValueError, match='task="masked_lm" needs a masked LM head'):
        lm_objective(shared_lm("gpt2"), "masked_lm")
    with pytest.raises(ValueError, match="has no language-model head"):
        lm_objective(torch.nn.Linear(2, 2))


def test_perplexity_is_lower_is_better_and_the_threshold_divides():
    objective = CausalLMObjective()
    assert objective.primary_metric == "perplexity" and not objective.higher_is_better()
    assert objective.higher_is_better("token_accuracy")
    assert objective.improvement(30.0, 20.0) == -10.0  # perplexity going up is worse
    assert objective.threshold_value(20.0, 0.8) == pytest.approx(25.0)
    assert objective.within(24.0, 20.0, 0.8) and not objective.within(26.0, 20.0, 0.8)


def test_per_text_losses_are_each_texts_labels_loss(tokenizer):
    model = shared_lm("gpt2")
    bound = bind(model, tokenizer)
    objective = CausalLMObjective()
    eval_set = objective.encode(bound, TEXTS, 128)
    from bertology_widgets.core.batching import collate

    indices = np.arange(len(TEXTS))
    batch = collate(eval_set.encoded, indices, bound.pad_id, with_token_types=False)
    with torch.no_grad():
        losses = objective.losses(model(**batch).logits, batch, eval_set, indices)
        for i, ex in enumerate(TEXTS):
            ids = torch.tensor([tokenizer(ex.text_a)["input_ids"]])
            assert float(losses[i]) == pytest.approx(float(model(input_ids=ids, labels=ids).loss), rel=1e-5)


def test_the_running_estimate_brackets_the_full_score(tokenizer):
    model = shared_lm("gpt2")
    bound = bind(model, tokenizer)
    objective = CausalLMObjective()
    from bertology_widgets.analyses.lm_evaluation import lm_statistics

    stats = lm_statistics(bound, objective.encode(bound, TEXTS * 4, 128), objective)
    values, intervals = objective.estimate(stats[:10], None, np.arange(10), len(stats))
    assert values == objective.score(stats[:10])
    low, high = intervals["perplexity"]
    assert low < values["perplexity"] < high
    _, whole = objective.estimate(stats, None, np.arange(len(stats)), len(stats))
    assert whole["perplexity"][0] == pytest.approx(whole["perplexity"][1])  # the whole set: no uncertainty left


def test_a_set_of_one_token_texts_has_nothing_to_score(tokenizer):
    bound = bind(shared_lm("llama"), tokenizer)
    objective = CausalLMObjective()
    eval_set = objective.encode(bound, TEXTS[:1], 128)
    eval_set.encoded.input_ids[0] = eval_set.encoded.input_ids[0][:1]  # one token: nothing after the first
    from bertology_widgets.analyses.lm_evaluation import lm_statistics

    stats = lm_statistics(bound, eval_set, objective)
    assert stats.tolist() == [[0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="no token to score"):
        objective.score(stats)


def test_auto_precision_is_fp32_for_a_language_model():
    assert lm_precision("auto") == "fp32" and lm_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        lm_precision("fp16")


def test_the_mask_shape_is_layers_by_query_heads(tokenizer):
    with pytest.raises(ValueError, match=f"expected \\({LAYERS}, {HEADS}\\)"):
        evaluate_lm(shared_lm("llama-gqa"), tokenizer, TEXTS, mask=torch.ones(LAYERS, HEADS // 2))
