"""Attention rollout and flow against hand computations on tiny models."""

from __future__ import annotations

import numpy as np
import pytest

from bertology_widgets.analyses.attention_flow import (
    DEFAULT_FLOW_MAX_TOKENS,
    FlowTooLongError,
    attention_flow,
    attention_rollout,
    classification_position,
)
from bertology_widgets.core.capturing import Capture, capture
from bertology_widgets.testing import tiny_model

TEXT = "the film was a charming mess"


def hand_rollout(attentions: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """Rollout written out loop by loop, in float64."""
    layers, heads, pos, _ = attentions.shape
    out, current = [], np.eye(pos)
    for layer in range(layers):
        kept = [h for h in range(heads) if gates[layer, h] > 0 and attentions[layer, h].any()]
        mean = sum(gates[layer, h] * attentions[layer, h] for h in kept) / max(sum(gates[layer, h] for h in kept), 1)
        matrix = 0.5 * (mean if kept else 0) + 0.5 * np.eye(pos)
        for i in range(pos):
            matrix[i] = matrix[i] / matrix[i].sum()
        current = matrix @ current
        out.append(current)
    return np.array(out)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_rollout_matches_a_hand_computation_and_rows_sum_to_one(arch, tokenizer):
    cap = capture(tiny_model(arch, initializer_range=0.1), tokenizer, TEXT)
    rollout = attention_rollout(cap)
    assert rollout.shape == (3, len(cap.tokens), len(cap.tokens))
    np.testing.assert_allclose(rollout, hand_rollout(cap.attentions.astype(np.float64), np.ones((3, 4))), atol=1e-6)
    np.testing.assert_allclose(rollout.sum(-1), 1.0, atol=1e-5)


def test_masked_heads_are_left_out_of_the_average(tokenizer):
    model = tiny_model("bert", initializer_range=0.1)
    mask = np.ones((3, 4), dtype=np.float32)
    mask[0, :3] = 0  # layer 0 keeps head 3 only
    mask[1, :] = 0  # layer 1 keeps nothing: it passes its input on
    cap = capture(model, tokenizer, TEXT, mask=mask)
    np.testing.assert_array_equal(cap.mask, mask)
    rollout = attention_rollout(cap)
    np.testing.assert_allclose(rollout, hand_rollout(cap.attentions.astype(np.float64), mask), atol=1e-6)
    first = 0.5 * cap.attentions[0, 3] + 0.5 * np.eye(len(cap.tokens))
    np.testing.assert_allclose(rollout[0], first / first.sum(-1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(rollout[1], rollout[0], atol=1e-6)


def test_classification_position_is_cls_or_last(tokenizer):
    assert classification_position(capture(tiny_model("bert"), tokenizer, TEXT)) == 0
    cap = capture(tiny_model("gpt2"), tokenizer, TEXT)
    assert classification_position(cap) == len(cap.tokens) - 1


def test_flow_is_bounded_by_rollout_capacities_and_refuses_long_inputs(tokenizer):
    cap = capture(tiny_model("bert", initializer_range=0.1), tokenizer, "a charming film")
    flow = attention_flow(cap, queries="all")
    pos = len(cap.tokens)
    assert flow.flow.shape == (pos, pos) and flow.seconds >= 0
    assert np.all(flow.flow >= -1e-6) and np.all(flow.flow <= 1 + 1e-6)
    one_row = attention_flow(cap)  # the [CLS] row only
    np.testing.assert_allclose(one_row.flow[0], flow.flow[0], atol=1e-5)
    assert np.isnan(one_row.flow[1:]).all()
    long = Capture(tokens=["x"] * (DEFAULT_FLOW_MAX_TOKENS + 1), attentions=np.zeros((1, 1, 1, 1)),
                   hidden_states=np.zeros((2, 1, 1)), logits=None, token_type_ids=np.zeros(1), truncated=False,
                   causal=False)
    with pytest.raises(FlowTooLongError, match=rf"limited to {DEFAULT_FLOW_MAX_TOKENS} tokens"):
        attention_flow(long)
    with pytest.raises(ValueError, match="limited to 2 tokens"):
        attention_flow(cap, max_tokens=2)


def test_flow_through_one_layer_is_its_residual_attention(tokenizer):
    cap = capture(tiny_model("bert", num_layers=1, initializer_range=0.1), tokenizer, "a charming film")
    first = 0.5 * cap.attentions[0].mean(0) + 0.5 * np.eye(len(cap.tokens))
    first = first / first.sum(-1, keepdims=True)
    np.testing.assert_allclose(attention_flow(cap).flow[0], first[0], atol=1e-5)
