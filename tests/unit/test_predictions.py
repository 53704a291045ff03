"""A language model's predictions for one text under a head mask: top-k next tokens, surprisal, mask fills."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertology_widgets.analyses.predictions import mask_fills, mask_token_hint, next_token_predictions, text_predictions
from bertology_widgets.core.bound import bind
from bertology_widgets.testing import tiny_lm, tiny_model

LAYERS, HEADS = 3, 4
TEXT = "the film was a charming mess of music and"
MASKED_TEXT = "the film was a [MASK] mess of [MASK] and scenes"


def lm(arch: str):
    return tiny_lm(arch, num_layers=LAYERS, num_heads=HEADS, initializer_range=0.2)


def own_probs(model, ids: np.ndarray) -> torch.Tensor:
    """``(pos, vocab)``: the model's own softmax, from ``model(**inputs).logits``."""
    with torch.no_grad():
        return model(input_ids=torch.as_tensor(ids)[None]).logits[0].softmax(-1)


def one_head_masked() -> np.ndarray:
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[0, 1] = 0
    return mask


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_top_5_next_tokens_under_an_empty_mask_are_the_model_s_own(arch, tokenizer):
    model = lm(arch)
    result = next_token_predictions(bind(model, tokenizer), TEXT)
    probs = own_probs(model, result.input_ids)
    (slot,) = result.slots
    assert slot.position == len(result.tokens) - 1
    np.testing.assert_array_equal(slot.ids, probs[-1].topk(5).indices.numpy())
    np.testing.assert_allclose(slot.probs, probs[-1].topk(5).values.numpy(), atol=1e-6)
    assert slot.tokens == [tokenizer.decode([int(i)]) for i in slot.ids]
    ids = torch.as_tensor(result.input_ids)
    expected = -probs[:-1].log().gather(-1, ids[1:, None])[:, 0]
    assert np.isnan(result.surprisal[0])
    np.testing.assert_allclose(result.surprisal[1:], expected.numpy(), rtol=1e-4)
    assert result.kind == "causal" and result.mask is None


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_a_masked_head_changes_the_next_tokens_and_the_surprisal(arch, tokenizer):
    bound = bind(lm(arch), tokenizer)
    plain = next_token_predictions(bound, TEXT)
    masked = next_token_predictions(bound, TEXT, mask=one_head_masked())
    assert np.abs(masked.slots[0].probs - plain.slots[0].probs).max() > 1e-4
    assert np.nanmax(np.abs(masked.surprisal - plain.surprisal)) > 1e-4
    np.testing.assert_array_equal(masked.mask, one_head_masked())


def test_the_top_5_fills_of_each_mask_token_are_the_model_s_own(tokenizer):
    model = lm("bert")
    bound = bind(model, tokenizer)
    result = mask_fills(bound, MASKED_TEXT)
    positions = [i for i, t in enumerate(result.tokens) if t == "[MASK]"]
    assert [slot.position for slot in result.slots] == positions and len(positions) == 2
    probs = own_probs(model, result.input_ids)
    for slot in result.slots:
        np.testing.assert_array_equal(slot.ids, probs[slot.position].topk(5).indices.numpy())
        np.testing.assert_allclose(slot.probs, probs[slot.position].topk(5).values.numpy(), atol=1e-6)
    masked = mask_fills(bound, MASKED_TEXT, mask=one_head_masked())
    assert max(np.abs(a.probs - b.probs).max() for a, b in zip(masked.slots, result.slots)) > 1e-4
    assert result.surprisal is None and result.note == ""


def test_a_text_without_a_mask_token_says_how_to_add_one(tokenizer):
    result = text_predictions(bind(lm("bert"), tokenizer), TEXT)
    assert result.slots == [] and "[MASK]" in result.note and "type [MASK]" in result.note
    assert result.tokens[0] == "[CLS]"
    assert mask_token_hint(type("NoMask", (), {"mask_token": None})()).startswith("this tokenizer has no mask")


def test_text_predictions_follows_the_model_s_head_and_refuses_a_classifier(tokenizer):
    assert text_predictions(bind(lm("gpt2"), tokenizer), TEXT, k=3).kind == "causal"
    assert len(text_predictions(bind(lm("gpt2"), tokenizer), TEXT, k=3).slots[0].ids) == 3
    with pytest.raises(ValueError, match="no language-model head"):
        text_predictions(bind(tiny_model("bert"), tokenizer), TEXT)
    with pytest.raises(ValueError, match="masked LM: use mask_fills"):
        next_token_predictions(bind(lm("bert"), tokenizer), TEXT)
    with pytest.raises(ValueError, match="k must be"):
        text_predictions(bind(lm("gpt2"), tokenizer), TEXT, k=0)
    with pytest.raises(ValueError, match="empty"):
        text_predictions(bind(lm("gpt2"), tokenizer), "  ")


def test_the_model_is_left_as_it_was_and_to_dict_is_json_ready(tokenizer):
    import json

    model = lm("llama")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = next_token_predictions(bind(model, tokenizer), TEXT, mask=np.zeros((LAYERS, HEADS)))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    out = json.loads(json.dumps(result.to_dict()))
    assert out["surprisal"][0] is None and len(out["surprisal"]) == len(out["tokens"])
    assert len(out["slots"][0]["tokens"]) == 5
