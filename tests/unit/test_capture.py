"""``capture``: tokens, attention weights and hidden states of one forward pass."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from reference import (
    ARCHS,
    HEADS,
    HIDDEN,
    LAYERS,
    PAIR,
    PRUNABLE,
    SENTENCES,
    make_model,
    model_inputs,
    one_head_mask,
    shared_model,
)

from bertology_widgets.core.capturing import TextTruncatedWarning, capture
from bertology_widgets.core.gating import mask_heads
from bertology_widgets.core.pruning import prune_heads
from bertology_widgets.testing import tiny_bound

CAUSAL = ("gpt2", "llama")


def capture_pair(model, tokenizer, **kwargs):
    return capture(model, tokenizer, *PAIR, **kwargs)


def assert_rows_sum_to_one(attentions, heads=slice(None)):
    np.testing.assert_allclose(attentions[:, heads].sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_pair_capture_shapes_tokens_and_segments(arch, tokenizer):
    cap = capture_pair(shared_model(arch), tokenizer)
    pos = len(cap.tokens)
    expected_tokens = tokenizer.convert_ids_to_tokens(tokenizer(*PAIR)["input_ids"])
    assert cap.tokens == expected_tokens
    assert cap.tokens[0] == "[CLS]" and cap.tokens[-1] == "[SEP]" and cap.tokens.count("[SEP]") == 2
    first_sep = cap.tokens.index("[SEP]")
    assert cap.token_type_ids.tolist() == [0] * (first_sep + 1) + [1] * (pos - first_sep - 1)
    assert cap.attentions.shape == (LAYERS, HEADS, pos, pos)
    assert cap.hidden_states.shape == (LAYERS + 1, pos, HIDDEN)
    assert cap.logits.shape == (2,)
    assert_rows_sum_to_one(cap.attentions)
    assert cap.causal == (arch in CAUSAL)


@pytest.mark.parametrize("arch", ARCHS)
def test_captured_logits_and_hidden_states_match_the_plain_forward(arch, tokenizer):
    model = shared_model(arch)
    mask = one_head_mask(1, 3)
    cap = capture(model, tokenizer, SENTENCES[0], mask=mask)
    batch = model_inputs(arch, tokenizer(SENTENCES[0], return_tensors="pt"))
    with torch.no_grad(), mask_heads(tiny_bound(model), mask):
        out = model(**batch, output_hidden_states=True)
    np.testing.assert_allclose(cap.logits, out.logits[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(cap.hidden_states, torch.stack(out.hidden_states)[:, 0].numpy(), atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_attention_implementation_and_training_mode_are_restored(arch, tokenizer):
    model = make_model(arch)
    assert model.config._attn_implementation == "sdpa"
    model.train()
    capture_pair(model, tokenizer)
    assert model.config._attn_implementation == "sdpa"
    assert model.training
    with pytest.raises(ValueError):
        capture_pair(model, tokenizer, mask=np.full((LAYERS, HEADS), 7.0))
    assert model.config._attn_implementation == "sdpa"
    assert all(m.training for m in model.modules())


def test_an_eager_model_stays_eager(tokenizer):
    model = shared_model("bert", "eager")
    capture_pair(model, tokenizer)
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize("arch", ARCHS)
def test_masking_changes_only_the_hidden_states_after_the_masked_layer(arch, tokenizer):
    model = shared_model(arch)
    plain = capture_pair(model, tokenizer)
    masked = capture_pair(model, tokenizer, mask=one_head_mask(1, 2))
    np.testing.assert_allclose(masked.hidden_states[:2], plain.hidden_states[:2], atol=1e-6)
    for layer in range(2, LAYERS + 1):
        assert np.abs(masked.hidden_states[layer] - plain.hidden_states[layer]).max() > 1e-4, layer
    # the mask acts after the softmax: layer 1's own weights are unchanged, later ones move
    np.testing.assert_allclose(masked.attentions[:2], plain.attentions[:2], atol=1e-6)
    assert np.abs(masked.attentions[2] - plain.attentions[2]).max() > 1e-6


@pytest.mark.parametrize("arch", ARCHS)
def test_causal_models_never_attend_to_later_tokens(arch, tokenizer):
    cap = capture_pair(shared_model(arch), tokenizer)
    upper = np.triu(np.ones(cap.attentions.shape[-2:], dtype=bool), k=1)
    later = cap.attentions[..., upper]
    if arch in CAUSAL:
        assert cap.causal and np.all(later == 0)
    else:
        assert not cap.causal and np.all(later > 0)


@pytest.mark.parametrize("arch", PRUNABLE)
def test_capture_of_a_pruned_model_keeps_layers_aligned(arch, tokenizer):
    """A fully pruned layer has no attention module: later layers must not shift into its slot."""
    mask = torch.ones(LAYERS, HEADS)
    mask[0] = 0
    mask[1, 2] = 0
    masked = capture_pair(shared_model(arch), tokenizer, mask=mask)
    model = make_model(arch)
    prune_heads(tiny_bound(model), mask)
    pruned = capture_pair(model, tokenizer)
    assert pruned.attentions.shape == masked.attentions.shape
    assert np.all(pruned.attentions[0] == 0) and np.all(pruned.attentions[1, 2] == 0)
    assert_rows_sum_to_one(pruned.attentions[1:], heads=[0, 1, 3])
    np.testing.assert_allclose(pruned.attentions[1:, [0, 1, 3]], masked.attentions[1:, [0, 1, 3]], atol=1e-5)
    np.testing.assert_allclose(pruned.hidden_states, masked.hidden_states, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_overlong_text_is_truncated_with_a_warning(arch, tokenizer):
    model = shared_model(arch)
    # RoBERTa's position ids start after the padding index, so it takes 2 fewer tokens
    limit = model.config.max_position_embeddings - (2 if arch == "roberta" else 0)
    with pytest.warns(TextTruncatedWarning, match=r"truncated"):
        cap = capture(model, tokenizer, " ".join(["word"] * 10_000))
    assert cap.truncated
    assert len(cap.tokens) == limit and cap.tokens[-1] == "[SEP]"
    assert cap.attentions.shape[-1] == len(cap.tokens) and np.isfinite(cap.hidden_states).all()


def test_short_text_is_not_truncated(tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TextTruncatedWarning)
        cap = capture(shared_model("roberta"), tokenizer, SENTENCES[1])
    assert not cap.truncated


@pytest.mark.parametrize("text,pair,message", [
    ("", None, "text is empty"),
    ("   \n\t", None, "text is empty"),
    ("Fine.", "  ", "text_pair is empty"),
    (None, None, "text must be a string"),
    (["a list"], None, "text must be a string"),
])
def test_empty_or_non_text_input_is_rejected(text, pair, message, tokenizer):
    model = shared_model("bert")
    with pytest.raises(ValueError, match=message):
        capture(model, tokenizer, text, pair)
    assert model.config._attn_implementation == "sdpa"
