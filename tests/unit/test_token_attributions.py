"""Token attributions: completeness, occlusion by brute force, the head mask, bad input (tiny models)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from bertology_widgets.analyses.attribution import METHODS, token_attributions
from bertology_widgets.analyses.faithfulness import attribution_agreement, spearman
from bertology_widgets.core.bound import bind
from bertology_widgets.core.capturing import TextTruncatedWarning
from bertology_widgets.testing import tiny_examples, tiny_model

TEXT = "a charming and affecting journey through unforgettable scenery"


@pytest.fixture(scope="module", params=["bert", "gpt2"])
def bound(request, tokenizer):
    return bind(tiny_model(request.param, initializer_range=0.1), tokenizer)


def logits_of(bound, ids: torch.Tensor, mask=None) -> torch.Tensor:
    """The model's own forward on ``ids`` (one row at a time, so GPT-2 pools its last token)."""
    model = bound.model
    with torch.no_grad(), bound.masked(mask):
        rows = []
        for row in ids:
            kwargs = {"input_ids": row[None]}
            if bound.adapter.name == "BERT":
                kwargs["token_type_ids"] = torch.zeros_like(row[None])
            rows.append(model(**kwargs).logits[0])
    return torch.stack(rows)


def test_words_are_sub_word_groups_with_per_token_scores(bound, tokenizer):
    result = token_attributions(bound, TEXT, method="grad_x_input")
    assert result.words == TEXT.split()
    assert len(result.token_scores) == len(result.tokens) > len(result.words)  # "unforgettable" splits
    for group, score in zip(result.word_tokens, result.word_scores):
        assert score == pytest.approx(result.token_scores[group].sum(), abs=1e-6)
    assert result.target == int(logits_of(bound, tokenizer(TEXT, return_tensors="pt")["input_ids"])[0].argmax())


def test_integrated_gradients_completeness(bound):
    result = token_attributions(bound, TEXT, method="ig")
    difference = result.logit - result.baseline_logit
    assert result.completeness_gap < 0.05
    special = [i for i, t in enumerate(result.tokens) if t in ("[CLS]", "[SEP]")]
    assert special and np.abs(result.token_scores[special]).max() < 1e-6  # kept in the baseline: nothing to credit
    assert float(result.token_scores.sum()) == pytest.approx(difference, rel=0.05, abs=0.02)
    assert float(result.word_scores.sum()) == pytest.approx(float(result.token_scores.sum()), abs=1e-5)
    as_json = result.to_dict()
    assert {"words", "scores", "method", "target", "completeness_gap"} <= set(as_json)


def test_occlusion_matches_a_brute_force_loop(bound, tokenizer):
    mask = np.ones((3, 4), dtype=np.float32)
    mask[1, 1] = 0
    result = token_attributions(bound, TEXT, method="occlusion", mask=mask)
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"][0]
    reference = logits_of(bound, ids[None], mask)[0, result.target]
    assert result.logit == pytest.approx(float(reference), abs=1e-5)
    assert result.replacement == "[MASK]"
    for group, score in zip(result.word_tokens, result.word_scores):
        occluded = ids.clone()
        occluded[group] = tokenizer.mask_token_id
        drop = reference - logits_of(bound, occluded[None], mask)[0, result.target]
        assert score == pytest.approx(float(drop), abs=1e-5)


def test_attributions_follow_the_head_mask(bound):
    target = token_attributions(bound, TEXT, method="occlusion").target
    full = token_attributions(bound, TEXT, method="grad_x_input", target=target)
    mask = np.ones((3, 4), dtype=np.float32)
    mask[:, :2] = 0
    masked = token_attributions(bound, TEXT, method="grad_x_input", target=target, mask=mask)
    assert not np.allclose(full.word_scores, masked.word_scores)
    rollout = token_attributions(bound, TEXT, method="rollout", mask=mask)
    assert np.isfinite(rollout.word_scores).all() and (rollout.token_scores >= 0).all()


def test_every_method_runs_and_a_target_can_be_chosen(bound):
    for method in METHODS:
        result = token_attributions(bound, "a good film", method=method, target=1)
        assert result.target == 1 and result.method == method and len(result.word_scores) == 3


def test_bad_input_gets_clear_errors(bound):
    with pytest.raises(ValueError, match="empty"):
        token_attributions(bound, "   ")
    with pytest.raises(ValueError, match="unknown attribution method 'lime'.*occlusion"):
        token_attributions(bound, TEXT, method="lime")
    with pytest.raises(ValueError, match="target 5 does not exist"):
        token_attributions(bound, TEXT, target=5)
    with pytest.raises(ValueError, match=r"mask has shape \(2, 2\)"):
        token_attributions(bound, TEXT, mask=np.ones((2, 2)))


def test_over_long_text_is_truncated_with_the_warning(bound):
    with pytest.warns(TextTruncatedWarning, match="truncated"):
        result = token_attributions(bound, "good " * 40, method="occlusion", max_length=16)
    assert result.truncated and len(result.tokens) == 16 and len(result.words) == 14


def test_the_model_is_left_as_it_was(bound):
    before = {k: v.clone() for k, v in bound.model.state_dict().items()}
    token_attributions(bound, TEXT, method="ig", mask=np.zeros((3, 4)))
    after = bound.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.grad is not None for p in bound.model.parameters())


def test_agreement_reports_a_correlation_per_method(bound):
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", TextTruncatedWarning)
        table = attribution_agreement(bound, tiny_examples(6), ["grad_x_input", "rollout"],
                                      progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (6, 6)
    summary = table.summary()
    assert set(summary) == {"grad_x_input", "rollout"}
    assert all(-1 <= v <= 1 for v in table.correlations["rollout"] if np.isfinite(v))
    assert "gradient x input" in table.table()
    with pytest.raises(ValueError, match="occlusion is the reference"):
        attribution_agreement(bound, tiny_examples(2), ["occlusion"])


def test_spearman_is_undefined_for_constant_or_short_rankings():
    assert np.isnan(spearman([1, 2], [2, 1]))
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)


def test_a_pair_gives_the_words_of_both_texts(bound):
    result = token_attributions(bound, "a good film", "it was fun", method="occlusion")
    assert result.words == ["a", "good", "film", "it", "was", "fun"]
    assert all(len(group) == 1 for group in result.word_tokens)


def test_without_a_mask_token_occlusion_uses_pad_then_end_of_text():
    from types import SimpleNamespace

    from bertology_widgets.analyses.attribution import baseline_token, replacement_token

    gpt2_like = SimpleNamespace(mask_token_id=None, pad_token_id=None, eos_token_id=50256,
                                eos_token="<|endoftext|>")
    assert replacement_token(gpt2_like) == (50256, "<|endoftext|>") and baseline_token(gpt2_like) == 50256
    padded = SimpleNamespace(mask_token_id=None, pad_token_id=0, pad_token="<pad>", eos_token_id=2)
    assert replacement_token(padded) == (0, "<pad>") and baseline_token(padded) == 0
    with pytest.raises(ValueError, match="no \\[MASK\\], pad or end-of-text token"):
        replacement_token(SimpleNamespace())
